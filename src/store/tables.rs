//! Every redb table of exsec, defined in one place with its key layout.
//!
//! Values are always bytes written by [`super::codec`]; keys are plain redb
//! types so that ranges work. Text keys use `/` as separator, which no id,
//! provider or env var name may contain, so a prefix range never spills
//! into a neighbour.

use redb::TableDefinition;

/// `name → codec bytes`: schema version, key fingerprints, counters.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `tenant_id → TenantRecord`.
pub const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// `app_id → AppRecord`.
pub const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
/// `"{tenant_id}/{app_id}" → ()`: the apps of a tenant, for listing and
/// for the effective-set size check of a tenant-wide write.
pub const TENANT_APPS: TableDefinition<&str, ()> = TableDefinition::new("tenant_apps");
/// `"{t|a}/{owner}/{provider}/{key}" → SecretRecord` (see [`secret_key`]).
pub const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("external_secrets");
/// `key_id → number of secret records sealed under it`, kept in the same
/// transaction as every secret write so key status is a lookup, not a scan.
pub const KEY_USAGE: TableDefinition<&str, u64> = TableDefinition::new("key_usage");
/// `token_id → TokenRecord`.
pub const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// `(app_id, deploy sequence) → DeployRecord`; newest last.
pub const DEPLOYS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("deploys");
/// `"{app_id}/{idempotency key}" → IdempotencyRecord`.
pub const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency_keys");
/// `seq → StoredAuditEvent`: the append-only, hash-chained audit log.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("paas_audit_events");
/// `app_id → CleanupRecord`: cluster objects holding plaintext (a manifests
/// file, a Secret) that could not be removed yet; retried until they are
/// (schema version 2).
pub const PENDING_CLEANUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("pending_cleanups");
/// `app_id → RedeployRecord`: automatic redeploys queued by secret writes
/// in the same transaction, until they ran (schema version 3).
pub const REDEPLOY_QUEUE: TableDefinition<&str, &[u8]> = TableDefinition::new("redeploy_queue");

/// `("{t|a}/{owner}/{provider}/{key}", version) → SecretVersionRecord`: the
/// kept versions of each secret, oldest first (schema version 4).
pub const SECRET_VERSIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("external_secret_versions");

/// `"{tenant_id}/{dek_id}" → DataKeyRecord`: each tenant's data keys,
/// wrapped under a master key (SPEC §11.4; schema version 5). Wraps count
/// in `key_usage` under their master key like directly sealed records.
pub const TENANT_DATA_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_data_keys");

/// Names of every table, in a fixed order (schema preparation checks they
/// all exist; backups dump them in this order).
pub fn names() -> [&'static str; 14] {
    use redb::TableHandle;
    [
        META.name(),
        TENANTS.name(),
        APPS.name(),
        TENANT_APPS.name(),
        SECRETS.name(),
        KEY_USAGE.name(),
        TOKENS.name(),
        DEPLOYS.name(),
        IDEMPOTENCY.name(),
        AUDIT.name(),
        PENDING_CLEANUPS.name(),
        REDEPLOY_QUEUE.name(),
        SECRET_VERSIONS.name(),
        TENANT_DATA_KEYS.name(),
    ]
}

/// Meta key of the schema version (`u32`).
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// Meta key of the audit checkpoint left by pruning (`Anchor`).
pub const META_AUDIT_CHECKPOINT: &str = "audit_checkpoint";
/// Meta key of the last verified audit position (`Anchor`): start-up
/// verification goes on from there.
pub const META_AUDIT_VERIFIED: &str = "audit_verified";
/// Meta key of the time of the last storage probe (`Timestamp`).
pub const META_STORAGE_PROBE: &str = "storage_probe";
/// The installation key of the secrets hash (32 bytes, raw; created once).
pub const META_INSTALLATION_KEY: &str = "installation_key";
/// Meta key prefix of a master key fingerprint: `key_fingerprint/{key_id}`.
pub const META_FINGERPRINT_PREFIX: &str = "key_fingerprint/";

/// Key of a secret record: `{scope tag}/{owner}/{provider}/{key}`.
pub fn secret_key(scope_tag: u8, owner: &str, provider: &str, key: &str) -> String {
    let mut out = String::with_capacity(4 + owner.len() + provider.len() + key.len());
    out.push(char::from(scope_tag));
    out.push('/');
    out.push_str(owner);
    out.push('/');
    out.push_str(provider);
    out.push('/');
    out.push_str(key);
    out
}

/// Bounds of all secret keys of one scope owner: `["{t}/{owner}/", "{t}/{owner}0")`
/// (`'0'` is the byte after `'/'`).
pub fn secret_scope_range(scope_tag: u8, owner: &str) -> (String, String) {
    let mut start = String::with_capacity(3 + owner.len());
    start.push(char::from(scope_tag));
    start.push('/');
    start.push_str(owner);
    start.push('/');
    let mut end = start.clone();
    end.pop();
    end.push('0');
    (start, end)
}

/// Bounds of every key starting with `{prefix}/`.
pub fn prefix_range(prefix: &str) -> (String, String) {
    (format!("{prefix}/"), format!("{prefix}0"))
}
