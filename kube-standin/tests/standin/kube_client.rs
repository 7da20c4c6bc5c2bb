//! Server-side apply, ownership and errors through the real kube-rs client, with the
//! calls exsec's deploy makes (`Patch::Apply`, field manager `exsec`, force).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube_standin::Kind;
use serde_json::json;

use crate::harness::{Cluster, NAMESPACE, data_of, deployment, secret, string_data_secret};

fn exsec() -> PatchParams {
    PatchParams::apply("exsec").force()
}

fn api_error(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn secret_apply_creates_then_updates() {
    let cluster = Cluster::start().await;
    let secrets = cluster.secrets();
    let name = "app-web-external-secrets";
    let created = secrets
        .patch(
            name,
            &exsec(),
            &Patch::Apply(secret(name, &[("A", "1"), ("B", "2")])),
        )
        .await
        .expect("apply creates");
    assert_eq!(data_of(&created).len(), 2);
    let uid = created.metadata.uid.clone().expect("uid");
    let first_version = created
        .metadata
        .resource_version
        .clone()
        .expect("resourceVersion");

    let updated = secrets
        .patch(
            name,
            &exsec(),
            &Patch::Apply(secret(name, &[("A", "one"), ("B", "2")])),
        )
        .await
        .expect("apply updates");
    assert_eq!(data_of(&updated)["A"], "one");
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_ne!(
        updated.metadata.resource_version.as_deref(),
        Some(first_version.as_str())
    );
    assert!(updated.metadata.creation_timestamp.is_some());

    let managed = updated.metadata.managed_fields.expect("managedFields");
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("exsec"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    assert_eq!(managed[0].fields_type.as_deref(), Some("FieldsV1"));
    let fields = &managed[0].fields_v1.as_ref().expect("fieldsV1").0;
    assert_eq!(fields["f:data"], json!({"f:A": {}, "f:B": {}}));
    assert_eq!(
        fields["f:metadata"]["f:labels"]["f:exsec.io/app-id"],
        json!({})
    );

    let stored = cluster
        .standin
        .object(Kind::Secret, NAMESPACE, name)
        .expect("stored");
    assert_eq!(stored["data"]["A"], "b25l");
}

#[tokio::test]
async fn no_op_apply_keeps_the_resource_version() {
    let cluster = Cluster::start().await;
    let secrets = cluster.secrets();
    let first = secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("apply");
    let again = secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("apply");
    assert_eq!(
        first.metadata.resource_version,
        again.metadata.resource_version
    );
}

#[tokio::test]
async fn a_key_dropped_from_data_disappears() {
    let cluster = Cluster::start().await;
    let secrets = cluster.secrets();
    secrets
        .patch(
            "s",
            &exsec(),
            &Patch::Apply(secret("s", &[("KEEP", "1"), ("REVOKED", "2")])),
        )
        .await
        .expect("first apply");
    let after = secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("KEEP", "1")])))
        .await
        .expect("second apply");
    assert_eq!(data_of(&after).keys().collect::<Vec<_>>(), vec!["KEEP"]);
    let fetched = secrets.get("s").await.expect("get");
    assert!(!data_of(&fetched).contains_key("REVOKED"));
}

/// kubernetes#108008: keys applied as `stringData` are stored in `data`, owned by nobody,
/// so no later apply by the same manager removes them. exsec must always send `data`.
#[tokio::test]
async fn string_data_keys_are_never_removed_kubernetes_108008() {
    let cluster = Cluster::start().await;
    let secrets = cluster.secrets();
    let created = secrets
        .patch(
            "s",
            &exsec(),
            &Patch::Apply(string_data_secret("s", &[("OLD", "secret")])),
        )
        .await
        .expect("apply with stringData");
    assert_eq!(data_of(&created)["OLD"], "secret");
    assert!(created.string_data.is_none(), "stringData is never stored");
    let managed = created.metadata.managed_fields.expect("managedFields");
    let fields = &managed[0].fields_v1.as_ref().expect("fieldsV1").0;
    assert_eq!(
        fields["f:stringData"],
        json!({"f:OLD": {}}),
        "ownership stays on stringData"
    );

    let without = secrets
        .patch("s", &exsec(), &Patch::Apply(string_data_secret("s", &[])))
        .await
        .expect("apply without the key");
    assert_eq!(
        data_of(&without)["OLD"],
        "secret",
        "the trap: the key stays"
    );

    let with_data = secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("NEW", "v")])))
        .await
        .expect("apply with data");
    assert_eq!(
        data_of(&with_data)["OLD"],
        "secret",
        "even an apply with data leaves it"
    );
    let dropped = secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("OTHER", "v")])))
        .await
        .expect("apply dropping NEW");
    assert!(
        !data_of(&dropped).contains_key("NEW"),
        "keys sent as data are removed when dropped"
    );
}

