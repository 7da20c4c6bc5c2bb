//! Field paths and field sets: the unit of ownership in server-side apply.
//!
//! The real server tracks ownership with structured-merge-diff over the OpenAPI schema.
//! The stand-in uses a simpler model that keeps the behaviour clients depend on: a field is
//! a path of map keys down to a *leaf* — a scalar, a list (lists are atomic), or an empty
//! map. A [`FieldSet`] is the set of leaves a manager owns, rendered as the real
//! `fieldsV1` format (`{"f:data": {"f:KEY": {}}}`) for `managedFields`.

use std::collections::BTreeSet;
use std::ops::Bound;

use serde_json::{Map, Value};

/// A path of map keys from the object root, e.g. `["data", "API_KEY"]`.
pub type FieldPath = Vec<String>;

/// A set of leaf field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    /// The leaves of `value`: every path that ends at a scalar, a list or an empty map.
    pub fn leaves_of(value: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(map) = value {
            let mut prefix = Vec::new();
            collect_leaves(map, &mut prefix, &mut set.0);
        }
        set
    }

    /// Whether `path` is in the set exactly.
    pub fn contains(&self, path: &[String]) -> bool {
        self.0.contains(path)
    }

    /// Whether the set holds `path`, an ancestor of it, or a descendant of it: the fields
    /// that would be touched by changing `path`.
    pub fn overlaps(&self, path: &[String]) -> bool {
        (1..=path.len()).any(|end| self.0.contains(&path[..end]))
            || self.first_descendant(path).is_some()
    }

    /// Removes `path`, its ancestors and its descendants; returns whether anything went.
    pub fn remove_overlapping(&mut self, path: &[String]) -> bool {
        let before = self.0.len();
        for end in 1..=path.len() {
            self.0.remove(&path[..end]);
        }
        while let Some(descendant) = self.first_descendant(path) {
            self.0.remove(&descendant);
        }
        self.0.len() != before
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    /// The paths in order.
    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference<'a>(&'a self, other: &'a FieldSet) -> impl Iterator<Item = &'a FieldPath> {
        self.0.difference(&other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `fieldsV1` rendering: nested `f:`-prefixed keys, `{}` at leaves, and `"."` where
    /// a path is owned both as a leaf and as the parent of other owned paths.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for key in path {
                let child = node
                    .entry(format!("f:{key}"))
                    .or_insert_with(|| Value::Object(Map::new()));
                if !child.is_object() {
                    *child = Value::Object(Map::new());
                }
                let Value::Object(child) = child else {
                    unreachable!("replaced by an object just above");
                };
                node = child;
            }
        }
        mark_owned_parents(&mut root, &self.0, &mut Vec::new());
        Value::Object(root)
    }

    fn first_descendant(&self, path: &[String]) -> Option<FieldPath> {
        self.0
            .range::<[String], _>((Bound::Excluded(path), Bound::Unbounded))
            .next()
            .filter(|candidate| candidate.starts_with(path))
            .cloned()
    }
}

/// The value at `path` in `value`, if every step is a map holding the key.
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |node, key| node.as_object()?.get(key))
}

/// Sets `path` in `value` to `new`, creating (or replacing non-map) parents as maps. An
/// empty map only ensures a map exists, so applying `labels: {}` never wipes labels that
/// other managers set.
pub fn set(value: &mut Value, path: &[String], new: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for key in parents {
        node = ensure_object(node)
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let map = ensure_object(node);
    if new.as_object().is_some_and(Map::is_empty) && map.get(last).is_some_and(Value::is_object) {
        return;
    }
    map.insert(last.clone(), new);
}

/// Removes `path` from `value`, then removes ancestors left empty unless `keep` says an
/// ancestor is itself an owned (empty-map) field. Top-level fields stay.
pub fn remove(value: &mut Value, path: &[String], keep: impl Fn(&[String]) -> bool) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(Value::Object(map)) = get_mut(value, parents) else {
        return;
    };
    if map.remove(last).is_none() {
        return;
    }
    for end in (1..parents.len()).rev() {
        let ancestor = &parents[..end + 1];
        let empty = matches!(get(value, ancestor), Some(Value::Object(map)) if map.is_empty());
        if !empty || keep(ancestor) {
            return;
        }
        if let Some(Value::Object(parent)) = get_mut(value, &parents[..end]) {
            parent.remove(&ancestor[end]);
        }
    }
}

