//! Server-side printing: `meta.k8s.io/v1` `Table` answers for `kubectl get`.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns
//! the server chooses. These are the real server's columns for the served kinds (`NAME
//! TYPE DATA AGE` for Secrets, `NAME READY UP-TO-DATE AVAILABLE AGE` for Deployments), so
//! table output looks like it does against a cluster.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock;
use crate::kind::Kind;

/// Whether an `Accept` header asks for a Table.
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| accept.contains("as=Table"))
}

/// The Table of `objects` of `kind`, at `resource_version`.
pub fn render(kind: Kind, objects: &[Arc<Value>], resource_version: u64) -> Value {
    let columns: Vec<Value> = columns(kind)
        .iter()
        .map(|(name, kind, priority, description)| {
            json!({
                "name": name,
                "type": kind,
                "format": if *name == "Name" { "name" } else { "" },
                "description": description,
                "priority": priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
            if let Some(metadata) = metadata.as_object_mut() {
                metadata.remove("managedFields");
            }
            json!({
                "cells": cells(kind, object),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

type Column = (&'static str, &'static str, u8, &'static str);

fn columns(kind: Kind) -> &'static [Column] {
    const NAME: Column = (
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    const AGE: Column = (
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match kind {
        Kind::Namespace => &[
            NAME,
            ("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        Kind::Secret => &[
            NAME,
            (
                "Type",
                "string",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            ("Data", "string", 0, "Data contains the secret data."),
            AGE,
        ],
        Kind::Deployment => &[
            NAME,
            ("Ready", "string", 0, "Number of the pod with ready state"),
            (
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            (
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        Kind::Event => &[
            ("Last Seen", "string", 0, "Time when last event occurred."),
            ("Type", "string", 0, "Type of this event."),
            ("Reason", "string", 0, "Reason is why the action was taken."),
            (
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            (
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
        ],
    }
}

fn cells(kind: Kind, object: &Value) -> Vec<Value> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let number = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    let name = json!(text("/metadata/name"));
    let age = json!(clock::age(&text("/metadata/creationTimestamp")));
    match kind {
        Kind::Namespace => vec![name, json!(text("/status/phase")), age],
        Kind::Secret => {
            let count = object
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, serde_json::Map::len);
            vec![name, json!(text("/type")), json!(count), age]
        }
        Kind::Deployment => {
            let containers = object
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array);
            let joined = |field: &str| {
                containers
                    .into_iter()
                    .flatten()
                    .filter_map(|container| container.get(field).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let selector = object
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let replicas = object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(format!("{}/{replicas}", number("/status/readyReplicas"))),
                json!(number("/status/updatedReplicas")),
                json!(number("/status/availableReplicas")),
                age,
                json!(joined("name")),
                json!(joined("image")),
                json!(selector),
            ]
        }
        Kind::Event => vec![age, json!(""), json!(""), json!(""), json!("")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_rows_count_keys() {
        let secret = json!({"metadata": {"name": "s", "creationTimestamp": clock::now_rfc3339(), "managedFields": []},
                            "type": "Opaque", "data": {"A": "", "B": ""}});
        let table = render(Kind::Secret, &[Arc::new(secret)], 7);
        assert_eq!(table["rows"][0]["cells"][0], "s");
        assert_eq!(table["rows"][0]["cells"][2], 2);
        assert!(
            table["rows"][0]["object"]["metadata"]
                .get("managedFields")
                .is_none()
        );
        assert_eq!(table["metadata"]["resourceVersion"], "7");
        assert!(wanted(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
    }
}