#[tokio::test]
async fn deployment_apply_populates_status() {
    let cluster = Cluster::start().await;
    let deployments = cluster.deployments();
    let created = deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "registry/web:1", None)),
        )
        .await
        .expect("apply deployment");
    assert_eq!(created.metadata.generation, Some(1));
    let status = created.status.expect("status");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(1), Some(1), Some(1), Some(1))
    );
    let conditions = status.conditions.expect("conditions");
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == "True")
    );

    let rolled = deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "registry/web:2", None)),
        )
        .await
        .expect("apply new image");
    assert_eq!(rolled.metadata.generation, Some(2));
    assert_eq!(
        rolled.status.and_then(|status| status.observed_generation),
        Some(2)
    );
    let spec = rolled.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1), "defaulted");
    let container = &spec.template.spec.expect("pod spec").containers[0];
    assert_eq!(container.image.as_deref(), Some("registry/web:2"));
}

#[tokio::test]
async fn another_managers_replicas_survive_an_exsec_apply() {
    let cluster = Cluster::start().await;
    let deployments = cluster.deployments();
    deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:1", None)),
        )
        .await
        .expect("exsec apply");
    let scaled = deployments
        .patch(
            "web",
            &PatchParams::apply("autoscaler"),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}
            })),
        )
        .await
        .expect("autoscaler apply");
    assert_eq!(scaled.spec.and_then(|spec| spec.replicas), Some(3));
    let redeployed = deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:2", None)),
        )
        .await
        .expect("exsec apply without replicas");
    assert_eq!(redeployed.spec.and_then(|spec| spec.replicas), Some(3));
    assert_eq!(
        redeployed
            .status
            .and_then(|status| status.available_replicas),
        Some(3)
    );
}

/// What exsec must know about `replicas` "only when given": once exsec has sent them, it
/// owns them, and a later deploy without them resets them to the default of 1.
#[tokio::test]
async fn replicas_dropped_by_their_only_owner_fall_back_to_one() {
    let cluster = Cluster::start().await;
    let deployments = cluster.deployments();
    deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:1", Some(4))),
        )
        .await
        .expect("apply with replicas");
    let after = deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:1", None)),
        )
        .await
        .expect("apply without replicas");
    assert_eq!(after.spec.and_then(|spec| spec.replicas), Some(1));
}

#[tokio::test]
async fn a_missing_object_is_an_api_404() {
    let cluster = Cluster::start().await;
    let status = api_error(cluster.secrets().get("absent").await.expect_err("missing"));
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "secrets \"absent\" not found");
    assert!(status.is_not_found());
    assert!(
        cluster
            .secrets()
            .get_opt("absent")
            .await
            .expect("get_opt")
            .is_none()
    );
    let status = api_error(
        cluster
            .deployments()
            .get("absent")
            .await
            .expect_err("missing"),
    );
    assert_eq!(status.message, "deployments.apps \"absent\" not found");
}

#[tokio::test]
async fn applying_into_a_missing_namespace_is_a_404() {
    let cluster = Cluster::start().await;
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "nowhere");
    let status = api_error(
        secrets
            .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
            .await
            .expect_err("no namespace"),
    );
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn another_managers_field_is_a_409_without_force() {
    let cluster = Cluster::start().await;
    let secrets = cluster.secrets();
    secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("exsec apply");
    let status = api_error(
        secrets
            .patch(
                "s",
                &PatchParams::apply("operator"),
                &Patch::Apply(secret("s", &[("A", "2")])),
            )
            .await
            .expect_err("conflict"),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.starts_with("Apply failed with"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("conflict with \"exsec\": .data.A"),
        "{}",
        status.message
    );
    let forced = secrets
        .patch(
            "s",
            &PatchParams::apply("operator").force(),
            &Patch::Apply(secret("s", &[("A", "2")])),
        )
        .await
        .expect("forced apply");
    assert_eq!(data_of(&forced)["A"], "2");
    // exsec forces it back, as every deploy does.
    let back = secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("exsec");
    assert_eq!(data_of(&back)["A"], "1");
}

#[tokio::test]
async fn changing_the_selector_is_a_422() {
    let cluster = Cluster::start().await;
    let deployments = cluster.deployments();
    deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:1", None)),
        )
        .await
        .expect("apply");
    let mut moved = deployment("web", "img:1", None);
    let labels = [("app.kubernetes.io/name".to_owned(), "other".to_owned())]
        .into_iter()
        .collect();
    if let Some(spec) = moved.spec.as_mut() {
        spec.selector.match_labels = Some(labels);
        if let Some(metadata) = spec.template.metadata.as_mut() {
            metadata.labels = spec.selector.match_labels.clone();
        }
    }
    let status = api_error(
        deployments
            .patch("web", &exsec(), &Patch::Apply(moved))
            .await
            .expect_err("immutable"),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("field is immutable"),
        "{}",
        status.message
    );
    let causes = status.details.expect("details").causes;
    assert_eq!(causes[0].field, "spec.selector");
}

#[tokio::test]
async fn secret_data_must_be_base64() {
    let cluster = Cluster::start().await;
    let bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"A": "not base64!"}});
    let status = api_error(
        cluster
            .secrets()
            .patch("s", &exsec(), &Patch::Apply(bad))
            .await
            .expect_err("invalid"),
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert!(
        cluster
            .standin
            .object(Kind::Secret, NAMESPACE, "s")
            .is_none()
    );
}

