//! URL paths to routes: the one list of paths the stand-in serves.
//!
//! Pure parsing, no I/O: [`Route::parse`] turns `/apis/apps/v1/namespaces/x/deployments/y`
//! into a route the API layer dispatches on.

use crate::kind::Kind;

/// Something the stand-in serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/apps`.
    AppsGroup,
    /// `/api/v1` (`""`) or `/apis/apps/v1` (`"apps"`).
    Resources(&'static str),
    /// A collection: `/api/v1/namespaces/x/secrets`, or across namespaces when
    /// `namespace` is `None` (`/api/v1/secrets`, and `/api/v1/namespaces` itself).
    Collection {
        /// The kind listed.
        kind: Kind,
        /// The namespace, for namespaced kinds listed in one namespace.
        namespace: Option<String>,
    },
    /// One object.
    Object {
        /// Its kind.
        kind: Kind,
        /// Its namespace (empty for namespaces).
        namespace: String,
        /// Its name.
        name: String,
        /// `Some("status")` for the status subresource.
        subresource: Option<String>,
    },
    /// Control endpoints under `/_standin/` (faults, reset, request log).
    Control(String),
}

impl Route {
    /// The route of `path`, or `None` when nothing is served there.
    pub fn parse(path: &str) -> Option<Route> {
        if let Some(control) = path.strip_prefix("/_standin/") {
            return Some(Route::Control(control.trim_end_matches('/').to_owned()));
        }
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match segments.as_slice() {
            ["version"] => Some(Route::Version),
            ["api"] => Some(Route::CoreVersions),
            ["apis"] => Some(Route::Groups),
            ["apis", "apps"] => Some(Route::AppsGroup),
            ["api", "v1"] => Some(Route::Resources("")),
            ["apis", "apps", "v1"] => Some(Route::Resources("apps")),
            ["api", "v1", rest @ ..] => resource_route("", rest),
            ["apis", "apps", "v1", rest @ ..] => resource_route("apps", rest),
            _ => None,
        }
    }
}

fn resource_route(group: &str, rest: &[&str]) -> Option<Route> {
    let object = |kind, namespace: &str, name: &str, subresource: Option<&str>| Route::Object {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        subresource: subresource.map(str::to_owned),
    };
    let namespaces = (group.is_empty()).then_some(Kind::Namespace);
    match rest {
        [plural] => {
            let kind = Kind::from_resource(group, plural)?;
            Some(Route::Collection {
                kind,
                namespace: None,
            })
        }
        ["namespaces", name] => Some(object(namespaces?, "", name, None)),
        ["namespaces", namespace, plural] => {
            let kind = Kind::from_resource(group, plural).filter(|kind| kind.namespaced())?;
            Some(Route::Collection {
                kind,
                namespace: Some((*namespace).to_owned()),
            })
        }
        ["namespaces", namespace, plural, name] => {
            let kind = Kind::from_resource(group, plural).filter(|kind| kind.namespaced())?;
            Some(object(kind, namespace, name, None))
        }
        ["namespaces", namespace, plural, name, "status"] => {
            let kind =
                Kind::from_resource(group, plural).filter(|kind| *kind == Kind::Deployment)?;
            Some(object(kind, namespace, name, Some("status")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route() {
        assert_eq!(Route::parse("/api/v1/"), Some(Route::Resources("")));
        assert_eq!(
            Route::parse("/api/v1/namespaces/paas-apps/secrets"),
            Some(Route::Collection {
                kind: Kind::Secret,
                namespace: Some("paas-apps".into())
            })
        );
        assert_eq!(
            Route::parse("/apis/apps/v1/namespaces/p/deployments/web"),
            Some(Route::Object {
                kind: Kind::Deployment,
                namespace: "p".into(),
                name: "web".into(),
                subresource: None
            })
        );
        assert_eq!(
            Route::parse("/api/v1/namespaces/p"),
            Some(Route::Object {
                kind: Kind::Namespace,
                namespace: String::new(),
                name: "p".into(),
                subresource: None
            })
        );
        assert_eq!(
            Route::parse("/api/v1/namespaces"),
            Some(Route::Collection {
                kind: Kind::Namespace,
                namespace: None
            })
        );
        assert_eq!(Route::parse("/api/v1/deployments"), None);
        assert_eq!(Route::parse("/apis/apps/v1/namespaces/p/secrets/s"), None);
        assert_eq!(Route::parse("/openapi/v2"), None);
        assert_eq!(
            Route::parse("/_standin/faults"),
            Some(Route::Control("faults".into()))
        );
    }
}
