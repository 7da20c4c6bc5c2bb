//! Deploys on the wire: the request, the answer (or the problem of a
//! failed one), the history, one deploy with its rollout, a dry run.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::WarningDto;
use super::apps::secret_name;
use super::schema::{
    Schema, array, closed_object, count, described, list_of, names, nullable_integer,
    nullable_string, nullable_words, record, reference, reference_to, string, warnings, words,
    words_of,
};
use crate::cluster::Rollout;
use crate::deploy::{DryRunInjection, DryRunReport, MAX_IMAGE_REF_LEN, MAX_REPLICAS};
use crate::model::{
    DeployStatus, DeployTrigger, InjectionReason, InjectionStatus, RolloutChange, RolloutState,
};
use crate::store::records::DeployRecord;

/// `POST /v1/apps/{id}/deploys`. Members left out are not sent (the CLI
/// sends what it was given).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// Must be the app's tenant; empty or missing is inferred (warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// If present, must equal the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The image to roll out; required unless `rollback_to` is given
    /// (which takes the image of that deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// Replicas; omitted leaves ownership to an autoscaler. Wider than
    /// its range so that an out-of-range number is `invalid_replicas`,
    /// not a type error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Container port; wide for the same reason (`invalid_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Roll the pods even when nothing changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// Roll back to this earlier deploy of the app: its image, replicas,
    /// port and exactly its secret versions (SPEC §11.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<String>,
}

/// The injection outcome in a deploy answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InjectionDto {
    /// `injected`, `skipped` or `failed`.
    pub status: InjectionStatus,
    /// Why skipped or failed (`null` when injected).
    pub reason: Option<InjectionReason>,
    /// `app-{app_id}-external-secrets`.
    pub secret_name: String,
    /// Number of keys injected.
    pub key_count: usize,
    /// Names injected.
    pub keys: Vec<String>,
    /// Names whose value could not be opened.
    pub undecryptable: Vec<String>,
    /// Notes.
    pub warnings: Vec<WarningDto>,
}

/// A deploy: the answer of `POST …/deploys` and an entry of the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployDto {
    /// Id.
    pub deploy_id: String,
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Image.
    pub image_ref: String,
    /// Replicas asked for.
    pub replicas: Option<i32>,
    /// Port asked for.
    pub port: Option<u16>,
    /// `succeeded` or `failed`.
    pub status: DeployStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Start time.
    pub created_at: String,
    /// Notes.
    pub warnings: Vec<WarningDto>,
    /// What happened to the external secrets.
    pub external_secrets: InjectionDto,
    /// `api`, `secret_change` or `rollback`.
    pub trigger: DeployTrigger,
    /// `restarted` when the pod template changed (the pods roll),
    /// `unchanged` when it did not; `None` when the Deployment apply failed
    /// (and for deploys recorded before exsec kept it).
    pub rollout: Option<RolloutChange>,
    /// The `exsec.io/secrets-hash` put on the pod template.
    pub secrets_hash: Option<String>,
}

impl From<&DeployRecord> for DeployDto {
    fn from(r: &DeployRecord) -> Self {
        let keys: Vec<String> = r.injection.injected.iter().map(|k| k.key.clone()).collect();
        Self {
            deploy_id: r.deploy_id.clone(),
            app_id: r.app_id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            image_ref: r.image_ref.clone(),
            replicas: r.replicas,
            port: r.port,
            status: r.status,
            error: r.error.clone(),
            created_at: r.created_at.to_rfc3339(),
            warnings: r.warnings.iter().map(WarningDto::from).collect(),
            external_secrets: InjectionDto {
                status: r.injection.status,
                reason: r.injection.reason,
                secret_name: r.injection.secret_name.clone(),
                key_count: keys.len(),
                keys,
                undecryptable: r.injection.undecryptable.clone(),
                warnings: r.injection.warnings.iter().map(WarningDto::from).collect(),
            },
            trigger: r.trigger,
            rollout: r.rollout,
            secrets_hash: r.secrets_hash.clone(),
        }
    }
}

/// The members a problem about a deploy carries besides the problem's own
/// (502 `deployment_apply_failed`, 503 `deploy_record_pending`): which
/// deploy, and what injection did. Not the deploy's `status`: a problem's
/// `status` is its HTTP status (RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployFailedDto {
    /// Id.
    pub deploy_id: String,
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Notes.
    pub warnings: Vec<WarningDto>,
    /// What happened to the external secrets.
    pub external_secrets: InjectionDto,
}

impl From<&DeployDto> for DeployFailedDto {
    fn from(deploy: &DeployDto) -> Self {
        Self {
            deploy_id: deploy.deploy_id.clone(),
            app_id: deploy.app_id.clone(),
            tenant_id: deploy.tenant_id.clone(),
            warnings: deploy.warnings.clone(),
            external_secrets: deploy.external_secrets.clone(),
        }
    }
}

