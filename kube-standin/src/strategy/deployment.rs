//! Deployments: defaults, selector rules and `generation`.
//!
//! The selector is immutable and must match the pod template's labels, as in the real
//! server; exsec relies on both (its selector is `app.kubernetes.io/name: {app_id}`).
//! `spec.replicas` defaults to 1 after apply, so a manager that stops sending replicas
//! and was their only owner sees them fall back to 1, as on a real cluster.

use serde_json::{Map, Value, json};

use crate::kind::Kind;
use crate::status::{ApiError, Cause};

pub(super) fn prepare(name: &str, old: Option<&Value>, new: &mut Value) -> Result<(), ApiError> {
    default(new);
    let mut causes = validate(new);
    if let Some(old) = old {
        let (before, after) = (old.pointer("/spec/selector"), new.pointer("/spec/selector"));
        if before.is_some() && before != after {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "spec.selector".to_owned(),
                message: format!(
                    "Invalid value: {}: field is immutable",
                    after.unwrap_or(&Value::Null)
                ),
            });
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(Kind::Deployment, name, &causes));
    }
    let generation = match old {
        None => 1,
        Some(old) => {
            let current = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if old.get("spec") == new.get("spec") {
                current
            } else {
                current + 1
            }
        }
    };
    if let Some(Value::Object(metadata)) = new.get_mut("metadata") {
        metadata.insert("generation".to_owned(), json!(generation));
    }
    Ok(())
}

fn default(deployment: &mut Value) {
    let Some(Value::Object(spec)) = deployment.get_mut("spec") else {
        return;
    };
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    spec.entry("strategy").or_insert_with(|| {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    });
}

fn validate(deployment: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let required = |field: &str| Cause {
        reason: "FieldValueRequired",
        field: field.to_owned(),
        message: "Required value".to_owned(),
    };
    let match_labels = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    let has_expressions = deployment
        .pointer("/spec/selector/matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|expressions| !expressions.is_empty());
    if match_labels.is_none_or(Map::is_empty) && !has_expressions {
        causes.push(required("spec.selector"));
    }
    let empty = Map::new();
    let labels = deployment
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(selector) = match_labels
        && selector
            .iter()
            .any(|(key, value)| labels.get(key) != Some(value))
    {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.template.metadata.labels".to_owned(),
            message: format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                Value::Object(labels.clone())
            ),
        });
    }
    let containers = deployment
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array);
    match containers {
        None => causes.push(required("spec.template.spec.containers")),
        Some(containers) if containers.is_empty() => {
            causes.push(required("spec.template.spec.containers"))
        }
        Some(containers) => {
            for (index, container) in containers.iter().enumerate() {
                for field in ["name", "image"] {
                    if container
                        .get(field)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        causes.push(required(&format!(
                            "spec.template.spec.containers[{index}].{field}"
                        )));
                    }
                }
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(app: &str, image: &str) -> Value {
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "app", "image": image}]}
                }
            }
        })
    }

    #[test]
    fn defaults_and_generation() {
        let mut first = deployment("web", "img:1");
        prepare("web", None, &mut first).expect("valid");
        assert_eq!(first["spec"]["replicas"], 1);
        assert_eq!(first["metadata"]["generation"], 1);
        let mut same = first.clone();
        prepare("web", Some(&first), &mut same).expect("valid");
        assert_eq!(same["metadata"]["generation"], 1);
        let mut changed = first.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img:2");
        prepare("web", Some(&first), &mut changed).expect("valid");
        assert_eq!(changed["metadata"]["generation"], 2);
    }

    #[test]
    fn selector_is_immutable_and_must_match() {
        let mut first = deployment("web", "img:1");
        prepare("web", None, &mut first).expect("valid");
        let mut moved = deployment("other", "img:1");
        let error = prepare("web", Some(&first), &mut moved).expect_err("immutable");
        assert_eq!(error.code, 422);
        assert!(
            error.message.contains("spec.selector: Invalid value"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("field is immutable"),
            "{}",
            error.message
        );
        let mut mismatched = deployment("web", "img:1");
        mismatched["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
        let error = prepare("web", None, &mut mismatched).expect_err("mismatch");
        assert!(
            error
                .message
                .contains("`selector` does not match template `labels`")
        );
    }
}
