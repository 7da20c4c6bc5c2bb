//! Server-side apply, and ownership tracking for ordinary writes, over plain JSON objects.
//!
//! This is the part of the stand-in that must not be simplified away: a stand-in that
//! replaced whole objects on apply would hide real bugs such as kubernetes#108008 (keys
//! applied as `stringData` are never removed later). The rules, per manager M applying
//! configuration C to live object L:
//!
//! 1. The fields of C are its leaves ([`FieldSet::leaves_of`]), minus identity and
//!    server-owned fields ([`managed_view`]).
//! 2. A field of C that another manager owns with a different live value is a conflict:
//!    409 unless `force`, in which case ownership moves to M.
//! 3. Fields M owned before but C no longer has are removed from L unless another manager
//!    still owns them.
//! 4. The fields of C are merged into L (maps deeply, lists and scalars replaced), and M's
//!    set becomes exactly the fields of C.
//!
//! Kind-specific steps (turning `stringData` into `data`, defaults, validation) run after
//! this, in [`crate::strategy`]; ownership stays as computed here, which is what makes the
//! `stringData` trap reproducible.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::fields::{self, FieldPath, FieldSet};
use crate::managed::{Managers, Operation};
use crate::status::ApiError;

/// A stored object and its managers. The object is shared so reads and answers do not
/// copy it.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// The object as stored, `managedFields` included (rendered from `managers`).
    pub object: Arc<Value>,
    /// Who owns which fields.
    pub managers: Managers,
}

/// The result of a write before the kind's strategy and the store have finished it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The new object.
    pub object: Value,
    /// The new ownership.
    pub managers: Managers,
}

/// Who writes, and how.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// The `apiVersion` written.
    pub api_version: &'a str,
    /// The time to stamp on a changed managed-fields entry.
    pub time: &'a str,
}

/// Applies `config` as `writer` to `live` (or to a new object built from `skeleton`, which
/// holds the identity fields: apiVersion, kind, name, namespace).
pub fn server_side_apply(
    live: Option<&Live>,
    skeleton: Value,
    config: Value,
    writer: Writer<'_>,
    force: bool,
) -> Result<Draft, ApiError> {
    let view = managed_view(config);
    let applied = FieldSet::leaves_of(&view);
    let (mut object, mut managers) = match live {
        Some(live) => (without_managed_fields(&live.object), live.managers.clone()),
        None => (skeleton, Managers::default()),
    };

    let conflicts = conflicts(&object, &managers, writer.manager, &view, &applied);
    if !conflicts.is_empty() {
        if !force {
            let listed: Vec<_> = conflicts
                .into_iter()
                .map(|(manager, paths)| (manager, paths.iter().map(fields::display).collect()))
                .collect();
            return Err(ApiError::apply_conflict(&listed));
        }
        for path in conflicts.values().flatten() {
            managers.take_from_others(writer.manager, path);
        }
    }

    let previous = managers.fields_of(writer.manager, Operation::Apply);
    for path in previous.difference(&applied) {
        if managers.owned_by_others(writer.manager, path) {
            continue;
        }
        fields::remove(&mut object, path, |ancestor| {
            applied.contains(ancestor) || managers.owned_exactly(ancestor)
        });
    }
    fields::merge(&mut object, view);
    managers.set(
        writer.manager,
        Operation::Apply,
        writer.api_version,
        writer.time,
        applied,
    );
    Ok(Draft { object, managers })
}

/// Records an ordinary write (create, replace, merge patch) that turned `before` into
/// `after`: the writer takes every field it changed or added, other managers lose those and
/// every removed field.
pub fn record_update(before: Option<&Live>, after: &Value, writer: Writer<'_>) -> Managers {
    let old_view = before.map_or_else(
        || Value::Object(Map::new()),
        |live| managed_view(Value::clone(&live.object)),
    );
    let new_view = managed_view(after.clone());
    let mut managers = before.map(|live| live.managers.clone()).unwrap_or_default();
    let mut owned = managers.fields_of(writer.manager, Operation::Update);

    for path in FieldSet::leaves_of(&new_view).iter() {
        if fields::get(&old_view, path) != fields::get(&new_view, path) {
            managers.take_from_others(writer.manager, path);
            owned.insert(path.clone());
        }
    }
    for path in FieldSet::leaves_of(&old_view).iter() {
        if fields::get(&new_view, path).is_none() {
            managers.take_from_others(writer.manager, path);
            owned.remove_overlapping(path);
        }
    }
    managers.set(
        writer.manager,
        Operation::Update,
        writer.api_version,
        writer.time,
        owned,
    );
    managers
}

/// The part of an object that managers can own: everything except `apiVersion`, `kind`,
/// `status` and the identity and server-set fields of `metadata`. Nulls are dropped (a
/// typed client's `null` means "not set").
pub fn managed_view(object: Value) -> Value {
    const SERVER_METADATA: [&str; 10] = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    let mut view = object;
    fields::strip_nulls(&mut view);
    if let Value::Object(map) = &mut view {
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("status");
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            metadata.retain(|key, _| !SERVER_METADATA.contains(&key.as_str()));
            if metadata.is_empty() {
                map.remove("metadata");
            }
        }
    }
    view
}

/// A copy of a stored object without its `managedFields`, which every write re-renders
/// from the managers: copying them only to overwrite them was a large share of apply time.
pub fn without_managed_fields(object: &Value) -> Value {
    let Value::Object(map) = object else {
        return object.clone();
    };
    let copy = map
        .iter()
        .map(|(key, value)| match (key.as_str(), value) {
            ("metadata", Value::Object(metadata)) => {
                let metadata = metadata
                    .iter()
                    .filter(|(field, _)| field.as_str() != "managedFields")
                    .map(|(field, value)| (field.clone(), value.clone()))
                    .collect();
                (key.clone(), Value::Object(metadata))
            }
            _ => (key.clone(), value.clone()),
        })
        .collect();
    Value::Object(copy)
}

