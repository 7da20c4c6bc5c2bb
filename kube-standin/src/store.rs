//! The in-memory object store: every object, its field managers, and the
//! resource-version clock, behind one mutex.
//!
//! All writes go through [`State::write`], which runs the kind's strategy, skips no-op
//! writes (as the real server does: an apply that changes nothing keeps its
//! `resourceVersion`), runs the Deployment "controller", stamps server-owned metadata and
//! stores the result. An apply that repeats the last one on an object nothing changed
//! since is answered with the object as it is, without redoing the merge. No lock is held
//! across an `.await`; every operation is a short synchronous critical section, which is
//! what makes thousands of applies per second possible on two cores.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};

use crate::apply::{self, Draft, Live, Writer};
use crate::clock;
use crate::controller;
use crate::kind::Kind;
use crate::status::{self, ApiError, Cause};
use crate::strategy;

/// The store shared by every connection.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
}

/// Which object a request is about. `namespace` is empty for cluster-scoped kinds.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The kind.
    pub kind: Kind,
    /// The namespace (`""` for namespaces themselves).
    pub namespace: &'a str,
    /// The object name.
    pub name: &'a str,
}

/// Who writes and how.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The field manager (`fieldManager`, or derived from the user agent).
    pub manager: String,
    /// `force=true` on an apply.
    pub force: bool,
    /// `dryRun=All`: compute and answer, store nothing.
    pub dry_run: bool,
}

/// The answer to a write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored (or as it would be, on a dry run).
    pub object: Arc<Value>,
    /// Whether the write created it (201 rather than 200).
    pub created: bool,
}

/// An apply and the `resourceVersion` it left its object at.
#[derive(Debug)]
struct LastApply {
    manager: String,
    config: Value,
    resource_version: Option<String>,
}

#[derive(Debug)]
struct State {
    resource_version: u64,
    objects: BTreeMap<Key, Live>,
    /// Per object, the last apply that left it as it is: see [`State::repeated_apply`].
    last_applies: BTreeMap<Key, LastApply>,
    rollouts_stalled: bool,
    uids: UidSource,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: Kind,
    namespace: String,
    name: String,
}

impl Store {
    /// An empty store holding the `default` namespace.
    pub fn new() -> io::Result<Store> {
        let mut seed = [0_u8; 8];
        getrandom::fill(&mut seed).map_err(|error| io::Error::other(error.to_string()))?;
        let store = Store {
            state: Mutex::new(State {
                resource_version: 0,
                objects: BTreeMap::new(),
                last_applies: BTreeMap::new(),
                rollouts_stalled: false,
                uids: UidSource {
                    seed: u64::from_le_bytes(seed),
                    counter: 0,
                },
            }),
        };
        store
            .create_namespace("default")
            .map_err(io::Error::other)?;
        Ok(store)
    }

    /// Creates namespace `name` unless it exists; returns it.
    pub fn create_namespace(&self, name: &str) -> Result<Arc<Value>, ApiError> {
        let target = Target {
            kind: Kind::Namespace,
            namespace: "",
            name,
        };
        let mut state = self.lock();
        if let Some(live) = state.objects.get(&Key::of(target)) {
            return Ok(Arc::clone(&live.object));
        }
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let options = WriteOptions {
            manager: "kube-standin".to_owned(),
            force: false,
            dry_run: false,
        };
        state
            .create(target, object, &options)
            .map(|written| written.object)
    }

    /// The object `target`, or 404.
    pub fn get(&self, target: Target<'_>) -> Result<Arc<Value>, ApiError> {
        self.lock()
            .objects
            .get(&Key::of(target))
            .map(|live| Arc::clone(&live.object))
            .ok_or_else(|| ApiError::not_found(target.kind, target.name))
    }

