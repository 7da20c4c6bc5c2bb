//! Fault knobs: make the stand-in fail, drop, hang or slow down on purpose.
//!
//! Client code must be tested against the failures a real API server produces — 5xx
//! answers, `429` with `Retry-After`, connections that die, requests that never return,
//! rollouts that do not finish. The knobs are set through [`Faults`] in-process or through
//! `POST /_standin/faults` (the same [`FaultSpec`] as JSON) on the binary. Control
//! requests under `/_standin/` are never subject to faults, so a hang can always be cleared.
//!
//! Per request, in order: the fixed latency is waited; while a hang rule matches the
//! request waits (it resumes when the knobs change); the first matching drop rule with
//! requests left closes the connection; the first matching fail rule with requests left
//! answers its status; last, a chaos rule ([`crate::chaos`]) draws whether to fail it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::chaos::{Chaos, ChaosFault, ChaosRule};
use crate::status::ApiError;
use crate::store::Store;

/// Fail matching requests with an HTTP status and a matching `Status` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailRule {
    /// The HTTP status to answer (the `Status` reason follows it: 429 → `TooManyRequests`).
    pub status: u16,
    /// How many matching requests fail (default 1).
    #[serde(default = "one")]
    pub count: u64,
    /// Adds `Retry-After: N` and `details.retryAfterSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Only requests whose path contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Only requests with this method (`PATCH`, case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// Close the connection of matching requests without answering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropRule {
    /// How many matching requests are dropped (default 1).
    #[serde(default = "one")]
    pub count: u64,
    /// Carry the request out first, then drop the answer: a lost response.
    #[serde(default)]
    pub after_processing: bool,
    /// Only requests whose path contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Only requests with this method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// Hold matching requests unanswered until the rule is cleared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangRule {
    /// Only requests whose path contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Only requests with this method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// One change to the knobs: each field that is present adds a rule or sets a knob. This
/// is the body of `POST /_standin/faults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Adds a fail rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<FailRule>,
    /// Adds a drop rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<DropRule>,
    /// Adds a hang rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang: Option<HangRule>,
    /// Sets the latency added to every request (0 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Stops (true) or resumes (false) the Deployment controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_rollouts: Option<bool>,
    /// Replaces the chaos rule (`percent: 0` turns chaos off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<ChaosRule>,
}

/// The knobs as they stand (remaining counts included), as `GET /_standin/faults` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultState {
    /// Fail rules with requests left.
    pub fail: Vec<FailRule>,
    /// Drop rules with requests left.
    pub drop: Vec<DropRule>,
    /// Active hang rules.
    pub hang: Vec<HangRule>,
    /// Latency added to every request.
    pub latency_ms: u64,
    /// Whether the Deployment controller is stopped.
    pub stall_rollouts: bool,
    /// The chaos rule in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<ChaosRule>,
    /// Faults the chaos rules injected since the last clear, by kind
    /// ([`ChaosFault::as_str`]).
    #[serde(default)]
    pub chaos_injected: BTreeMap<String, u64>,
}

/// A handle to the fault knobs of one stand-in; cheap to clone.
#[derive(Debug, Clone)]
pub struct Faults {
    knobs: Arc<Knobs>,
    store: Arc<Store>,
}

impl Faults {
    pub(crate) fn new(knobs: Arc<Knobs>, store: Arc<Store>) -> Faults {
        Faults { knobs, store }
    }

    /// Fails matching requests as `rule` says.
    pub fn fail(&self, rule: FailRule) {
        self.knobs.change(|state| state.fail.push(rule));
    }

    /// Drops the connections of matching requests as `rule` says.
    pub fn drop_connections(&self, rule: DropRule) {
        self.knobs.change(|state| state.drop.push(rule));
    }

    /// Holds matching requests until [`Faults::clear`] (or `POST /_standin/reset`).
    pub fn hang(&self, rule: HangRule) {
        self.knobs.change(|state| state.hang.push(rule));
    }

    /// Adds `latency` before every request is handled (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.knobs.change(|state| state.latency = latency);
    }

    /// Fails a share of matching requests at random, as `rule` says (replacing any
    /// earlier chaos rule; the counts of injected faults go on).
    pub fn chaos(&self, rule: ChaosRule) {
        self.knobs.change(|state| {
            state.chaos = (rule.percent > 0).then(|| Chaos::new(rule));
        });
    }

    /// Stops or resumes the Deployment controller: while stopped, a Deployment's `status`
    /// is not updated after writes; resuming completes the waiting rollouts.
    pub fn stall_rollouts(&self, stalled: bool) {
        self.store.set_rollouts_stalled(stalled);
    }

    /// Applies every part of `spec` (what `POST /_standin/faults` does).
    pub fn apply(&self, spec: FaultSpec) {
        if let Some(rule) = spec.fail {
            self.fail(rule);
        }
        if let Some(rule) = spec.drop {
            self.drop_connections(rule);
        }
        if let Some(rule) = spec.hang {
            self.hang(rule);
        }
        if let Some(milliseconds) = spec.latency_ms {
            self.set_latency(Duration::from_millis(milliseconds));
        }
        if let Some(stalled) = spec.stall_rollouts {
            self.stall_rollouts(stalled);
        }
        if let Some(rule) = spec.chaos {
            self.chaos(rule);
        }
    }

    /// Clears every knob: rules, latency, stalled rollouts. Hung requests resume.
    pub fn clear(&self) {
        self.knobs.change(|state| *state = KnobState::default());
        self.store.set_rollouts_stalled(false);
    }

    /// The knobs as they stand.
    pub fn state(&self) -> FaultState {
        let knobs = self.knobs.lock();
        FaultState {
            fail: knobs.fail.clone(),
            drop: knobs.drop.clone(),
            hang: knobs.hang.clone(),
            latency_ms: u64::try_from(knobs.latency.as_millis()).unwrap_or(u64::MAX),
            stall_rollouts: self.store.rollouts_stalled(),
            chaos: knobs.chaos.as_ref().map(|chaos| chaos.rule.clone()),
            chaos_injected: knobs.chaos_injected.clone(),
        }
    }
}

