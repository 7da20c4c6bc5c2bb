//! The checks of `exsec doctor`: one function per row of the
//! troubleshooting table, each judging the typed facts without I/O.

use std::collections::BTreeSet;

use super::{Check, Facts, Fetched};
use crate::api::dto::{ChainState, StorageState};
use crate::cli::deploy::{injection_text, rollout_text};
use crate::cli::output::{names, or_dash};
use crate::model::{DeployStatus, InjectionReason, InjectionStatus, RolloutState, ScopeKind};
use crate::store::StorageFault;
use crate::store::records::CleanupKind;

/// One row of the troubleshooting table, judged from the facts.
type CheckFn = fn(&Subject<'_>) -> Check;

/// The checks, in the order the report lists them (the seed's table, then
/// the daemon's own state and the last deploy's outcome).
const CHECKS: &[CheckFn] = &[
    secrets,
    master_key,
    storage,
    audit_log,
    pinned,
    redeploy,
    cluster_secret,
    env_from,
    rollout,
    overrides,
    required_env,
    last_deploy,
    cleanup,
];

/// Judges the facts: one check per row of the troubleshooting table.
pub fn diagnose(facts: &Facts) -> Vec<Check> {
    let image = deploy_image(facts);
    let subject = Subject {
        facts,
        app: &facts.app.app_id,
        tenant: &facts.app.tenant_id,
        redeploy: format!("exsec deploy {} --image {image}", facts.app.app_id),
    };
    CHECKS.iter().map(|check| check(&subject)).collect()
}

/// What the checks share: the facts and the words for the app.
struct Subject<'a> {
    facts: &'a Facts,
    app: &'a str,
    tenant: &'a str,
    /// The command that redeploys the app.
    redeploy: String,
}

impl Subject<'_> {
    /// The effective set's env var names.
    fn expected_keys(&self) -> BTreeSet<&str> {
        self.facts
            .effective
            .keys
            .iter()
            .map(|k| k.key.as_str())
            .collect()
    }

    /// Whether the effective set is empty.
    fn no_secrets(&self) -> bool {
        self.facts.effective.keys.is_empty()
    }
}

/// 1. Secrets exist for the tenant or the app.
fn secrets(s: &Subject<'_>) -> Check {
    let (app, tenant) = (s.app, s.tenant);
    let keys = &s.facts.effective.keys;
    if keys.is_empty() {
        return Check::problem(
            "secrets",
            format!("neither app {app} nor tenant {tenant} has external secrets"),
            format!(
                "exsec secrets set --tenant {tenant} PROVIDER KEY (all apps of the tenant) or --app {app} (this app only)"
            ),
        );
    }
    let from_app = keys.iter().filter(|k| k.source == ScopeKind::App).count();
    Check::ok(
        "secrets",
        format!(
            "{} env vars: {from_app} from the app, {} from tenant {tenant}",
            keys.len(),
            keys.len() - from_app
        ),
    )
}

/// 2. Master key loaded; no record waits for a missing key.
fn master_key(s: &Subject<'_>) -> Check {
    let keyring = match &s.facts.keys {
        Fetched::NotAdmin => {
            return Check::skipped(
                "master key",
                "needs the admin token (a tenant token cannot read the keyring)",
            );
        }
        Fetched::Failed(reason) => {
            return Check::skipped(
                "master key",
                format!("the keyring could not be read: {reason}"),
            );
        }
        Fetched::Got(keyring) => keyring,
    };
    let Some(active) = keyring.active.as_deref().filter(|_| !keyring.degraded) else {
        return Check::problem(
            "master key",
            "no master key is loaded: secret writes fail and deploys skip injection",
            "on the daemon's host: exsec keys generate --dir KEYS_DIR (keys.dir of the config); no restart needed",
        );
    };
    let missing: Vec<String> = keyring
        .keys
        .iter()
        .filter(|k| !k.present && k.records > 0)
        .map(|k| format!("{} ({} records)", k.id, k.records))
        .collect();
    if !missing.is_empty() {
        return Check::problem(
            "master key",
            format!(
                "records are sealed under keys that are not loaded: {}; deploys of apps using them fail injection",
                missing.join(", ")
            ),
            "put those key files back into the key directory (ID.key); the daemon picks them up without a restart",
        );
    }
    Check::ok(
        "master key",
        format!("active key {active}; no record waits for a missing key"),
    )
}