    /// Objects of `kind` in `namespace` (all namespaces when `None`) that `keep` accepts,
    /// ordered by namespace and name, with the current resource version.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        keep: &dyn Fn(&Value) -> bool,
    ) -> (Vec<Arc<Value>>, u64) {
        let state = self.lock();
        let start = Key {
            kind,
            namespace: namespace.unwrap_or_default().to_owned(),
            name: String::new(),
        };
        let items = state
            .objects
            .range(start..)
            .take_while(|(key, _)| {
                key.kind == kind && namespace.is_none_or(|namespace| key.namespace == namespace)
            })
            .map(|(_, live)| &live.object)
            .filter(|object| keep(object))
            .cloned()
            .collect();
        (items, state.resource_version)
    }

    /// Server-side apply of `config` to `target`.
    pub fn apply(
        &self,
        target: Target<'_>,
        config: Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        check_identity(target, &config)?;
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|fields| !fields.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut state = self.lock();
        state.check_namespace(target)?;
        let key = Key::of(target);
        if let Some(unchanged) = state.repeated_apply(&key, &options.manager, &config) {
            return Ok(unchanged);
        }
        let kept = (!options.dry_run).then(|| config.clone());
        let written = state.write(target, options.dry_run, |old, time| {
            check_resource_version(target, old, &config)?;
            let writer = Writer {
                manager: &options.manager,
                api_version: target.kind.api_version(),
                time,
            };
            apply::server_side_apply(old, skeleton(target), config, writer, options.force)
        })?;
        if let Some(config) = kept {
            let last = LastApply {
                manager: options.manager.clone(),
                config,
                resource_version: resource_version_of(&written.object).map(str::to_owned),
            };
            state.last_applies.insert(key, last);
        }
        Ok(written)
    }

    /// Creates `object` (POST to a collection); its name comes from the body.
    pub fn create(
        &self,
        kind: Kind,
        namespace: &str,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let mut state = self.lock();
        let mut object = object;
        let name = match object.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => match object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
            {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", state.uids.suffix()),
                _ => {
                    let cause = Cause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".to_owned(),
                        message: "Required value: name or generateName is required".to_owned(),
                    };
                    return Err(ApiError::invalid(kind, "", &[cause]));
                }
            },
        };
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("name".to_owned(), json!(name));
        }
        let target = Target {
            kind,
            namespace,
            name: &name,
        };
        check_identity(target, &object)?;
        state.create(target, object, options)
    }

    /// Replaces `target` with `object` (PUT).
    pub fn replace(
        &self,
        target: Target<'_>,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        check_identity(target, &object)?;
        self.lock().write(target, options.dry_run, |old, time| {
            let old = old.ok_or_else(|| ApiError::not_found(target.kind, target.name))?;
            check_resource_version(target, Some(old), &object)?;
            Ok(update(target, old, object, &options.manager, time))
        })
    }

    /// Applies a JSON merge patch (RFC 7386) to `target`.
    pub fn merge_patch(
        &self,
        target: Target<'_>,
        patch: &Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        self.lock().write(target, options.dry_run, |old, time| {
            let old = old.ok_or_else(|| ApiError::not_found(target.kind, target.name))?;
            check_resource_version(target, Some(old), patch)?;
            let mut object = Value::clone(&old.object);
            merge_patch(&mut object, patch);
            check_identity(target, &object)?;
            Ok(update(target, old, object, &options.manager, time))
        })
    }

    /// Deletes `target` (and, for a namespace, everything in it); answers the real
    /// server's `Status` with `status: Success`.
    pub fn delete(&self, target: Target<'_>, dry_run: bool) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let key = Key::of(target);
        let live = state
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(target.kind, target.name))?;
        let uid = live
            .object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !dry_run {
            state.objects.remove(&key);
            if target.kind == Kind::Namespace {
                state.objects.retain(|key, _| key.namespace != target.name);
            }
            state.resource_version += 1;
        }
        Ok(status::deleted(target.kind, target.name, &uid))
    }

    /// Stops or resumes the Deployment controller. Resuming completes every rollout that
    /// waited, as a real controller catching up would.
    pub fn set_rollouts_stalled(&self, stalled: bool) {
        let mut state = self.lock();
        state.rollouts_stalled = stalled;
        if stalled {
            return;
        }
        let time = clock::now_rfc3339();
        let mut version = state.resource_version;
        for (key, live) in state.objects.iter_mut() {
            if key.kind == Kind::Deployment && !controller::rolled_out(&live.object) {
                version += 1;
                let object = Arc::make_mut(&mut live.object);
                controller::complete_rollout(object, &time);
                set_metadata(object, "resourceVersion", json!(version.to_string()));
            }
        }
        state.resource_version = version;
    }

    /// Whether the Deployment controller is stopped.
    pub fn rollouts_stalled(&self) -> bool {
        self.lock().rollouts_stalled
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Invariant: no code panics while holding the lock with the state half-written
        // (every mutation is computed first, then inserted), so a poisoned lock still
        // guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn check_namespace(&self, target: Target<'_>) -> Result<(), ApiError> {
        if !target.kind.namespaced() {
            return Ok(());
        }
        let namespace = Target {
            kind: Kind::Namespace,
            namespace: "",
            name: target.namespace,
        };
        if self.objects.contains_key(&Key::of(namespace)) {
            Ok(())
        } else {
            Err(ApiError::namespace_not_found(target.namespace))
        }
    }

    fn create(
        &mut self,
        target: Target<'_>,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        self.check_namespace(target)?;
        if self.objects.contains_key(&Key::of(target)) {
            return Err(ApiError::already_exists(target.kind, target.name));
        }
        fill_identity(target, &mut object);
        self.write(target, options.dry_run, |_, time| {
            let writer = Writer {
                manager: &options.manager,
                api_version: target.kind.api_version(),
                time,
            };
            let managers = apply::record_update(None, &object, writer);
            Ok(Draft { object, managers })
        })
    }

    /// The answer to an apply that repeats the last one: the same manager sending the
    /// same configuration to an object nothing has changed since (its `resourceVersion`
    /// is the one that apply left). Server-side apply is idempotent, so the full merge
    /// would compute the object as it is and store nothing; this answers it without
    /// redoing that work. Every exsec deploy re-applies an unchanged Secret.
    fn repeated_apply(&self, key: &Key, manager: &str, config: &Value) -> Option<Written> {
        let last = self.last_applies.get(key)?;
        let live = self.objects.get(key)?;
        let current = resource_version_of(&live.object);
        (last.manager == manager
            && current.is_some()
            && last.resource_version.as_deref() == current
            && last.config == *config)
            .then(|| Written {
                object: Arc::clone(&live.object),
                created: false,
            })
    }

    /// Runs one write of `target`: `change` turns the stored object (if any) into a draft,
    /// then the kind's strategy runs, no-op writes are skipped, the controller and the
    /// server-set metadata finish the object, and it is stored unless `dry_run`.
    ///
    /// The stored object is taken out of the map for the duration instead of copied, and
    /// put back whenever the write does not replace it.
    fn write(
        &mut self,
        target: Target<'_>,
        dry_run: bool,
        change: impl FnOnce(Option<&Live>, &str) -> Result<Draft, ApiError>,
    ) -> Result<Written, ApiError> {
        let key = Key::of(target);
        let old = self.objects.remove(&key);
        let time = clock::now_rfc3339();
        let result = change(old.as_ref(), &time)
            .and_then(|draft| self.finish(target, old.as_ref(), draft, &time));
        let (keep, answer) = match result {
            Ok(Some(new)) => {
                let written = Written {
                    object: Arc::clone(&new.object),
                    created: old.is_none(),
                };
                if dry_run {
                    (old, written)
                } else {
                    self.resource_version += 1;
                    (Some(new), written)
                }
            }
            Ok(None) => {
                let unchanged = old
                    .as_ref()
                    .map(|live| Arc::clone(&live.object))
                    .unwrap_or_default();
                (
                    old,
                    Written {
                        object: unchanged,
                        created: false,
                    },
                )
            }
            Err(error) => {
                if let Some(old) = old {
                    self.objects.insert(key, old);
                }
                return Err(error);
            }
        };
        if let Some(live) = keep {
            self.objects.insert(key, live);
        }
        Ok(answer)
    }

    /// Validates and completes `draft` as the next version of `target`; `None` when it
    /// changes nothing.
    fn finish(
        &mut self,
        target: Target<'_>,
        old: Option<&Live>,
        draft: Draft,
        time: &str,
    ) -> Result<Option<Live>, ApiError> {
        let Draft {
            mut object,
            managers,
        } = draft;
        strategy::prepare(
            target.kind,
            target.name,
            old.map(|live| live.object.as_ref()),
            &mut object,
        )?;
        if let Some(old) = old
            && apply::same_object(&old.object, &object)
            && old.managers.same_ownership(&managers)
        {
            return Ok(None);
        }
        if target.kind == Kind::Deployment && !self.rollouts_stalled {
            controller::complete_rollout(&mut object, time);
        }
        if old.is_none() {
            set_metadata(&mut object, "uid", json!(self.uids.next()));
            set_metadata(&mut object, "creationTimestamp", json!(time));
        }
        let version = self.resource_version + 1;
        set_metadata(&mut object, "resourceVersion", json!(version.to_string()));
        set_metadata(&mut object, "managedFields", managers.to_json());
        Ok(Some(Live {
            object: Arc::new(object),
            managers,
        }))
    }
}