impl FailRule {
    /// Fails the next matching request with `status`.
    pub fn new(status: u16) -> FailRule {
        FailRule {
            status,
            count: 1,
            retry_after_seconds: None,
            path_contains: None,
            method: None,
        }
    }

    /// Fails the next `count` matching requests.
    pub fn times(self, count: u64) -> FailRule {
        FailRule { count, ..self }
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(self, seconds: u64) -> FailRule {
        FailRule {
            retry_after_seconds: Some(seconds),
            ..self
        }
    }

    /// Only requests whose path contains `fragment`.
    pub fn path_contains(self, fragment: &str) -> FailRule {
        FailRule {
            path_contains: Some(fragment.to_owned()),
            ..self
        }
    }

    /// Only requests with `method`.
    pub fn method(self, method: &str) -> FailRule {
        FailRule {
            method: Some(method.to_owned()),
            ..self
        }
    }
}

impl DropRule {
    /// Drops the next `count` requests.
    pub fn next(count: u64) -> DropRule {
        DropRule {
            count,
            ..DropRule::default()
        }
    }

    /// Carries each request out before dropping its answer.
    pub fn after_processing(self) -> DropRule {
        DropRule {
            after_processing: true,
            ..self
        }
    }

    /// Only requests whose path contains `fragment`.
    pub fn path_contains(self, fragment: &str) -> DropRule {
        DropRule {
            path_contains: Some(fragment.to_owned()),
            ..self
        }
    }

    /// Only requests with `method`.
    pub fn method(self, method: &str) -> DropRule {
        DropRule {
            method: Some(method.to_owned()),
            ..self
        }
    }
}

impl HangRule {
    /// Hangs every request.
    pub fn all() -> HangRule {
        HangRule::default()
    }

    /// Only requests whose path contains `fragment`.
    pub fn path_contains(self, fragment: &str) -> HangRule {
        HangRule {
            path_contains: Some(fragment.to_owned()),
            ..self
        }
    }

    /// Only requests with `method`.
    pub fn method(self, method: &str) -> HangRule {
        HangRule {
            method: Some(method.to_owned()),
            ..self
        }
    }
}

/// What to do with one request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Handle it; when `drop_answer`, close the connection instead of answering.
    Proceed { drop_answer: bool },
    /// Handle it, then hold the answer back this long.
    SlowAnswer(Duration),
    /// Answer this error instead.
    Fail(ApiError),
    /// Close the connection without handling it.
    Drop,
}

/// The knob state shared by connections, with a change signal for hung requests.
#[derive(Debug)]
pub(crate) struct Knobs {
    state: Mutex<KnobState>,
    changes: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct KnobState {
    fail: Vec<FailRule>,
    drop: Vec<DropRule>,
    hang: Vec<HangRule>,
    latency: Duration,
    chaos: Option<Chaos>,
    /// What chaos rules injected, by kind; kept when a rule is replaced.
    chaos_injected: BTreeMap<String, u64>,
}

impl Knobs {
    pub(crate) fn new() -> Knobs {
        Knobs {
            state: Mutex::new(KnobState::default()),
            changes: watch::Sender::new(0),
        }
    }

    /// Decides what happens to a request, waiting out latency and hangs first.
    pub(crate) async fn intercept(&self, method: &str, path: &str) -> Verdict {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut changes = self.changes.subscribe();
        while self
            .lock()
            .hang
            .iter()
            .any(|rule| matches(&rule.path_contains, &rule.method, method, path))
        {
            if changes.changed().await.is_err() {
                break;
            }
        }
        let mut state = self.lock();
        let dropped = take(
            &mut state.drop,
            |rule| (&rule.path_contains, &rule.method, &mut rule.count),
            method,
            path,
        );
        if let Some(rule) = dropped {
            return if rule.after_processing {
                Verdict::Proceed { drop_answer: true }
            } else {
                Verdict::Drop
            };
        }
        let failed = take(
            &mut state.fail,
            |rule| (&rule.path_contains, &rule.method, &mut rule.count),
            method,
            path,
        );
        if let Some(rule) = failed {
            return injected_failure(rule.status, rule.retry_after_seconds, method, path);
        }
        state.draw_chaos(method, path)
    }

