//! The resource kinds the stand-in serves, and the names the API knows them by.
//!
//! One enum, so that the URL paths, discovery documents, list kinds, error messages and
//! tables all agree on `secrets` vs `Secret` vs `SecretList` and on which group serves
//! what. Adding a kind starts here.

use std::fmt;

/// A kind of object the stand-in stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `v1` Namespace (cluster-scoped).
    Namespace,
    /// `v1` Secret.
    Secret,
    /// `apps/v1` Deployment.
    Deployment,
    /// `v1` Event: always an empty list, so `kubectl describe` works.
    Event,
}

impl Kind {
    /// Every kind, in discovery order.
    pub const ALL: [Kind; 4] = [Kind::Namespace, Kind::Secret, Kind::Deployment, Kind::Event];

    /// The `kind` field (`Secret`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Secret => "Secret",
            Kind::Deployment => "Deployment",
            Kind::Event => "Event",
        }
    }

    /// The resource name in URLs (`secrets`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Secret => "secrets",
            Kind::Deployment => "deployments",
            Kind::Event => "events",
        }
    }

    /// The API group (`""` for core).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment => "apps",
            Kind::Namespace | Kind::Secret | Kind::Event => "",
        }
    }

    /// The `apiVersion` field (`v1`, `apps/v1`).
    pub fn api_version(self) -> &'static str {
        match self.group() {
            "" => "v1",
            _ => "apps/v1",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace)
    }

    /// Whether clients may write objects of this kind.
    pub fn writable(self) -> bool {
        !matches!(self, Kind::Event)
    }

    /// The `kind` of a list of these (`SecretList`).
    pub fn list_kind(self) -> String {
        format!("{}List", self.name())
    }

    /// The resource as the real server names it in messages (`secrets`, `deployments.apps`).
    pub fn qualified_resource(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }

    /// The kind served at `group`/`plural`, if any.
    pub fn from_resource(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.group() == group && kind.plural() == plural)
    }

    /// Parses a kind from the names a test is likely to use: `Secret`, `secret`, `secrets`,
    /// `deploy`, `ns`, …
    pub fn parse(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|kind| {
            lower == kind.name().to_ascii_lowercase()
                || lower == kind.plural()
                || kind.short_names().contains(&lower.as_str())
        })
    }

    /// The short names kubectl accepts (`deploy`).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Secret => &[],
            Kind::Deployment => &["deploy"],
            Kind::Event => &["ev"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree() {
        assert_eq!(
            Kind::from_resource("apps", "deployments"),
            Some(Kind::Deployment)
        );
        assert_eq!(Kind::from_resource("", "deployments"), None);
        assert_eq!(Kind::parse("deploy"), Some(Kind::Deployment));
        assert_eq!(Kind::parse("Secret"), Some(Kind::Secret));
        assert_eq!(Kind::parse("ns"), Some(Kind::Namespace));
        assert_eq!(Kind::Deployment.qualified_resource(), "deployments.apps");
        assert_eq!(Kind::Secret.list_kind(), "SecretList");
    }
}