/// The draft of a replace or merge patch that turns `old` into `object`: server-set
/// metadata and status are carried over, the writer takes the fields it changed.
fn update(target: Target<'_>, old: &Live, mut object: Value, manager: &str, time: &str) -> Draft {
    fill_identity(target, &mut object);
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        match old.object.pointer(&format!("/metadata/{field}")) {
            Some(value) => set_metadata(&mut object, field, value.clone()),
            None => remove_metadata(&mut object, field),
        }
    }
    if let Some(status) = old.object.get("status") {
        object["status"] = status.clone();
    }
    let writer = Writer {
        manager,
        api_version: target.kind.api_version(),
        time,
    };
    let managers = apply::record_update(Some(old), &object, writer);
    Draft { object, managers }
}

impl Key {
    fn of(target: Target<'_>) -> Key {
        let namespace = if target.kind.namespaced() {
            target.namespace
        } else {
            ""
        };
        Key {
            kind: target.kind,
            namespace: namespace.to_owned(),
            name: target.name.to_owned(),
        }
    }
}

/// Random-looking, unique object uids: a per-store random seed mixed with a counter.
#[derive(Debug)]
struct UidSource {
    seed: u64,
    counter: u64,
}

impl UidSource {
    fn next(&mut self) -> String {
        let high = self.mix();
        let low = self.mix();
        let bytes = (u128::from(high) << 64 | u128::from(low)).to_be_bytes();
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        // RFC 9562 version 4 layout: the version nibble and the variant bits.
        format!(
            "{}-{}-4{}-{}{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            ["8", "9", "a", "b"][usize::from(bytes[8] & 3)],
            &hex[17..20],
            &hex[20..32]
        )
    }