/// `GET /v1/apps/{id}/deploys`: the history, newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeployListDto {
    /// Newest first.
    pub deploys: Vec<DeployDto>,
}

/// `GET /v1/apps/{id}/deploys/{deploy_id}`: the deploy and its rollout.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeployDetailDto {
    /// The deploy as recorded.
    #[serde(flatten)]
    pub deploy: DeployDto,
    /// The rollout of this deploy, as far as the cluster tells.
    pub rollout_status: RolloutDto,
}

/// Rollout of a deploy: `complete`, `progressing` or `unknown` with the
/// cluster's replica counts; `superseded` (a later deploy runs), `absent`
/// (no Deployment), or `unknown` with an `error` (the cluster did not
/// answer), without counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutDto {
    /// What the rollout is doing.
    pub status: RolloutState,
    /// Why the status is unknown, when the cluster did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Replica counts, when the cluster reported the Deployment.
    #[serde(flatten)]
    pub counts: Option<ReplicaCountsDto>,
}

impl RolloutDto {
    /// A rollout the cluster reported no counts for.
    pub fn without_counts(status: RolloutState, error: Option<String>) -> Self {
        Self {
            status,
            error,
            counts: None,
        }
    }
}

impl From<&Rollout> for RolloutDto {
    fn from(rollout: &Rollout) -> Self {
        Self {
            status: rollout.status,
            error: None,
            counts: Some(ReplicaCountsDto {
                replicas: rollout.replicas,
                updated_replicas: rollout.updated_replicas,
                ready_replicas: rollout.ready_replicas,
                available_replicas: rollout.available_replicas,
            }),
        }
    }
}

/// Replica counts of a Deployment (`null` where the cluster gave none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplicaCountsDto {
    /// Desired replicas.
    pub replicas: Option<i32>,
    /// Replicas running the current template.
    pub updated_replicas: Option<i32>,
    /// Ready replicas.
    pub ready_replicas: Option<i32>,
    /// Available replicas.
    pub available_replicas: Option<i32>,
}

/// `POST /v1/apps/{id}/deploys?dry_run=true`: names only, never values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DryRunDto {
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Always true.
    pub dry_run: bool,
    /// What injection would do.
    pub external_secrets: DryRunInjectionDto,
    /// Notes.
    pub warnings: Vec<WarningDto>,
}

impl From<&DryRunReport> for DryRunDto {
    fn from(report: &DryRunReport) -> Self {
        Self {
            app_id: report.app_id.clone(),
            tenant_id: report.tenant_id.clone(),
            dry_run: true,
            external_secrets: DryRunInjectionDto::from(&report.external_secrets),
            warnings: report.warnings.iter().map(WarningDto::from).collect(),
        }
    }
}

/// The injection part of a dry run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DryRunInjectionDto {
    /// `injected`, `skipped` or `failed`: what a real deploy would report.
    pub status: InjectionStatus,
    /// Why skipped or failed.
    pub reason: Option<InjectionReason>,
    /// The Secret's name.
    pub secret_name: String,
    /// Names that would be added to the cluster's Secret.
    pub added: Vec<String>,
    /// Names that would be removed from it.
    pub removed: Vec<String>,
    /// Names whose value would change.
    pub changed: Vec<String>,
    /// Names that would stay as they are.
    pub unchanged: Vec<String>,
}

impl From<&DryRunInjection> for DryRunInjectionDto {
    fn from(injection: &DryRunInjection) -> Self {
        Self {
            status: injection.status,
            reason: injection.reason,
            secret_name: injection.secret_name.clone(),
            added: injection.added.clone(),
            removed: injection.removed.clone(),
            changed: injection.changed.clone(),
            unchanged: injection.unchanged.clone(),
        }
    }
}

impl Schema for DeployBody {
    const NAME: &'static str = "DeployRequest";

