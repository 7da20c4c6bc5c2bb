//! Field paths and field sets: the unit of ownership in server-side apply.
//!
//! The real server tracks ownership with structured-merge-diff over the OpenAPI schema.
//! The stand-in uses a simpler model that keeps the behaviour clients depend on: a field is
//! a path of map keys down to a *leaf* — a scalar, a list (lists are atomic), or an empty
//! map. A [`FieldSet`] is the set of leaves a manager owns, rendered as the real
//! `fieldsV1` format (`{"f:data": {"f:KEY": {}}}`) for `managedFields`.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Joins the keys of a path. No Kubernetes field name or map key contains a NUL, and it
/// sorts before every other character, so a path's descendants sort right after it.
const SEPARATOR: char = '\0';

/// A path of map keys from the object root, e.g. `data` → `API_KEY`, stored as one string
/// so that building and copying paths costs one allocation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path through `keys`.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> FieldPath {
        let mut path = String::new();
        for key in keys {
            if !path.is_empty() {
                path.push(SEPARATOR);
            }
            path.push_str(key);
        }
        FieldPath(path)
    }

    /// The keys, from the root.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.split(SEPARATOR)
    }

    /// The proper ancestors, nearest the root first, as raw paths.
    fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices(SEPARATOR)
            .map(|(index, _)| &self.0[..index])
    }
}

impl Borrow<str> for FieldPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A set of leaf field paths; shared, because most writes leave most sets unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(Arc<BTreeSet<FieldPath>>);

impl FieldSet {
    /// The leaves of `value`: every path that ends at a scalar, a list or an empty map.
    pub fn leaves_of(value: &Value) -> FieldSet {
        let mut leaves = BTreeSet::new();
        if let Value::Object(map) = value {
            collect_leaves(map, &mut String::new(), &mut leaves);
        }
        FieldSet(Arc::new(leaves))
    }

    /// Whether `path` is in the set exactly.
    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// Whether the set holds `path`, an ancestor of it, or a descendant of it: the fields
    /// that would be touched by changing `path`.
    pub fn overlaps(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
            || path.ancestors().any(|ancestor| self.0.contains(ancestor))
            || self.first_descendant(path).is_some()
    }

    /// Removes `path`, its ancestors and its descendants; returns whether anything went.
    pub fn remove_overlapping(&mut self, path: &FieldPath) -> bool {
        if !self.overlaps(path) {
            return false;
        }
        let set = Arc::make_mut(&mut self.0);
        set.remove(path);
        for ancestor in path.ancestors() {
            set.remove(ancestor);
        }
        while let Some(descendant) = first_descendant(set, path) {
            set.remove(&descendant);
        }
        true
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: FieldPath) {
        Arc::make_mut(&mut self.0).insert(path);
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
        for path in self.0.iter() {
            let mut node = &mut root;
            for key in path.keys() {
                let child = node
                    .entry(format!("f:{key}"))
                    .or_insert_with(|| Value::Object(Map::new()));
                node = ensure_object(child);
            }
            if self.first_descendant(path).is_some() {
                node.insert(".".to_owned(), Value::Object(Map::new()));
            }
        }
        Value::Object(root)
    }

    fn first_descendant(&self, path: &FieldPath) -> Option<FieldPath> {
        first_descendant(&self.0, path)
    }
}

/// The first path below `path` in `set`: all of them sort right after `path` itself.
fn first_descendant(set: &BTreeSet<FieldPath>, path: &FieldPath) -> Option<FieldPath> {
    set.range::<str, _>((Bound::Excluded(path.0.as_str()), Bound::Unbounded))
        .next()
        .filter(|candidate| {
            candidate.0.len() > path.0.len()
                && candidate.0.starts_with(path.0.as_str())
                && candidate.0[path.0.len()..].starts_with(SEPARATOR)
        })
        .cloned()
}

/// The value at `path` in `value`, if every step is a map holding the key.
pub fn get<'a>(value: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    path.keys()
        .try_fold(value, |node, key| node.as_object()?.get(key))
}

/// Deep-merges `source` into `target`, moving values: maps merge key by key, anything
/// else replaces what was there, and an empty map only ensures a map exists, so applying
/// `labels: {}` never wipes labels that other managers set.
pub fn merge(target: &mut Value, source: Value) {
    let Value::Object(source) = source else {
        *target = source;
        return;
    };
    let map = ensure_object(target);
    for (key, value) in source {
        match map.get_mut(&key) {
            Some(existing) if value.is_object() && existing.is_object() => merge(existing, value),
            _ => {
                map.insert(key, value);
            }
        }
    }
}

/// Removes `path` from `value`, then removes ancestors left empty unless `keep` says an
/// ancestor is itself an owned (empty-map) field. Top-level fields stay.
pub fn remove(value: &mut Value, path: &FieldPath, keep: impl Fn(&FieldPath) -> bool) {
    let keys: Vec<&str> = path.keys().collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let Some(Value::Object(map)) = get_mut(value, parents) else {
        return;
    };
    if map.remove(*last).is_none() {
        return;
    }
    for end in (1..parents.len()).rev() {
        let ancestor = &parents[..=end];
        let empty = matches!(get_mut(value, ancestor), Some(Value::Object(map)) if map.is_empty());
        if !empty || keep(&FieldPath::new(ancestor.iter().copied())) {
            return;
        }
        if let Some(Value::Object(parent)) = get_mut(value, &parents[..end]) {
            parent.remove(ancestor[end]);
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
pub fn display(path: &FieldPath) -> String {
    path.keys().map(|key| format!(".{key}")).collect()
}

fn get_mut<'a>(value: &'a mut Value, keys: &[&str]) -> Option<&'a mut Value> {
    keys.iter()
        .try_fold(value, |node, key| node.as_object_mut()?.get_mut(*key))
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

fn collect_leaves(map: &Map<String, Value>, prefix: &mut String, out: &mut BTreeSet<FieldPath>) {
    for (key, child) in map {
        let length = prefix.len();
        if length > 0 {
            prefix.push(SEPARATOR);
        }
        prefix.push_str(key);
        match child {
            Value::Object(inner) if !inner.is_empty() => collect_leaves(inner, prefix, out),
            _ => {
                out.insert(FieldPath(prefix.clone()));
            }
        }
        prefix.truncate(length);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> FieldPath {
        FieldPath::new(text.split('.'))
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
    fn descendants_are_told_from_siblings_sharing_a_prefix() {
        let mut set = FieldSet::default();
        set.insert(path("specx"));
        assert!(!set.overlaps(&path("spec")));
        set.insert(path("spec.x"));
        assert!(set.overlaps(&path("spec")));
        assert!(set.remove_overlapping(&path("spec")));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![&path("specx")]);
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
    fn merge_moves_leaves_and_keeps_maps() {
        let mut value =
            json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"list": [1]}});
        merge(
            &mut value,
            json!({"metadata": {"labels": {}}, "spec": {"list": [2], "n": 1}}),
        );
        assert_eq!(
            value,
            json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"list": [2], "n": 1}})
        );
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
            *ancestor == path("metadata.labels")
        });
        assert_eq!(kept["metadata"]["labels"], json!({}));
    }
}