/// The daemon's own state: writes reach the disk.
fn storage(s: &Subject<'_>) -> Check {
    let Some(ready) = &s.facts.ready else {
        return Check::skipped("storage", "the daemon did not say (older than this CLI?)");
    };
    if ready.storage == StorageState::Ok {
        return Check::ok("storage", "writes reach the disk");
    }
    let (why, fix) = match ready.storage_fault {
        Some(StorageFault::NoSpace) => ("the daemon's disk is full", "free space on"),
        Some(StorageFault::ReadOnly) => (
            "the daemon's file system is read-only",
            "make writable (remount read-write, or fix the file's permissions)",
        ),
        Some(StorageFault::Io) | None => ("the daemon's disk fails", "repair"),
    };
    Check::problem(
        "storage",
        format!("writes fail ({why}); reads are still answered"),
        format!(
            "{fix} the file system of storage.path; exsec resumes writes by itself, no restart needed"
        ),
    )
}

/// The daemon's own state: the audit log is whole.
fn audit_log(s: &Subject<'_>) -> Check {
    let Some(ready) = &s.facts.ready else {
        return Check::skipped("audit log", "the daemon did not say (older than this CLI?)");
    };
    match ready.audit.chain {
        ChainState::Verified => {
            return Check::ok(
                "audit log",
                "the hash chain verified up to the newest event",
            );
        }
        ChainState::Verifying => {
            return Check::ok(
                "audit log",
                "verifying the events appended since the last verified position (after a start)",
            );
        }
        ChainState::Broken => {}
    }
    Check::problem(
        "audit log",
        format!(
            "the audit log was changed after it was last verified: {}",
            or_dash(ready.audit.error.as_deref())
        ),
        "compare with a logged anchor (exsec audit verify --anchor SEQ:HASH) or a backup, and find who had write access to the data directory",
    )
}

/// 3. Redeploy after a change.
fn redeploy(s: &Subject<'_>) -> Check {
    if let Some(queued) = &s.facts.app.redeploy_queued {
        return match &queued.last_error {
            Some(error) if queued.attempts > 0 => Check::problem(
                "redeploy",
                format!(
                    "an automatic redeploy queued at {} failed {} time(s): {error}; exsec retries with backoff",
                    queued.queued_at, queued.attempts
                ),
                format!(
                    "fix what the error names, or deploy by hand: {}",
                    s.redeploy
                ),
            ),
            _ => Check::ok(
                "redeploy",
                format!(
                    "an automatic redeploy is queued (last change {}); it runs once the tenant's secrets are quiet",
                    queued.changed_at
                ),
            ),
        };
    }
    let effective = &s.facts.effective;
    let changed: Vec<&str> = effective
        .keys
        .iter()
        .filter(|k| k.redeploy_needed)
        .map(|k| k.key.as_str())
        .collect();
    let removed = &effective.removed_since_deploy;
    match effective.last_synced_deploy_id.as_deref() {
        None if s.no_secrets() => Check::ok("redeploy", "nothing to inject yet"),
        None => Check::problem(
            "redeploy",
            "no deploy has injected the app's secrets yet",
            s.redeploy.clone(),
        ),
        Some(deploy_id) if !changed.is_empty() || !removed.is_empty() => {
            let mut detail = Vec::new();
            if !changed.is_empty() {
                detail.push(format!(
                    "{} changed after deploy {deploy_id}",
                    names(&changed)
                ));
            }
            if !removed.is_empty() {
                detail.push(format!(
                    "{} removed after deploy {deploy_id} (still in the cluster)",
                    names(removed)
                ));
            }
            Check::problem("redeploy", detail.join("; "), s.redeploy.clone())
        }
        Some(deploy_id) => Check::ok(
            "redeploy",
            format!("the cluster got the current values with deploy {deploy_id}"),
        ),
    }
}

