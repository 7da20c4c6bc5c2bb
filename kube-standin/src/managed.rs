//! Field managers: who owns which fields of one object, as `metadata.managedFields` shows.
//!
//! Each entry is keyed by manager name and operation (`Apply` for server-side apply,
//! `Update` for create, replace and merge patch), as in the real server, and renders in the
//! real wire format so `kubectl get -o yaml --show-managed-fields` and client code that
//! inspects ownership read what they would read from a kube-apiserver. Each entry keeps
//! its `fieldsV1` rendering and refreshes it only when its field set changes, because
//! every write answers with `managedFields` and rebuilding them dominated apply time.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::fields::{FieldPath, FieldSet};

/// How a manager came to own its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write (create, replace, merge patch).
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: String,
    fields: FieldSet,
    /// Invariant: always `fields.to_fields_v1()`.
    rendered: Arc<Value>,
}

impl Entry {
    /// The field manager (`exsec`, `kubectl`, …).
    pub fn manager(&self) -> &str {
        &self.manager
    }

    /// The leaves it owns.
    pub fn fields(&self) -> &FieldSet {
        &self.fields
    }

    fn set_fields(&mut self, fields: FieldSet) {
        self.rendered = Arc::new(fields.to_fields_v1());
        self.fields = fields;
    }
}

/// All managers of one object, in the order they first wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Managers(Vec<Entry>);

impl Managers {
    /// The fields `manager` owns through `operation` (empty if it owns none).
    pub fn fields_of(&self, manager: &str, operation: Operation) -> FieldSet {
        self.0
            .iter()
            .find(|entry| entry.manager == manager && entry.operation == operation)
            .map(|entry| entry.fields.clone())
            .unwrap_or_default()
    }

    /// The entries of every manager other than `manager`.
    pub fn others<'a>(&'a self, manager: &'a str) -> impl Iterator<Item = &'a Entry> {
        self.0.iter().filter(move |entry| entry.manager != manager)
    }

    /// Whether any manager other than `manager` owns a field overlapping `path`.
    pub fn owned_by_others(&self, manager: &str, path: &FieldPath) -> bool {
        self.others(manager)
            .any(|entry| entry.fields.overlaps(path))
    }

    /// Whether any entry owns `path` exactly.
    pub fn owned_exactly(&self, path: &FieldPath) -> bool {
        self.0.iter().any(|entry| entry.fields.contains(path))
    }

    /// Takes `path` (and overlapping fields) away from every manager other than `manager`.
    pub fn take_from_others(&mut self, manager: &str, path: &FieldPath) {
        for entry in self.0.iter_mut().filter(|entry| entry.manager != manager) {
            if entry.fields.overlaps(path) {
                let mut fields = entry.fields.clone();
                fields.remove_overlapping(path);
                entry.set_fields(fields);
            }
        }
        self.0.retain(|entry| !entry.fields.is_empty());
    }

    /// Replaces the set of `manager`/`operation` with `fields`, stamping `time` when the set
    /// changed, and drops entries left with no fields.
    pub fn set(
        &mut self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        time: &str,
        fields: FieldSet,
    ) {
        let existing = self
            .0
            .iter_mut()
            .find(|entry| entry.manager == manager && entry.operation == operation);
        match existing {
            Some(entry) => {
                if entry.fields != fields || entry.api_version != api_version {
                    time.clone_into(&mut entry.time);
                    api_version.clone_into(&mut entry.api_version);
                    entry.set_fields(fields);
                }
            }
            None => self.0.push(Entry {
                manager: manager.to_owned(),
                operation,
                api_version: api_version.to_owned(),
                time: time.to_owned(),
                rendered: Arc::new(fields.to_fields_v1()),
                fields,
            }),
        }
        self.0.retain(|entry| !entry.fields.is_empty());
    }

    /// Whether both hold the same managers owning the same fields (times ignored): an
    /// apply that changes neither the object nor ownership is a no-op.
    pub fn same_ownership(&self, other: &Managers) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(left, right)| {
                left.manager == right.manager
                    && left.operation == right.operation
                    && left.api_version == right.api_version
                    && left.fields == right.fields
            })
    }

    /// The `managedFields` JSON.
    pub fn to_json(&self) -> Value {
        self.0
            .iter()
            .map(|entry| {
                json!({
                    "manager": entry.manager,
                    "operation": entry.operation.as_str(),
                    "apiVersion": entry.api_version,
                    "time": entry.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": Value::clone(&entry.rendered),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set_of(value: Value) -> FieldSet {
        FieldSet::leaves_of(&value)
    }

    #[test]
    fn renderings_follow_field_changes() {
        let mut managers = Managers::default();
        managers.set(
            "a",
            Operation::Apply,
            "v1",
            "t1",
            set_of(json!({"data": {"X": 1, "Y": 1}})),
        );
        managers.set(
            "b",
            Operation::Update,
            "v1",
            "t1",
            set_of(json!({"data": {"Y": 1}})),
        );
        managers.take_from_others("b", &FieldPath::new(["data", "Y"]));
        let rendered = managers.to_json();
        assert_eq!(rendered[0]["fieldsV1"], json!({"f:data": {"f:X": {}}}));
        assert_eq!(rendered[1]["operation"], "Update");
        managers.set("b", Operation::Update, "v1", "t2", FieldSet::default());
        assert_eq!(
            managers.to_json().as_array().map(Vec::len),
            Some(1),
            "empty entries go"
        );
    }
}
