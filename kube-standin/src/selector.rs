//! Label and field selectors for LIST requests.
//!
//! Label selectors support the whole syntax (`a=b`, `a==b`, `a!=b`, `a`, `!a`,
//! `a in (x,y)`, `a notin (x,y)`); field selectors support the fields the real server
//! indexes for the served kinds (`metadata.name`, `metadata.namespace`, and `type` for
//! Secrets), with `=`, `==` and `!=`.

use serde_json::Value;

use crate::status::ApiError;

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    /// Parses a `labelSelector`.
    pub fn labels(text: &str) -> Result<Selector, ApiError> {
        split_terms(text)
            .map(|term| parse_label_term(term.trim()))
            .collect::<Result<_, _>>()
            .map(Selector)
    }

    /// Parses a `fieldSelector`, checking each field is one the server can select on.
    pub fn fields(text: &str, allowed: &[&str]) -> Result<Selector, ApiError> {
        let selector = Selector(
            split_terms(text)
                .map(|term| parse_equality(term.trim()).ok_or_else(|| bad_selector("field", term)))
                .collect::<Result<_, _>>()?,
        );
        for requirement in &selector.0 {
            let key = requirement.key();
            if !allowed.contains(&key) {
                return Err(ApiError::bad_request(format!(
                    "\"{key}\" is not a known field selector: only \"{}\"",
                    allowed.join("\", \"")
                )));
            }
        }
        Ok(selector)
    }

    /// Whether `lookup` (key → value) satisfies every requirement.
    pub fn matches<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|requirement| {
            let value = lookup(requirement.key());
            match requirement {
                Requirement::Equals(_, want) => value == Some(want.as_str()),
                Requirement::NotEquals(_, want) => value != Some(want.as_str()),
                Requirement::Exists(_) => value.is_some(),
                Requirement::Absent(_) => value.is_none(),
                Requirement::In(_, set) => {
                    value.is_some_and(|value| set.iter().any(|item| item == value))
                }
                Requirement::NotIn(_, set) => {
                    value.is_none_or(|value| set.iter().all(|item| item != value))
                }
            }
        })
    }

    /// Whether an object's labels satisfy the selector.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.matches(|key| labels?.get(key)?.as_str())
    }
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::Equals(key, _)
            | Requirement::NotEquals(key, _)
            | Requirement::Exists(key)
            | Requirement::Absent(key)
            | Requirement::In(key, _)
            | Requirement::NotIn(key, _) => key,
        }
    }
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0_i32;
    let mut start = 0;
    let mut terms = Vec::new();
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.into_iter().filter(|term| !term.trim().is_empty())
}

fn parse_label_term(term: &str) -> Result<Requirement, ApiError> {
    if let Some(requirement) = parse_equality(term) {
        return Ok(requirement);
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::Absent(key.trim().to_owned()));
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(operator) {
            let set = set
                .trim()
                .strip_prefix('(')
                .and_then(|set| set.strip_suffix(')'))
                .ok_or_else(|| bad_selector("label", term))?;
            let values = set
                .split(',')
                .map(|value| value.trim().to_owned())
                .collect();
            let key = key.trim().to_owned();
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    if term.contains(char::is_whitespace) || term.contains(['(', ')', '=']) {
        return Err(bad_selector("label", term));
    }
    Ok(Requirement::Exists(term.to_owned()))
}

fn parse_equality(term: &str) -> Option<Requirement> {
    if let Some((key, value)) = term.split_once("!=") {
        return Some(Requirement::NotEquals(
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
    Some(Requirement::Equals(
        key.trim().to_owned(),
        value.trim().to_owned(),
    ))
}

fn bad_selector(kind: &str, term: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: invalid {kind} selector term \"{term}\""
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_selectors_match() {
        let object = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "exsec", "tier": "web"}}});
        let cases = [
            ("app.kubernetes.io/managed-by=exsec", true),
            ("app.kubernetes.io/managed-by==exsec,tier=web", true),
            ("tier!=web", false),
            ("tier", true),
            ("!tier", false),
            ("tier in (web, db)", true),
            ("tier notin (web,db)", false),
            ("missing notin (a)", true),
            ("", true),
        ];
        for (text, want) in cases {
            let selector = Selector::labels(text).expect(text);
            assert_eq!(selector.matches_labels(&object), want, "{text}");
        }
        assert!(Selector::labels("a in b").is_err());
    }

    #[test]
    fn field_selectors_are_checked() {
        let selector = Selector::fields("metadata.name=web", &["metadata.name"]).expect("valid");
        assert!(selector.matches(|key| (key == "metadata.name").then_some("web")));
        let error = Selector::fields("spec.x=1", &["metadata.name"]).expect_err("unknown field");
        assert_eq!(error.code, 400);
    }
}