/// The app runs a rolled-back (pinned) secret set: its current values
/// wait, and so do automatic redeploys (SPEC §11.3).
fn pinned(s: &Subject<'_>) -> Check {
    let Some(deploy_id) = &s.facts.app.pinned_to else {
        return Check::ok("pinned", "the app follows its current secrets");
    };
    Check::warning(
        "pinned",
        format!(
            "app {} runs the secret set of deploy {deploy_id} (rolled back): changed values are not deployed and automatic redeploys wait",
            s.app
        ),
        format!(
            "when the current values are right again: `{}` or `exsec unpin {}`",
            s.redeploy, s.app
        ),
    )
}

/// 4. The Secret exists with the expected key names.
fn cluster_secret(s: &Subject<'_>) -> Check {
    let cluster = match &s.facts.cluster {
        Fetched::Got(cluster) => cluster,
        unreadable => {
            let reason = match unreadable {
                Fetched::Failed(reason) => reason.clone(),
                _ => "the cluster route is not available to this token".to_owned(),
            };
            return Check::problem(
                "cluster secret",
                format!("cannot read the cluster: {reason}"),
                "check the daemon's cluster settings (cluster.*) and the API server; `exsec doctor` again",
            );
        }
    };
    let secret_name = &cluster.secret.name;
    let expected = s.expected_keys();
    if !cluster.secret.exists && expected.is_empty() {
        return Check::ok(
            "cluster secret",
            format!("no Secret {secret_name}, and none is needed"),
        );
    }
    if !cluster.secret.exists {
        return Check::problem(
            "cluster secret",
            format!("Secret {secret_name} does not exist in the cluster"),
            s.redeploy.clone(),
        );
    }
    let present: BTreeSet<&str> = cluster.secret.keys.iter().map(String::as_str).collect();
    let lacking: Vec<&str> = expected.difference(&present).copied().collect();
    let extra: Vec<&str> = present.difference(&expected).copied().collect();
    if lacking.is_empty() && extra.is_empty() {
        return Check::ok(
            "cluster secret",
            format!(
                "Secret {secret_name} holds the {} expected keys",
                expected.len()
            ),
        );
    }
    let mut detail = Vec::new();
    if !lacking.is_empty() {
        detail.push(format!("lacks {}", lacking.join(", ")));
    }
    if !extra.is_empty() {
        detail.push(format!(
            "holds {} which the app no longer has",
            extra.join(", ")
        ));
    }
    Check::problem(
        "cluster secret",
        format!("Secret {secret_name} {}", detail.join(" and ")),
        s.redeploy.clone(),
    )
}

/// 5. The Deployment reads the Secret through envFrom.
fn env_from(s: &Subject<'_>) -> Check {
    let app = s.app;
    let Fetched::Got(cluster) = &s.facts.cluster else {
        return Check::skipped("envFrom", "cluster not readable");
    };
    let Some(deployment) = &cluster.deployment else {
        return Check::problem(
            "envFrom",
            format!("there is no Deployment {app} in the cluster"),
            s.redeploy.clone(),
        );
    };
    let secret_name = &cluster.secret.name;
    match deployment
        .env_from
        .iter()
        .find(|r| &r.secret_name == secret_name)
    {
        Some(reference) => Check::ok(
            "envFrom",
            format!(
                "Deployment {app} reads Secret {secret_name} through envFrom (optional: {})",
                reference.optional
            ),
        ),
        None => Check::problem(
            "envFrom",
            format!(
                "Deployment {app} does not read Secret {secret_name} through envFrom: the values never reach its pods"
            ),
            format!(
                "{} (exsec sets envFrom), or add `envFrom: [{{secretRef: {{name: {secret_name}, optional: true}}}}]` to the container `app` of your own manifest",
                s.redeploy
            ),
        ),
    }
}

/// 8. The rollout.
fn rollout(s: &Subject<'_>) -> Check {
    let app = s.app;
    let Fetched::Got(cluster) = &s.facts.cluster else {
        return Check::skipped("rollout", "cluster not readable");
    };
    let Some(deployment) = &cluster.deployment else {
        return Check::skipped("rollout", "no Deployment to roll out");
    };
    let rollout = &deployment.rollout;
    match rollout.status {
        RolloutState::Complete => {
            Check::ok("rollout", format!("complete: {}", rollout_text(rollout)))
        }
        RolloutState::Progressing => Check::warning(
            "rollout",
            format!("in progress: {}", rollout_text(rollout)),
            format!(
                "wait, or look at why it is stuck: kubectl -n {namespace} rollout status deployment/{app}; kubectl -n {namespace} describe pods -l app.kubernetes.io/name={app}",
                namespace = cluster.namespace
            ),
        ),
        RolloutState::Unknown | RolloutState::Superseded | RolloutState::Absent => Check::skipped(
            "rollout",
            format!("the {} target cannot report rollouts", cluster.target),
        ),
    }
}

