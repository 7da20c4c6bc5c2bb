//! Every problem `code` the API answers, turned into a sentence that says
//! what happened and how to fix it. The CLI prints the daemon's `detail`
//! first, then this sentence.
//!
//! One table, in the order of SPEC §4; a code missing here still prints the
//! daemon's detail, so an older CLI stays usable against a newer daemon.

/// `(code, what happened and the fix)`.
pub const EXPLANATIONS: &[(&str, &str)] = &[
    // Authentication and routing.
    (
        "unauthenticated",
        "The daemon did not accept the token. Pass one with --token-file FILE or EXSEC_TOKEN: the admin token is in the daemon's auth.admin_token_file (e.g. /etc/exsec/admin.token); tenant tokens come from `exsec tokens mint TENANT`.",
    ),
    (
        "tls_required",
        "The daemon serves HTTPS on this address. Use an https:// URL with --url or EXSEC_URL, and pass its CA (or its self-signed certificate) with --cacert FILE or EXSEC_CACERT.",
    ),
    (
        "not_found",
        "That needs the admin token; a tenant token cannot see it. Use --token-file with the admin token file.",
    ),
    (
        "route_not_found",
        "The daemon does not know this request: it is probably older than this CLI. Upgrade the daemon, or use the CLI of the daemon's version.",
    ),
    (
        "method_not_allowed",
        "The daemon does not allow this request: it is probably older than this CLI. Upgrade the daemon, or use the CLI of the daemon's version.",
    ),
    (
        "duplicate_authorization",
        "The request carried two Authorization headers. Send exactly one; a proxy in between may be adding its own.",
    ),
    // Request bodies and queries.
    (
        "body_too_large",
        "The request is larger than the daemon accepts (1 MiB). Secret values are limited to 64 KiB.",
    ),
    (
        "malformed_json",
        "The daemon could not read the request. This is a bug in the client; please report it.",
    ),
    (
        "unknown_field",
        "The daemon does not know a field this CLI sent: it is probably older than this CLI. Upgrade the daemon.",
    ),
    (
        "missing_field",
        "A required field was missing from the request. This is a bug in the client; please report it.",
    ),
    (
        "wrong_type",
        "A field of the request had the wrong type. This is a bug in the client; please report it.",
    ),
    (
        "missing_body",
        "The request needs a body. This is a bug in the client; please report it.",
    ),
    (
        "unsupported_media_type",
        "The request was not sent as JSON. This is a bug in the client; please report it.",
    ),
    (
        "body_unreadable",
        "The request body did not arrive whole. Retry.",
    ),
    (
        "invalid_query",
        "An option value is out of range; see the detail above and `exsec help`.",
    ),
    // Ids and names.
    (
        "invalid_tenant_id",
        "Tenant ids are DNS labels: 1-42 lowercase letters, digits and '-', starting and ending with a letter or digit.",
    ),
    (
        "invalid_app_id",
        "App ids are DNS labels: 1-42 lowercase letters, digits and '-', starting and ending with a letter or digit.",
    ),
    (
        "invalid_provider",
        "Provider names are 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. openai).",
    ),
    (
        "invalid_key",
        "Keys are environment variable names: letters, digits and '_', not starting with a digit, at most 253 characters.",
    ),
    (
        "invalid_value",
        "Values must be UTF-8, 1 byte to 64 KiB, without NUL bytes.",
    ),
    (
        "invalid_key_id",
        "Master key ids are 1-64 letters, digits, '.', '_' or '-' (the key file name without .key).",
    ),
    (
        "invalid_input",
        "An input was not valid; see the detail above.",
    ),
    // Things that do not exist.
    (
        "tenant_not_found",
        "The tenant does not exist, or your token belongs to another tenant. Check with `exsec tenants list`; the admin creates tenants with `exsec tenants create TENANT`.",
    ),
    (
        "app_not_found",
        "The app does not exist, or your token belongs to another tenant. Check with `exsec apps list`; the admin registers apps with `exsec apps register APP --tenant TENANT`.",
    ),
    (
        "secret_not_found",
        "No external secret has that provider and key in that scope. List them with `exsec secrets list --tenant T` or `--app A`.",
    ),
    (
        "token_not_found",
        "No token of that tenant has this id. List them with `exsec tokens list TENANT`.",
    ),
    (
        "deploy_not_found",
        "The app has no deploy with this id. List them with `exsec deploys APP`.",
    ),
    (
        "version_not_found",
        "That version of the secret is not kept (never written, or pruned past `storage.secret_history`). List the kept ones with `exsec secrets history ...`.",
    ),
    // Conflicts and refusals.
    (
        "tenant_has_apps",
        "A tenant can only be deleted once it has no apps. Delete its apps first (`exsec apps list --tenant TENANT`, `exsec apps delete APP`).",
    ),
    (
        "app_tenant_fixed",
        "An app belongs to one tenant forever. Register the app under a new id for the other tenant.",
    ),
    (
        "version_is_tombstone",
        "That version records the secret's deletion and has no value. Pick an older version from `exsec secrets history ...`.",
    ),
    (
        "snapshot_unavailable",
        "A secret version the deploy used is no longer kept (pruned past `storage.secret_history`, or its scope was deleted), so its exact set cannot come back; nothing was applied. Roll back to a newer deploy, or set the value again and deploy.",
    ),
    (
        "invalid_rollback",
        "A rollback takes the image, replicas and port of the deploy it returns to: send `rollback_to` alone.",
    ),
    (
        "env_name_taken",
        "Another provider already sets this environment variable in the same scope. Remove that secret first (`exsec secrets rm ...`), or use another key name.",
    ),
    (
        "data_key_changed",
        "The tenant's data key was rotated several times while this write was being sealed. Send the write again.",
    ),
    (
        "duplicate_key",
        "A bulk write (e.g. `exsec secrets import`) listed one environment variable twice. Keep one line per key.",
    ),
    (
        "too_many_secrets",
        "A bulk write lists at most 1000 secrets. Split the file, e.g. by provider.",
    ),
    (
        "effective_set_too_large",
        "The app's merged secrets would exceed the 1 MiB a Kubernetes Secret holds. Remove or shorten other secrets of the app or its tenant first.",
    ),
    (
        "app_id_mismatch",
        "The app id in the request differs from the app deployed. Deploy the app named on the command line.",
    ),
    (
        "tenant_mismatch",
        "The app belongs to another tenant; its secrets can only come from its own tenant. Leave out --tenant (it is inferred) or give the app's tenant.",
    ),
    (
        "idempotency_key_reused",
        "This idempotency key was used for a different deploy in the last 24 hours. Use a new --idempotency-key for a new deploy.",
    ),
    (
        "invalid_idempotency_key",
        "Idempotency keys are 1-255 visible ASCII characters.",
    ),
    (
        "invalid_image_ref",
        "The image reference is not valid; give one like registry.example/team/app:1.2.3.",
    ),
    ("invalid_replicas", "Replicas must be 0 or more."),
    ("invalid_port", "The port must be 1-65535."),
    (
        "deploy_in_progress",
        "Another deploy of this app is still running. Wait for it (`exsec deploys APP`) and retry.",
    ),
    (
        "rate_limited",
        "Too many verify calls with this token. Wait for the time given above and retry.",
    ),
    (
        "key_in_use",
        "Records are still sealed under this master key. Wait until `exsec keys status` shows it safe to remove.",
    ),
    // The daemon's own state.
    (
        "master_key_unavailable",
        "No usable master key is loaded. On the daemon's host, add one with `exsec keys generate --dir KEYS_DIR` (keys.dir in the config), or put back the key file a record needs; the daemon picks it up without a restart.",
    ),
    (
        "storage_unavailable",
        "The daemon's database is failing. Check the daemon's log and its disk; exsec reopens it by itself, so retry once the disk recovers.",
    ),
    (
        "insufficient_storage",
        "The daemon's disk is full, so nothing was changed; reads still work. Free space on the file system of storage.path; writes resume by themselves within seconds, then retry.",
    ),
    (
        "deploy_record_pending",
        "The deploy ran (the cluster has it), but the daemon's disk is failing and its record is not saved yet. exsec saves it as soon as the disk recovers; check it later with `exsec deploys APP` instead of deploying again.",
    ),
    (
        "request_timeout",
        "The daemon did not finish in time. Retry; if it persists, check the daemon's log and the cluster.",
    ),
    (
        "deployment_apply_failed",
        "The Deployment could not be applied to the cluster; the deploy is recorded as failed. Check the daemon's log and the cluster (RBAC, quotas, the image), then deploy again.",
    ),
    (
        "cluster_unreachable",
        "The daemon cannot reach the cluster. Check cluster.kubeconfig, the API server and the network from the daemon's host.",
    ),
    (
        "cluster_timeout",
        "The cluster did not answer in time. Check the API server's health, then retry.",
    ),
    (
        "internal",
        "The daemon hit an internal error. Its log has the cause; please report it.",
    ),
];