/// Removes `null` values from maps, recursively: a typed client's `null` means "absent".
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, child| !child.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Renders a path as the real server prints it in conflicts: `.spec.replicas`.
pub fn display(path: &[String]) -> String {
    path.iter().map(|key| format!(".{key}")).collect()
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(value, |node, key| node.as_object_mut()?.get_mut(key))
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object just above"),
    }
}

fn collect_leaves(map: &Map<String, Value>, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    for (key, child) in map {
        prefix.push(key.clone());
        match child {
            Value::Object(inner) if !inner.is_empty() => collect_leaves(inner, prefix, out),
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

/// Adds `"."` to nodes that are owned leaves *and* parents (possible when an update recorded
/// a map and later its children).
fn mark_owned_parents(
    node: &mut Map<String, Value>,
    owned: &BTreeSet<FieldPath>,
    prefix: &mut FieldPath,
) {
    for (key, child) in node.iter_mut() {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        let Value::Object(child) = child else {
            continue;
        };
        prefix.push(name.to_owned());
        if !child.is_empty() && owned.contains(prefix.as_slice()) {
            child.insert(".".to_owned(), Value::Object(Map::new()));
        }
        mark_owned_parents(child, owned, prefix);
        prefix.pop();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> FieldPath {
        text.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn leaves_stop_at_lists_scalars_and_empty_maps() {
        let value =
            json!({"data": {"A": "YQ==", "B": "Yg=="}, "spec": {"list": [1, 2], "empty": {}}});
        let leaves: Vec<_> = FieldSet::leaves_of(&value).iter().cloned().collect();
        assert_eq!(
            leaves,
            vec![
                path("data.A"),
                path("data.B"),
                path("spec.empty"),
                path("spec.list")
            ]
        );
    }

    #[test]
    fn overlaps_sees_ancestors_and_descendants() {
        let mut set = FieldSet::default();
        set.insert(path("metadata.labels.app"));
        set.insert(path("spec.template"));
        assert!(set.overlaps(&path("metadata.labels")));
        assert!(set.overlaps(&path("metadata.labels.app")));
        assert!(set.overlaps(&path("spec.template.spec")));
        assert!(!set.overlaps(&path("metadata.labelsx")));
        assert!(!set.overlaps(&path("spec.replicas")));
        assert!(set.remove_overlapping(&path("metadata")));
        assert!(!set.overlaps(&path("metadata.labels.app")));
    }

    #[test]
    fn fields_v1_matches_the_real_format() {
        let set = FieldSet::leaves_of(&json!({"data": {"K": "dg=="}, "type": "Opaque"}));
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:data": {"f:K": {}}, "f:type": {}})
        );
        let mut both = FieldSet::default();
        both.insert(path("metadata.labels"));
        both.insert(path("metadata.labels.app"));
        assert_eq!(
            both.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
        );
    }

    #[test]
    fn set_keeps_existing_maps_for_empty_values() {
        let mut value = json!({"metadata": {"labels": {"a": "1"}}});
        set(&mut value, &path("metadata.labels"), json!({}));
        assert_eq!(value["metadata"]["labels"]["a"], "1");
        set(&mut value, &path("spec.replicas"), json!(3));
        assert_eq!(value["spec"]["replicas"], 3);
    }

    #[test]
    fn remove_prunes_empty_parents_but_not_top_level() {
        let mut value =
            json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"K": "dg=="}});
        remove(&mut value, &path("metadata.labels.a"), |_| false);
        assert_eq!(value["metadata"], json!({"name": "x"}));
        remove(&mut value, &path("data.K"), |_| false);
        assert_eq!(value["data"], json!({}));
        let mut kept = json!({"metadata": {"labels": {"a": "1"}}});
        remove(&mut kept, &path("metadata.labels.a"), |ancestor| {
            ancestor == path("metadata.labels").as_slice()
        });
        assert_eq!(kept["metadata"]["labels"], json!({}));
    }
}