    fn schema() -> Value {
        // Empty, null or missing: taken from the app (the path).
        let optional_id = |description: &str| {
            json!({
                "type": ["string", "null"],
                "maxLength": crate::model::MAX_ID_LEN,
                "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
                "description": description,
            })
        };
        let mut schema = closed_object(
            &[],
            [
                (
                    "tenant_id",
                    optional_id(
                        "must be the app's tenant (else 422 `tenant_mismatch`); empty or missing is inferred with the warning `tenant_id_inferred`",
                    ),
                ),
                (
                    "app_id",
                    optional_id("must equal the path's app (else 422 `app_id_mismatch`)"),
                ),
                (
                    "image_ref",
                    json!({
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_IMAGE_REF_LEN,
                        "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$",
                        "description": "the image to roll out, without spaces or control characters; required unless `rollback_to` is given (else 400 `invalid_image_ref`)",
                    }),
                ),
                (
                    "rollback_to",
                    json!({
                        "type": "string",
                        "pattern": "^dep_[0-9]{12}$",
                        "description": "roll back to this deploy of the app: its image, replicas, port and exactly the secret versions it injected (409 `snapshot_unavailable` naming the version when one is no longer kept; nothing applied). The app is then pinned (`pinned_to`). Not combined with `image_ref`, `replicas`, `port` or `restart` (400 `invalid_rollback`)",
                    }),
                ),
                (
                    "replicas",
                    json!({
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "maximum": MAX_REPLICAS,
                        "description": "omitted leaves the count to an autoscaler",
                    }),
                ),
                (
                    "port",
                    json!({ "type": ["integer", "null"], "minimum": 1, "maximum": 65535 }),
                ),
                (
                    "restart",
                    json!({
                        "type": "boolean",
                        "default": false,
                        "description": "roll the pods even when the image, port and secrets are unchanged (sets `exsec.io/restarted-at` on the pod template)",
                    }),
                ),
            ],
        );
        // A deploy names an image, or a rollback names the earlier deploy
        // and nothing of the workload (else 400 `missing_field` or
        // `invalid_rollback`).
        // `anyOf` of two disjoint branches, with `false` for "absent":
        // generators draw from it directly instead of filtering.
        schema["anyOf"] = json!([
            { "required": ["image_ref"], "properties": { "rollback_to": false } },
            {
                "required": ["rollback_to"],
                "properties": {
                    "image_ref": false,
                    "replicas": { "type": "null" },
                    "port": { "type": "null" },
                    "restart": { "const": false },
                },
            },
        ]);
        schema
    }
}

/// `injected`, `skipped` or `failed`.
fn injection_status() -> Value {
    words::<InjectionStatus>()
}

/// Why injection was skipped or failed.
fn injection_reason() -> Value {
    described(
        nullable_words::<InjectionReason>(),
        "why skipped or failed; null when injected",
    )
}

impl Schema for InjectionDto {
    const NAME: &'static str = "Injection";

    fn schema() -> Value {
        record([
            ("status", injection_status()),
            ("reason", injection_reason()),
            ("secret_name", secret_name()),
            ("key_count", count()),
            ("keys", names()),
            ("undecryptable", names()),
            ("warnings", warnings()),
        ])
    }
}

impl Schema for DeployDto {
    const NAME: &'static str = "Deploy";

    fn schema() -> Value {
        record([
            ("deploy_id", reference("DeployId")),
            ("app_id", reference("ResourceId")),
            ("tenant_id", reference("ResourceId")),
            ("image_ref", string()),
            ("replicas", nullable_integer()),
            ("port", nullable_integer()),
            ("status", words::<DeployStatus>()),
            ("error", nullable_string()),
            ("created_at", reference("Timestamp")),
            ("warnings", warnings()),
            ("external_secrets", reference_to::<InjectionDto>()),
            ("trigger", words::<DeployTrigger>()),
            (
                "rollout",
                described(
                    nullable_words::<RolloutChange>(),
                    "`restarted` when the pod template changed (the pods roll), `unchanged` when it did not; null when the Deployment apply failed or for deploys recorded before exsec kept it",
                ),
            ),
            (
                "secrets_hash",
                json!({
                    "description": "the `exsec.io/secrets-hash` put on the pod template (HMAC-SHA256 of the effective set under the installation key, 32 hex characters)",
                    "type": ["string", "null"],
                    "pattern": "^[0-9a-f]{32}$",
                }),
            ),
        ])
    }
}

impl Schema for DeployFailedDto {
    const NAME: &'static str = "DeployProblem";

    /// The 502 of a deploy whose Deployment could not be applied: recorded
    /// as failed, and the caller still learns what injection did.
    fn schema() -> Value {
        json!({
            "allOf": [reference("Problem")],
            "required": ["deploy_id", "app_id", "tenant_id", "warnings", "external_secrets"],
            "properties": {
                "deploy_id": reference("DeployId"),
                "app_id": reference("ResourceId"),
                "tenant_id": reference("ResourceId"),
                "warnings": warnings(),
                "external_secrets": reference_to::<InjectionDto>(),
            },
        })
    }
}

impl DeployFailedDto {
    /// The name of [`DeployFailedDto::pending_schema`] under
    /// `components.schemas`.
    pub const PENDING_NAME: &'static str = "DeployPendingProblem";