#[tokio::test]
async fn the_request_log_shows_the_apply_parameters() {
    let cluster = Cluster::start().await;
    cluster
        .secrets()
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("apply");
    let requests = cluster.standin.requests();
    let apply = requests
        .iter()
        .find(|request| request.method == "PATCH")
        .expect("a PATCH");
    assert_eq!(apply.path, "/api/v1/namespaces/paas-apps/secrets/s");
    assert_eq!(apply.query_param("fieldManager").as_deref(), Some("exsec"));
    assert_eq!(apply.query_param("force").as_deref(), Some("true"));
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
}

#[tokio::test]
async fn lists_filter_by_label_and_carry_a_resource_version() {
    let cluster = Cluster::start().await;
    let secrets = cluster.secrets();
    for name in ["app-a-external-secrets", "app-b-external-secrets"] {
        secrets
            .patch(name, &exsec(), &Patch::Apply(secret(name, &[("K", "v")])))
            .await
            .expect("apply");
    }
    let all = secrets.list(&ListParams::default()).await.expect("list");
    assert_eq!(all.items.len(), 2);
    assert!(
        all.metadata
            .resource_version
            .is_some_and(|version| !version.is_empty())
    );
    let one =
        secrets
            .list(&ListParams::default().labels(
                "exsec.io/app-id=app-a-external-secrets,app.kubernetes.io/managed-by=exsec",
            ))
            .await
            .expect("list by label");
    let names: Vec<_> = one
        .items
        .iter()
        .filter_map(|item| item.metadata.name.clone())
        .collect();
    assert_eq!(names, vec!["app-a-external-secrets"]);
    let everywhere: Api<Secret> = Api::all(cluster.client.clone());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .expect("list all")
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn delete_answers_a_status_then_404() {
    let cluster = Cluster::start().await;
    let secrets = cluster.secrets();
    secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("apply");
    let deleted = secrets
        .delete("s", &DeleteParams::default())
        .await
        .expect("delete");
    let status = deleted.right().expect("a Status, not the object");
    assert!(status.is_success());
    assert!(
        cluster
            .standin
            .object(Kind::Secret, NAMESPACE, "s")
            .is_none()
    );
    let status = api_error(
        secrets
            .delete("s", &DeleteParams::default())
            .await
            .expect_err("gone"),
    );
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn dry_run_applies_store_nothing() {
    let cluster = Cluster::start().await;
    let answer = cluster
        .secrets()
        .patch(
            "s",
            &exsec().dry_run(),
            &Patch::Apply(secret("s", &[("A", "1")])),
        )
        .await
        .expect("dry run");
    assert_eq!(data_of(&answer)["A"], "1");
    assert!(
        cluster
            .standin
            .object(Kind::Secret, NAMESPACE, "s")
            .is_none()
    );
}

#[tokio::test]
async fn namespaces_can_be_created_through_the_api() {
    let cluster = Cluster::start().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    let created = namespaces
        .patch(
            "tenant-x",
            &exsec(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tenant-x"}}),
            ),
        )
        .await
        .expect("namespace apply");
    assert_eq!(
        created.status.and_then(|status| status.phase).as_deref(),
        Some("Active")
    );
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "tenant-x");
    deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img", None)),
        )
        .await
        .expect("apply into the new namespace");
}

/// An ordinary write (merge patch, as `kubectl patch --type merge` sends) is recorded as an
/// `Update` manager that owns what it changed; exsec's forced apply takes a field back only
/// when it sends it.
#[tokio::test]
async fn merge_patches_are_update_managers() {
    let cluster = Cluster::start().await;
    let deployments = cluster.deployments();
    deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:1", None)),
        )
        .await
        .expect("apply");
    let patched = deployments
        .patch(
            "web",
            &PatchParams {
                field_manager: Some("operator".to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("merge patch");
    let managed = patched.metadata.managed_fields.expect("managedFields");
    let operator = managed
        .iter()
        .find(|entry| entry.manager.as_deref() == Some("operator"))
        .expect("entry");
    assert_eq!(operator.operation.as_deref(), Some("Update"));
    assert_eq!(
        operator.fields_v1.as_ref().expect("fieldsV1").0,
        json!({"f:spec": {"f:replicas": {}}})
    );

    let redeployed = deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:2", None)),
        )
        .await
        .expect("apply without replicas");
    assert_eq!(redeployed.spec.and_then(|spec| spec.replicas), Some(5));
    let status = api_error(
        deployments
            .patch(
                "web",
                &PatchParams::apply("exsec"),
                &Patch::Apply(deployment("web", "img:2", Some(2))),
            )
            .await
            .expect_err("conflict with the operator"),
    );
    assert!(
        status
            .message
            .contains("conflict with \"operator\": .spec.replicas"),
        "{}",
        status.message
    );
    let forced = deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:2", Some(2))),
        )
        .await
        .expect("forced");
    assert_eq!(forced.spec.and_then(|spec| spec.replicas), Some(2));
}
