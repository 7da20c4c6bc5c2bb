//! Namespaces: the fields the real server fills in (`kubernetes` finalizer, `Active`
//! phase, the `kubernetes.io/metadata.name` label).

use serde_json::{Value, json};

pub(super) fn prepare(name: &str, new: &mut Value) {
    let Value::Object(object) = new else {
        return;
    };
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if let Value::Object(labels) = labels {
            labels.insert("kubernetes.io/metadata.name".to_owned(), json!(name));
        }
    }
    object
        .entry("spec")
        .or_insert_with(|| json!({"finalizers": ["kubernetes"]}));
    object.insert("status".to_owned(), json!({"phase": "Active"}));
}