    /// Five characters for `generateName`, from the real server's alphabet.
    fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut value = self.mix();
        (0..5)
            .map(|_| {
                let index = usize::try_from(value % 27).unwrap_or(0);
                value /= 27;
                char::from(ALPHABET[index])
            })
            .collect()
    }

    /// splitmix64 over seed + counter.
    fn mix(&mut self) -> u64 {
        self.counter += 1;
        let mut value = self
            .seed
            .wrapping_add(self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        value ^ (value >> 31)
    }
}

/// The identity fields a new object starts from before applied fields are merged in.
fn skeleton(target: Target<'_>) -> Value {
    let mut object = json!({"apiVersion": target.kind.api_version(), "kind": target.kind.name(), "metadata": {}});
    fill_identity(target, &mut object);
    object
}

fn fill_identity(target: Target<'_>, object: &mut Value) {
    if !object.is_object() {
        *object = json!({});
    }
    object["apiVersion"] = json!(target.kind.api_version());
    object["kind"] = json!(target.kind.name());
    set_metadata(object, "name", json!(target.name));
    if target.kind.namespaced() {
        set_metadata(object, "namespace", json!(target.namespace));
    }
}

fn set_metadata(object: &mut Value, field: &str, value: Value) {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"][field] = value;
}

fn remove_metadata(object: &mut Value, field: &str) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove(field);
    }
}