    fn change(&self, edit: impl FnOnce(&mut KnobState)) {
        edit(&mut self.lock());
        self.changes.send_modify(|version| *version += 1);
    }

    fn lock(&self) -> MutexGuard<'_, KnobState> {
        // Invariant: edits are single assignments or pushes; a panic cannot leave the
        // knobs half-changed, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KnobState {
    /// Lets the chaos rule, if one is in force and matches, decide the request's fate.
    fn draw_chaos(&mut self, method: &str, path: &str) -> Verdict {
        let proceed = Verdict::Proceed { drop_answer: false };
        let Some(chaos) = self.chaos.as_mut() else {
            return proceed;
        };
        if !matches(&chaos.rule.path_contains, &chaos.rule.method, method, path) {
            return proceed;
        }
        let Some(fault) = chaos.draw() else {
            return proceed;
        };
        *self
            .chaos_injected
            .entry(fault.as_str().to_owned())
            .or_default() += 1;
        let rule = &chaos.rule;
        match fault {
            ChaosFault::InternalError => injected_failure(500, None, method, path),
            ChaosFault::ServiceUnavailable => injected_failure(503, None, method, path),
            ChaosFault::GatewayTimeout => injected_failure(504, None, method, path),
            ChaosFault::TooManyRequests => {
                injected_failure(429, Some(rule.retry_after_seconds), method, path)
            }
            ChaosFault::DropBefore => Verdict::Drop,
            ChaosFault::DropAfter => Verdict::Proceed { drop_answer: true },
            ChaosFault::SlowAnswer => Verdict::SlowAnswer(Duration::from_millis(rule.slow_ms)),
        }
    }
}

/// The `Status` answer of an injected failure.
fn injected_failure(
    status: u16,
    retry_after_seconds: Option<u64>,
    method: &str,
    path: &str,
) -> Verdict {
    Verdict::Fail(ApiError {
        retry_after_seconds,
        ..ApiError::new(
            status,
            format!(
                "kube-standin injected fault: {status} {}",
                method_path(method, path)
            ),
        )
    })
}

fn one() -> u64 {
    1
}

fn method_path(method: &str, path: &str) -> String {
    format!("{method} {path}")
}

fn matches(
    path_contains: &Option<String>,
    only_method: &Option<String>,
    method: &str,
    path: &str,
) -> bool {
    path_contains
        .as_deref()
        .is_none_or(|fragment| path.contains(fragment))
        && only_method
            .as_deref()
            .is_none_or(|only| only.eq_ignore_ascii_case(method))
}

/// Takes one use of the first matching rule with uses left, removing exhausted rules.
fn take<R: Clone>(
    rules: &mut Vec<R>,
    parts: impl Fn(&mut R) -> (&Option<String>, &Option<String>, &mut u64),
    method: &str,
    path: &str,
) -> Option<R> {
    let index = rules.iter_mut().position(|rule| {
        let (path_contains, only_method, count) = parts(rule);
        *count > 0 && matches(path_contains, only_method, method, path)
    })?;
    let taken = rules[index].clone();
    let (_, _, count) = parts(&mut rules[index]);
    *count -= 1;
    if *count == 0 {
        rules.remove(index);
    }
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_count_down_and_match() {
        let knobs = Knobs::new();
        knobs.change(|state| {
            state.fail.push(
                FailRule::new(500)
                    .times(2)
                    .path_contains("/secrets")
                    .method("patch"),
            );
            state.drop.push(DropRule::next(1).method("GET"));
        });
        assert!(matches!(
            knobs
                .intercept("GET", "/api/v1/namespaces/a/secrets/s")
                .await,
            Verdict::Drop
        ));
        assert!(matches!(
            knobs.intercept("GET", "/x").await,
            Verdict::Proceed { drop_answer: false }
        ));
        assert!(matches!(
            knobs.intercept("PATCH", "/apis/apps/v1/x").await,
            Verdict::Proceed { .. }
        ));
        for _ in 0..2 {
            let Verdict::Fail(error) = knobs
                .intercept("PATCH", "/api/v1/namespaces/a/secrets/s")
                .await
            else {
                panic!("expected a failure");
            };
            assert_eq!((error.code, error.reason), (500, "InternalError"));
        }
        assert!(matches!(
            knobs
                .intercept("PATCH", "/api/v1/namespaces/a/secrets/s")
                .await,
            Verdict::Proceed { .. }
        ));
    }

    #[test]
    fn specs_parse_from_json() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"fail": {"status": 429, "retry_after_seconds": 1, "path_contains": "/secrets/"}, "latency_ms": 5}"#,
        )
        .expect("valid spec");
        assert_eq!(
            spec.fail,
            Some(FailRule::new(429).retry_after(1).path_contains("/secrets/"))
        );
        assert!(serde_json::from_str::<FaultSpec>(r#"{"fial": {}}"#).is_err());
    }
}