/// The sentence for a problem code, if known.
pub fn explain(code: &str) -> Option<&'static str> {
    EXPLANATIONS
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, sentence)| *sentence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_explained_once() {
        let mut codes: Vec<&str> = EXPLANATIONS.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), before, "a code appears twice");
        for (code, sentence) in EXPLANATIONS {
            assert!(sentence.ends_with('.'), "{code}: end the sentence");
            assert!(!sentence.is_empty());
        }
    }

    /// The codes the daemon answers today (SPEC §4 and the handlers).
    #[test]
    fn the_daemons_codes_are_all_explained() {
        for code in [
            "unauthenticated",
            "tls_required",
            "not_found",
            "route_not_found",
            "method_not_allowed",
            "body_too_large",
            "malformed_json",
            "unknown_field",
            "missing_field",
            "wrong_type",
            "invalid_query",
            "invalid_tenant_id",
            "invalid_app_id",
            "invalid_provider",
            "invalid_key",
            "invalid_value",
            "tenant_not_found",
            "app_not_found",
            "secret_not_found",
            "token_not_found",
            "deploy_not_found",
            "tenant_has_apps",
            "app_tenant_fixed",
            "env_name_taken",
            "data_key_changed",
            "effective_set_too_large",
            "duplicate_key",
            "too_many_secrets",
            "app_id_mismatch",
            "tenant_mismatch",
            "idempotency_key_reused",
            "deploy_in_progress",
            "rate_limited",
            "master_key_unavailable",
            "storage_unavailable",
            "insufficient_storage",
            "deploy_record_pending",
            "duplicate_authorization",
            "deployment_apply_failed",
            "cluster_unreachable",
            "cluster_timeout",
            "internal",
        ] {
            assert!(explain(code).is_some(), "{code} has no explanation");
        }
    }
}