/// 6. An app override shadows a tenant default ("wrong value injected").
fn overrides(s: &Subject<'_>) -> Check {
    let (app, tenant) = (s.app, s.tenant);
    let shadowing: Vec<_> = s
        .facts
        .effective
        .keys
        .iter()
        .filter(|k| k.overrides_tenant)
        .collect();
    let Some(first) = shadowing.first() else {
        return Check::ok("overrides", "no app override shadows a tenant default");
    };
    let listed: Vec<&str> = shadowing.iter().map(|k| k.key.as_str()).collect();
    let (provider, key) = (&first.provider, &first.key);
    Check::warning(
        "overrides",
        format!(
            "the app's own value of {} wins over tenant {tenant}'s default: if the app gets an unexpected value, this is why",
            names(&listed)
        ),
        format!(
            "compare a candidate: exsec secrets verify --app {app} {provider} {key}; use the tenant default instead: exsec secrets rm --app {app} {provider} {key}"
        ),
    )
}

/// 7. `required_env` names missing from the effective set.
fn required_env(s: &Subject<'_>) -> Check {
    let (app, tenant) = (s.app, s.tenant);
    let required = &s.facts.app.required_env;
    let expected = s.expected_keys();
    let missing: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|name| !expected.contains(name))
        .collect();
    if required.is_empty() {
        return Check::ok("required env", "the app declares no required env vars");
    }
    let Some(first) = missing.first() else {
        return Check::ok(
            "required env",
            format!("all {} required env vars are set", required.len()),
        );
    };
    Check::problem(
        "required env",
        format!(
            "the app requires {} but its effective set lacks them (missing_required_env)",
            names(&missing)
        ),
        format!(
            "exsec secrets set --app {app} PROVIDER {first} (or --tenant {tenant}), then {}",
            s.redeploy
        ),
    )
}

/// The last deploy's own outcome.
fn last_deploy(s: &Subject<'_>) -> Check {
    let Some(deploy) = &s.facts.last_deploy else {
        return Check::skipped("last deploy", "the app has no deploys yet");
    };
    let secrets = &deploy.external_secrets;
    let id = &deploy.deploy_id;
    if deploy.status != DeployStatus::Succeeded {
        return Check::problem(
            "last deploy",
            format!(
                "deploy {id} failed: {}",
                deploy
                    .error
                    .as_deref()
                    .unwrap_or("the Deployment was not applied")
            ),
            format!(
                "check the daemon's log and the cluster, then {}",
                s.redeploy
            ),
        );
    }
    if secrets.status == InjectionStatus::Failed
        || secrets.reason == Some(InjectionReason::MasterKeyUnavailable)
    {
        return Check::problem(
            "last deploy",
            format!("deploy {id}: external secrets {}", injection_text(secrets)),
            s.redeploy.clone(),
        );
    }
    Check::ok(
        "last deploy",
        format!(
            "deploy {id} succeeded; external secrets {}",
            injection_text(secrets)
        ),
    )
}

/// 10. Nothing holding plaintext waits for removal.
fn cleanup(s: &Subject<'_>) -> Check {
    let Fetched::Got(cluster) = &s.facts.cluster else {
        return Check::skipped("cleanup", "the cluster could not be read");
    };
    let Some(pending) = &cluster.cleanup_pending else {
        return Check::ok("cleanup", "nothing left to remove");
    };
    Check::problem(
        "cleanup",
        format!(
            "{} of app {} could not be removed since {} ({} attempts): {}; exsec keeps retrying",
            if pending.kind == CleanupKind::StaleSecret {
                "a Secret holding values the app no longer has"
            } else {
                "objects of a deleted app"
            },
            s.app,
            pending.since,
            pending.attempts,
            pending.last_error,
        ),
        "fix what the error names (a read-only manifests directory, a missing `delete` right on secrets); the next retry removes it",
    )
}