/// Whether `stored` (with `managedFields`) and `draft` (without) are the same object.
pub fn same_object(stored: &Value, draft: &Value) -> bool {
    let (Value::Object(stored), Value::Object(draft)) = (stored, draft) else {
        return stored == draft;
    };
    stored.len() == draft.len()
        && stored
            .iter()
            .filter(|(key, _)| key.as_str() != "metadata")
            .all(|(key, value)| draft.get(key) == Some(value))
        && metadata_without_managed_fields(stored) == metadata_without_managed_fields(draft)
}

/// The metadata fields of `object` other than `managedFields`.
fn metadata_without_managed_fields(object: &Map<String, Value>) -> Option<Vec<(&String, &Value)>> {
    let metadata = object.get("metadata")?.as_object()?;
    Some(
        metadata
            .iter()
            .filter(|(field, _)| field.as_str() != "managedFields")
            .collect(),
    )
}

/// Fields of the configuration that other managers own with a different live value,
/// grouped by manager.
fn conflicts(
    object: &Value,
    managers: &Managers,
    manager: &str,
    view: &Value,
    applied: &FieldSet,
) -> BTreeMap<String, Vec<FieldPath>> {
    let mut found: BTreeMap<String, Vec<FieldPath>> = BTreeMap::new();
    for path in applied.iter() {
        let wanted = fields::get(view, path);
        let current = fields::get(object, path);
        let same = wanted == current
            || (wanted.and_then(Value::as_object).is_some_and(Map::is_empty)
                && current.is_some_and(Value::is_object));
        if same {
            continue;
        }
        for entry in managers.others(manager) {
            if entry.fields().overlaps(path) {
                found
                    .entry(entry.manager().to_owned())
                    .or_default()
                    .push(path.clone());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const EXSEC: Writer<'static> = Writer {
        manager: "exsec",
        api_version: "v1",
        time: "t",
    };
    const OTHER: Writer<'static> = Writer {
        manager: "other",
        api_version: "v1",
        time: "t",
    };

    fn skeleton() -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}})
    }

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data})
    }

    fn apply(
        live: Option<&Live>,
        data: Value,
        writer: Writer<'_>,
        force: bool,
    ) -> Result<Live, ApiError> {
        let draft = server_side_apply(live, skeleton(), secret(data), writer, force)?;
        Ok(Live {
            object: Arc::new(draft.object),
            managers: draft.managers,
        })
    }

    #[test]
    fn dropped_keys_disappear() {
        let first = apply(None, json!({"A": "YQ==", "B": "Yg=="}), EXSEC, true).expect("create");
        let second = apply(Some(&first), json!({"A": "YQ=="}), EXSEC, true).expect("update");
        assert_eq!(second.object["data"], json!({"A": "YQ=="}));
        assert_eq!(second.object["metadata"]["namespace"], "n");
    }

    #[test]
    fn fields_shared_with_another_manager_survive() {
        let first = apply(None, json!({"A": "YQ==", "B": "Yg=="}), EXSEC, true).expect("create");
        let shared = apply(Some(&first), json!({"B": "Yg=="}), OTHER, false)
            .expect("same value is no conflict");
        let dropped = apply(Some(&shared), json!({"A": "YQ=="}), EXSEC, true).expect("update");
        assert_eq!(dropped.object["data"], json!({"A": "YQ==", "B": "Yg=="}));
    }

    #[test]
    fn conflicts_need_force() {
        let first = apply(None, json!({"A": "YQ=="}), EXSEC, true).expect("create");
        let error = apply(Some(&first), json!({"A": "Yg=="}), OTHER, false).expect_err("conflict");
        assert_eq!(error.code, 409);
        assert_eq!(
            error.message,
            "Apply failed with 1 conflict: conflict with \"exsec\": .data.A"
        );
        let forced = apply(Some(&first), json!({"A": "Yg=="}), OTHER, true).expect("forced");
        assert_eq!(forced.object["data"]["A"], "Yg==");
        assert!(
            forced
                .managers
                .fields_of("exsec", Operation::Apply)
                .is_empty()
        );
    }

    #[test]
    fn updates_take_changed_fields() {
        let first = apply(None, json!({"A": "YQ=="}), EXSEC, true).expect("create");
        let mut patched = Value::clone(&first.object);
        patched["data"]["A"] = json!("Yg==");
        let managers = record_update(Some(&first), &patched, OTHER);
        assert!(managers.fields_of("exsec", Operation::Apply).is_empty());
        assert!(!managers.fields_of("other", Operation::Update).is_empty());
    }

    #[test]
    fn copies_leave_managed_fields_out() {
        let stored = json!({"metadata": {"name": "s", "managedFields": [{"manager": "m"}]}, "data": {"A": "YQ=="}});
        let copy = without_managed_fields(&stored);
        assert_eq!(
            copy,
            json!({"metadata": {"name": "s"}, "data": {"A": "YQ=="}})
        );
        assert!(same_object(&stored, &copy));
        let mut changed = copy.clone();
        changed["data"]["A"] = json!("Yg==");
        assert!(!same_object(&stored, &changed));
    }

    #[test]
    fn identity_and_status_are_not_owned() {
        let view = managed_view(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "status": {"replicas": 1},
            "metadata": {"name": "d", "namespace": "n", "labels": {"a": "b"}, "uid": "u"},
            "spec": {"replicas": null}
        }));
        assert_eq!(
            view,
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {}})
        );
    }
}