    /// A 503 of the deploy route. `deploy_record_pending`: the deploy ran
    /// (the cluster holds it) but its record waits for storage to heal; it
    /// names the deploy like the 502, plus how it ended (`deploy_status`).
    pub fn pending_schema() -> Value {
        let failed = Self::schema();
        let mut required = failed["required"].clone();
        if let Value::Array(names) = &mut required {
            names.push(json!("deploy_status"));
        }
        let mut properties = failed["properties"].clone();
        properties["deploy_status"] = words::<DeployStatus>();
        json!({
            "allOf": [reference("Problem")],
            "properties": properties,
            "if": { "properties": { "code": { "const": "deploy_record_pending" } } },
            "then": { "required": required },
        })
    }
}

impl DeployListDto {
    /// Its schema (inline in the document).
    pub fn schema() -> Value {
        list_of::<DeployDto>("deploys")
    }
}

impl Schema for DeployDetailDto {
    const NAME: &'static str = "DeployDetail";

    /// One deploy read back: the record plus the rollout the cluster
    /// reports.
    fn schema() -> Value {
        let mut schema = DeployDto::schema();
        schema["properties"]["rollout_status"] = json!({
            "description": "rollout of this deploy; `superseded` when a newer deploy runs, `absent` without a Deployment, `unknown` when the cluster cannot tell",
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": words::<RolloutState>(),
                "replicas": nullable_integer(),
                "updated_replicas": nullable_integer(),
                "ready_replicas": nullable_integer(),
                "available_replicas": nullable_integer(),
                "error": string(),
            },
            "additionalProperties": false,
        });
        if let Some(required) = schema["required"].as_array_mut() {
            required.push(json!("rollout_status"));
        }
        schema
    }
}

impl Schema for RolloutDto {
    const NAME: &'static str = "Rollout";

    /// As the cluster reports it (a deploy's own rollout adds
    /// `superseded`, `absent` and `error`: [`DeployDetailDto`]).
    fn schema() -> Value {
        record([
            (
                "status",
                words_of(&[
                    RolloutState::Complete,
                    RolloutState::Progressing,
                    RolloutState::Unknown,
                ]),
            ),
            ("replicas", nullable_integer()),
            ("updated_replicas", nullable_integer()),
            ("ready_replicas", nullable_integer()),
            ("available_replicas", nullable_integer()),
        ])
    }
}

impl Schema for DryRunDto {
    const NAME: &'static str = "DryRun";

    fn schema() -> Value {
        record([
            ("app_id", reference("ResourceId")),
            ("tenant_id", reference("ResourceId")),
            ("dry_run", json!({ "const": true })),
            ("external_secrets", reference_to::<DryRunInjectionDto>()),
            ("warnings", warnings()),
        ])
    }
}

impl Schema for DryRunInjectionDto {
    const NAME: &'static str = "DryRunInjection";

    /// Names only, compared with what the cluster holds.
    fn schema() -> Value {
        record([
            ("status", injection_status()),
            ("reason", injection_reason()),
            ("secret_name", secret_name()),
            ("added", array(string())),
            ("removed", array(string())),
            ("changed", array(string())),
            ("unchanged", array(string())),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rollout the cluster reported carries every count (`null` where
    /// unknown); one it could not report carries none, only `error` when
    /// there is one. The CLI reads both back.
    #[test]
    fn rollouts_with_and_without_counts() {
        let reported = RolloutDto::from(&Rollout {
            status: RolloutState::Progressing,
            replicas: Some(2),
            updated_replicas: Some(1),
            ready_replicas: None,
            available_replicas: Some(1),
        });
        let value = serde_json::to_value(&reported).unwrap();
        assert_eq!(
            value,
            json!({"status": "progressing", "replicas": 2, "updated_replicas": 1,
                   "ready_replicas": null, "available_replicas": 1})
        );
        let read: RolloutDto = serde_json::from_value(value).unwrap();
        assert_eq!(read.counts.and_then(|c| c.replicas), Some(2));

        let absent = RolloutDto::without_counts(RolloutState::Absent, None);
        assert_eq!(
            serde_json::to_value(&absent).unwrap(),
            json!({"status": "absent"})
        );
        let unknown =
            RolloutDto::without_counts(RolloutState::Unknown, Some("timed out".to_owned()));
        let value = serde_json::to_value(&unknown).unwrap();
        assert_eq!(value, json!({"status": "unknown", "error": "timed out"}));
        let read: RolloutDto = serde_json::from_value(value).unwrap();
        assert_eq!(read.error.as_deref(), Some("timed out"));
        assert!(read.counts.is_none_or(|c| c.replicas.is_none()));
    }

    /// Members of a deploy body the caller left out are not sent.
    #[test]
    fn a_deploy_body_sends_only_what_was_given() {
        let body = DeployBody {
            tenant_id: None,
            app_id: None,
            image_ref: Some("nginx".to_owned()),
            replicas: Some(2),
            port: None,
            restart: false,
            rollback_to: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"image_ref": "nginx", "replicas": 2})
        );
    }
}