/// The image to suggest for a redeploy: the cluster's, else the last
/// deploy's, else a placeholder.
fn deploy_image(facts: &Facts) -> String {
    let from_cluster = match &facts.cluster {
        Fetched::Got(cluster) => cluster.deployment.as_ref().and_then(|d| d.image.as_deref()),
        _ => None,
    };
    from_cluster
        .or_else(|| Some(facts.last_deploy.as_ref()?.image_ref.as_str()))
        .unwrap_or("IMAGE")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dto::{
        AppDto, CleanupDto, ClusterDto, ClusterSecretDto, DeployDto, DeploymentDto, EffectiveDto,
        EffectiveEntryDto, EnvFromDto, InjectionDto, KeyStatusDto, KeysDto, ReadyAuditDto,
        ReadyClusterDto, ReadyDto, ReadyKeyringDto, ReplicaCountsDto, RolloutDto,
        RotationStatusDto,
    };
    use crate::api::dto::{DatabaseState, Readiness};
    use crate::cli::doctor::Status;
    use crate::model::{DeployTrigger, RolloutChange};

    const TIME: &str = "2026-11-30T00:00:00Z";
    const SECRET: &str = "app-web-external-secrets";

    fn key(id: &str, present: bool, records: u64) -> KeyStatusDto {
        KeyStatusDto {
            id: id.to_owned(),
            present,
            records,
            safe_to_remove: records == 0,
        }
    }

    fn keyring(keys: Vec<KeyStatusDto>) -> Fetched<KeysDto> {
        Fetched::Got(KeysDto {
            active: Some("k2".to_owned()),
            degraded: false,
            keys,
            rotation: RotationStatusDto {
                state: crate::rotation::RotationState::Idle,
                remaining: 0,
                waiting_for: std::collections::BTreeMap::new(),
            },
            data_key_rotations: Vec::new(),
        })
    }

    fn rollout(status: RolloutState, replicas: i32, updated: i32, available: i32) -> RolloutDto {
        RolloutDto {
            status,
            error: None,
            counts: Some(ReplicaCountsDto {
                replicas: Some(replicas),
                updated_replicas: Some(updated),
                ready_replicas: None,
                available_replicas: Some(available),
            }),
        }
    }

    fn injection(
        status: InjectionStatus,
        reason: Option<InjectionReason>,
        undecryptable: &[&str],
    ) -> InjectionDto {
        let keys: Vec<String> = if status == InjectionStatus::Injected {
            vec!["OPENAI_API_KEY".to_owned()]
        } else {
            Vec::new()
        };
        InjectionDto {
            status,
            reason,
            secret_name: SECRET.to_owned(),
            key_count: keys.len(),
            keys,
            undecryptable: undecryptable.iter().map(|k| (*k).to_owned()).collect(),
            warnings: Vec::new(),
        }
    }

    fn deploy(deploy_id: &str, external_secrets: InjectionDto) -> DeployDto {
        DeployDto {
            deploy_id: deploy_id.to_owned(),
            app_id: "web".to_owned(),
            tenant_id: "acme".to_owned(),
            image_ref: "nginx:1".to_owned(),
            replicas: None,
            port: None,
            status: DeployStatus::Succeeded,
            error: None,
            created_at: TIME.to_owned(),
            warnings: Vec::new(),
            external_secrets,
            trigger: DeployTrigger::Api,
            rollout: Some(RolloutChange::Restarted),
            secrets_hash: None,
        }
    }

    fn ready(storage_fault: Option<StorageFault>, chain_error: Option<&str>) -> Option<ReadyDto> {
        Some(ReadyDto {
            status: Readiness::Ready,
            degraded: chain_error.is_some(),
            database: DatabaseState::Ok,
            storage: if storage_fault.is_some() {
                StorageState::Degraded
            } else {
                StorageState::Ok
            },
            storage_fault,
            keyring: ReadyKeyringDto {
                active: Some("k2".to_owned()),
                keys: 1,
                degraded: false,
            },
            audit: ReadyAuditDto {
                chain: if chain_error.is_some() {
                    ChainState::Broken
                } else {
                    ChainState::Verified
                },
                error: chain_error.map(str::to_owned),
            },
            cluster: ReadyClusterDto {
                target: crate::config::TargetKind::Kubernetes,
                reachable: true,
                error: None,
            },
        })
    }

    fn healthy() -> Facts {
        Facts {
            app: AppDto {
                app_id: "web".to_owned(),
                tenant_id: "acme".to_owned(),
                required_env: vec!["OPENAI_API_KEY".to_owned()],
                created_at: TIME.to_owned(),
                updated_at: TIME.to_owned(),
                auto_redeploy: false,
                redeploy_queued: None,
                pinned_to: None,
            },
            effective: EffectiveDto {
                app_id: "web".to_owned(),
                tenant_id: "acme".to_owned(),
                keys: vec![EffectiveEntryDto {
                    key: "OPENAI_API_KEY".to_owned(),
                    provider: "openai".to_owned(),
                    source: ScopeKind::Tenant,
                    overrides_tenant: false,
                    redeploy_needed: false,
                    version: 1,
                    updated_at: TIME.to_owned(),
                }],
                removed_since_deploy: Vec::new(),
                last_synced_deploy_id: Some("dep_1".to_owned()),
                pinned_to: None,
                warnings: Vec::new(),
            },
            keys: keyring(vec![key("k1", false, 0), key("k2", true, 1)]),
            cluster: Fetched::Got(ClusterDto {
                app_id: "web".to_owned(),
                tenant_id: "acme".to_owned(),
                target: crate::config::TargetKind::Kubernetes,
                cleanup_pending: None,
                namespace: "paas-apps".to_owned(),
                secret: ClusterSecretDto {
                    name: SECRET.to_owned(),
                    exists: true,
                    keys: vec!["OPENAI_API_KEY".to_owned()],
                },
                deployment: Some(DeploymentDto {
                    image: Some("nginx:1".to_owned()),
                    env_from: vec![EnvFromDto {
                        secret_name: SECRET.to_owned(),
                        optional: true,
                    }],
                    deploy_id: Some("dep_1".to_owned()),
                    rollout: rollout(RolloutState::Complete, 2, 2, 2),
                }),
            }),
            last_deploy: Some(deploy(
                "dep_1",
                injection(InjectionStatus::Injected, None, &[]),
            )),
            ready: ready(None, None),
        }
    }

    fn cluster_of(facts: &mut Facts) -> &mut ClusterDto {
        match &mut facts.cluster {
            Fetched::Got(cluster) => cluster,
            _ => panic!("the healthy facts read the cluster"),
        }
    }

    fn status_of(checks: &[Check], name: &str) -> Status {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}"))
            .status
    }

    #[test]
    fn a_healthy_app_passes_every_check() {
        let checks = diagnose(&healthy());
        for check in &checks {
            assert_eq!(check.status, Status::Ok, "{check:?}");
        }
        assert_eq!(checks.len(), 13);
    }

    #[test]
    fn a_pinned_app_is_a_warning_naming_the_deploy() {
        let mut facts = healthy();
        facts.app.pinned_to = Some("dep_000000000007".to_owned());
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "pinned"), Status::Warning);
        let row = checks.iter().find(|c| c.name == "pinned").unwrap();
        assert!(row.detail.contains("dep_000000000007"), "{row:?}");
        assert!(
            row.fix.as_ref().unwrap().contains("exsec unpin web"),
            "{row:?}"
        );
    }

    #[test]
    fn a_pending_cleanup_is_a_problem() {
        let mut facts = healthy();
        cluster_of(&mut facts).cleanup_pending = Some(CleanupDto {
            kind: CleanupKind::StaleSecret,
            since: TIME.to_owned(),
            attempts: 3,
            last_attempt: "2026-11-30T00:01:00Z".to_owned(),
            last_error: "write app-web: Read-only file system".to_owned(),
        });
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "cleanup"), Status::Problem);
        let row = checks.iter().find(|c| c.name == "cleanup").unwrap();
        assert!(row.detail.contains("Read-only file system"), "{row:?}");
        facts.cluster = Fetched::Failed("unreachable".into());
        assert_eq!(status_of(&diagnose(&facts), "cleanup"), Status::Skipped);
    }

    /// After a start the daemon verifies the events appended since its
    /// last verified position; that is not a changed log.
    #[test]
    fn an_audit_chain_still_verifying_is_not_a_problem() {
        let mut facts = healthy();
        if let Some(ready) = facts.ready.as_mut() {
            ready.audit.chain = ChainState::Verifying;
        }
        let checks = diagnose(&facts);
        let audit = checks.iter().find(|c| c.name == "audit log").unwrap();
        assert_eq!(audit.status, Status::Ok, "{audit:?}");
        assert!(audit.detail.contains("verifying"), "{audit:?}");
    }

    #[test]
    fn a_full_disk_and_a_broken_audit_chain_are_problems() {
        let mut facts = healthy();
        facts.ready = ready(
            Some(StorageFault::NoSpace),
            Some("audit event 7 was altered"),
        );
        let checks = diagnose(&facts);
        let storage = checks.iter().find(|c| c.name == "storage").unwrap();
        assert_eq!(storage.status, Status::Problem);
        assert!(storage.detail.contains("disk is full"), "{storage:?}");
        facts.ready = ready(Some(StorageFault::ReadOnly), None);
        let storage = diagnose(&facts)
            .into_iter()
            .find(|c| c.name == "storage")
            .unwrap();
        assert!(storage.detail.contains("read-only"), "{storage:?}");
        assert!(
            storage
                .fix
                .as_deref()
                .unwrap()
                .contains("remount read-write")
        );
        facts.ready = ready(
            Some(StorageFault::NoSpace),
            Some("audit event 7 was altered"),
        );
        let checks = diagnose(&facts);
        let audit = checks.iter().find(|c| c.name == "audit log").unwrap();
        assert_eq!(audit.status, Status::Problem);
        assert!(audit.detail.contains("event 7 was altered"), "{audit:?}");
        facts.ready = None;
        assert_eq!(status_of(&diagnose(&facts), "storage"), Status::Skipped);
    }

    #[test]
    fn a_progressing_rollout_is_a_warning() {
        let mut facts = healthy();
        if let Some(deployment) = &mut cluster_of(&mut facts).deployment {
            deployment.rollout = rollout(RolloutState::Progressing, 2, 1, 1);
        }
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "rollout"), Status::Warning);
        let rollout = checks.iter().find(|c| c.name == "rollout").unwrap();
        assert!(rollout.detail.contains("1/2 updated"), "{}", rollout.detail);
        assert!(
            rollout
                .fix
                .as_ref()
                .unwrap()
                .contains("kubectl -n paas-apps rollout status")
        );
    }

    #[test]
    fn a_missing_key_with_records_and_a_tenant_token_are_told_apart() {
        let mut facts = healthy();
        facts.keys = keyring(vec![key("k1", false, 3), key("k2", true, 1)]);
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "master key"), Status::Problem);
        assert!(
            checks[1].detail.contains("k1 (3 records)"),
            "{}",
            checks[1].detail
        );
        facts.keys = Fetched::NotAdmin;
        assert_eq!(status_of(&diagnose(&facts), "master key"), Status::Skipped);
    }

    #[test]
    fn an_unreadable_cluster_is_a_problem() {
        let mut facts = healthy();
        facts.cluster =
            Fetched::Failed("connection refused (HTTP 502, cluster_unreachable)".to_owned());
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "cluster secret"), Status::Problem);
        assert_eq!(status_of(&checks, "envFrom"), Status::Skipped);
    }

    #[test]
    fn a_failed_injection_is_named() {
        let mut facts = healthy();
        facts.last_deploy = Some(deploy(
            "dep_2",
            injection(
                InjectionStatus::Failed,
                Some(InjectionReason::UndecryptableValues),
                &["OPENAI_API_KEY"],
            ),
        ));
        let checks = diagnose(&facts);
        let last = checks.iter().find(|c| c.name == "last deploy").unwrap();
        assert_eq!(last.status, Status::Problem);
        assert!(
            last.detail
                .contains("OPENAI_API_KEY are sealed under a master key"),
            "{}",
            last.detail
        );
    }
}
