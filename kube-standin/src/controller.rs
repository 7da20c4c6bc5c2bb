//! A tiny Deployment controller: it makes every rollout succeed at once.
//!
//! A real cluster's controllers create ReplicaSets and Pods and report progress in
//! `status`. Clients such as exsec only read that status (observed generation, ready and
//! available replicas, the `Available`/`Progressing` conditions), so the stand-in writes
//! the status a finished rollout would have, in the same write. The `stall_rollouts`
//! fault turns this off so "rollout still in progress" can be tested.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

/// Writes the status of a completed rollout of `deployment` into it.
pub fn complete_rollout(deployment: &mut Value, time: &str) {
    let name = deployment
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generation = deployment
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replica_set = format!(
        "{name}-{}",
        template_hash(deployment.pointer("/spec/template"))
    );
    let previous = deployment
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str, reason: &str, message: String| {
        let since = previous
            .iter()
            .find(|old| old["type"] == kind && old["status"] == "True")
            .and_then(|old| old.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(time));
        json!({
            "type": kind,
            "status": "True",
            "lastUpdateTime": time,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        })
    };
    let mut status = Map::new();
    status.insert("observedGeneration".to_owned(), json!(generation));
    if replicas > 0 {
        for field in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            status.insert(field.to_owned(), json!(replicas));
        }
    }
    status.insert(
        "conditions".to_owned(),
        json!([
            condition(
                "Available",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_owned()
            ),
            condition(
                "Progressing",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{replica_set}\" has successfully progressed.")
            ),
        ]),
    );
    if let Value::Object(object) = deployment {
        object.insert("status".to_owned(), Value::Object(status));
    }
}

/// Whether `deployment`'s status already reports its current generation as rolled out.
pub fn rolled_out(deployment: &Value) -> bool {
    deployment.pointer("/status/observedGeneration") == deployment.pointer("/metadata/generation")
        && deployment
            .pointer("/status/updatedReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == deployment
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
}

/// A ReplicaSet-like suffix from the pod template, in the alphabet the real
/// `pod-template-hash` uses, so names look familiar.
fn template_hash(template: Option<&Value>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hasher = DefaultHasher::new();
    template.map(Value::to_string).hash(&mut hasher);
    let mut value = hasher.finish();
    (0..10)
        .map(|_| {
            let index = usize::try_from(value % 27).unwrap_or(0);
            value /= 27;
            char::from(ALPHABET[index])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_a_finished_rollout() {
        let mut deployment = json!({"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 2, "template": {}}});
        assert!(!rolled_out(&deployment));
        complete_rollout(&mut deployment, "2026-01-01T00:00:00Z");
        assert!(rolled_out(&deployment));
        let status = &deployment["status"];
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(status["availableReplicas"], 2);
        assert_eq!(status["conditions"][0]["type"], "Available");
        complete_rollout(&mut deployment, "2026-01-02T00:00:00Z");
        assert_eq!(
            deployment["status"]["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            deployment["status"]["conditions"][0]["lastUpdateTime"],
            "2026-01-02T00:00:00Z"
        );
    }
}