/// The real server's 400s for a body that names another kind, object or namespace than
/// the URL.
fn check_identity(target: Target<'_>, object: &Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    }
    if let Some(api_version) = object.get("apiVersion").and_then(Value::as_str)
        && api_version != target.kind.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            target.kind.api_version()
        )));
    }
    if let Some(kind) = object.get("kind").and_then(Value::as_str)
        && kind != target.kind.name()
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            target.kind.name()
        )));
    }
    if let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str)
        && !target.name.is_empty()
        && name != target.name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            target.name
        )));
    }
    if target.kind.namespaced()
        && let Some(namespace) = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        && !namespace.is_empty()
        && namespace != target.namespace
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// The `resourceVersion` an object carries.
fn resource_version_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Optimistic concurrency: a body carrying a `resourceVersion` must carry the current one.
fn check_resource_version(
    target: Target<'_>,
    old: Option<&Live>,
    body: &Value,
) -> Result<(), ApiError> {
    let Some(sent) = resource_version_of(body) else {
        return Ok(());
    };
    let current = old.and_then(|live| resource_version_of(&live.object));
    match current {
        Some(current) if current == sent => Ok(()),
        Some(_) => Err(ApiError::stale(target.kind, target.name)),
        None => Err(ApiError::not_found(target.kind, target.name)),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(manager: &str) -> WriteOptions {
        WriteOptions {
            manager: manager.to_owned(),
            force: true,
            dry_run: false,
        }
    }

    /// Secret `s` in `default`.
    const SECRET_S: Target<'static> = Target {
        kind: Kind::Secret,
        namespace: "default",
        name: "s",
    };

    fn secret(name: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data})
    }

    #[test]
    fn no_op_applies_keep_the_resource_version() {
        let store = Store::new().expect("store");
        let target = SECRET_S;
        let first = store
            .apply(target, secret("s", json!({"A": "YQ=="})), &options("exsec"))
            .expect("create");
        assert!(first.created);
        let again = store
            .apply(target, secret("s", json!({"A": "YQ=="})), &options("exsec"))
            .expect("no-op");
        assert!(!again.created);
        assert_eq!(
            first.object["metadata"]["resourceVersion"],
            again.object["metadata"]["resourceVersion"]
        );
        let changed = store
            .apply(target, secret("s", json!({"A": "Yg=="})), &options("exsec"))
            .expect("update");
        assert_ne!(
            first.object["metadata"]["resourceVersion"],
            changed.object["metadata"]["resourceVersion"]
        );
        assert_eq!(
            first.object["metadata"]["uid"],
            changed.object["metadata"]["uid"]
        );
    }

    #[test]
    fn a_repeated_apply_after_another_write_is_applied_again() {
        let store = Store::new().expect("store");
        let target = SECRET_S;
        let config = secret("s", json!({"A": "YQ=="}));
        store
            .apply(target, config.clone(), &options("exsec"))
            .expect("create");
        let taken = store
            .merge_patch(target, &json!({"data": {"A": "Yg=="}}), &options("kubectl"))
            .expect("patched by another manager");
        assert_eq!(taken.object["data"]["A"], "Yg==");

        // The same configuration as exsec's last apply, but the object changed since (a
        // patch is no apply: the last apply on record is still exsec's): it must meet the
        // other manager's ownership of A, not be answered from before.
        let unforced = WriteOptions {
            force: false,
            ..options("exsec")
        };
        let error = store
            .apply(target, config.clone(), &unforced)
            .expect_err("A is kubectl's now");
        assert_eq!(error.code, 409);
        let forced = store
            .apply(target, config.clone(), &options("exsec"))
            .expect("forced back");
        assert_eq!(forced.object["data"]["A"], "YQ==");
        assert_ne!(
            forced.object["metadata"]["resourceVersion"],
            taken.object["metadata"]["resourceVersion"]
        );
        // Repeated once more with nothing in between: the same object, not a new version.
        let repeated = store
            .apply(target, config, &unforced)
            .expect("a repeat of the last apply");
        assert!(Arc::ptr_eq(&repeated.object, &forced.object));
    }

    #[test]
    fn missing_namespaces_and_identity_mismatches_are_refused() {
        let store = Store::new().expect("store");
        let target = Target {
            kind: Kind::Secret,
            namespace: "nope",
            name: "s",
        };
        let error = store
            .apply(target, secret("s", json!({})), &options("exsec"))
            .expect_err("no namespace");
        assert_eq!(error.message, "namespaces \"nope\" not found");
        let target = Target {
            kind: Kind::Secret,
            namespace: "default",
            name: "other",
        };
        let error = store
            .apply(target, secret("s", json!({})), &options("exsec"))
            .expect_err("name");
        assert_eq!(error.code, 400);
    }

    #[test]
    fn deleting_a_namespace_deletes_its_objects() {
        let store = Store::new().expect("store");
        store.create_namespace("apps").expect("namespace");
        let target = Target {
            kind: Kind::Secret,
            namespace: "apps",
            name: "s",
        };
        store
            .apply(target, secret("s", json!({})), &options("exsec"))
            .expect("create");
        store
            .delete(
                Target {
                    kind: Kind::Namespace,
                    namespace: "",
                    name: "apps",
                },
                false,
            )
            .expect("delete");
        assert_eq!(store.get(target).expect_err("gone").code, 404);
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut value = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut value, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(value, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn uids_are_unique_v4() {
        let mut source = UidSource {
            seed: 7,
            counter: 0,
        };
        let (first, second) = (source.next(), source.next());
        assert_ne!(first, second);
        assert_eq!(first.len(), 36);
        assert_eq!(&first[14..15], "4");
    }
}
