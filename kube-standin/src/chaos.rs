//! Random faults at a steady rate: a share of requests fails in one of the ways a real API
//! server fails, drawn from a seeded generator so that a run can be replayed.
//!
//! The explicit rules of [`crate::faults`] say "fail the next N"; they test one path at a
//! time. A client that must never report a false success has to be driven through
//! thousands of requests with every kind of failure mixed in, in orders nobody wrote down:
//! that is this knob. It draws per matching request, after the explicit rules had their
//! say, so the two combine. The same seed and the same order of arrival give the same
//! faults; concurrent clients make the order (and so the run) only approximately
//! replayable, which the seed still narrows down.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One kind of failure [`ChaosRule`] draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChaosFault {
    /// `500 InternalError` (kube does not retry it).
    InternalError,
    /// `503 ServiceUnavailable` without `Retry-After` (kube retries it).
    ServiceUnavailable,
    /// `504 Timeout` (kube retries it).
    GatewayTimeout,
    /// `429 TooManyRequests` with `Retry-After` (kube waits and retries).
    TooManyRequests,
    /// The connection closes before the request is carried out: nothing happened.
    DropBefore,
    /// The request is carried out, then the connection closes: it happened, the client
    /// cannot know.
    DropAfter,
    /// The request is carried out and its answer held back for [`ChaosRule::slow_ms`]:
    /// past a client's budget, the effect took hold anyway.
    SlowAnswer,
}

impl ChaosFault {
    /// Every kind, in declaration order: the default mix.
    pub const ALL: [ChaosFault; 7] = [
        ChaosFault::InternalError,
        ChaosFault::ServiceUnavailable,
        ChaosFault::GatewayTimeout,
        ChaosFault::TooManyRequests,
        ChaosFault::DropBefore,
        ChaosFault::DropAfter,
        ChaosFault::SlowAnswer,
    ];

    /// The snake-case name (the key of [`crate::FaultState::chaos_injected`]).
    pub fn as_str(self) -> &'static str {
        match self {
            ChaosFault::InternalError => "internal_error",
            ChaosFault::ServiceUnavailable => "service_unavailable",
            ChaosFault::GatewayTimeout => "gateway_timeout",
            ChaosFault::TooManyRequests => "too_many_requests",
            ChaosFault::DropBefore => "drop_before",
            ChaosFault::DropAfter => "drop_after",
            ChaosFault::SlowAnswer => "slow_answer",
        }
    }
}

/// Fail `percent` % of matching requests, each with a fault drawn uniformly from `faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosRule {
    /// Share of matching requests that get a fault, in percent (0 turns chaos off; above
    /// 100 counts as 100).
    pub percent: u8,
    /// Seed of the draws.
    #[serde(default)]
    pub seed: u64,
    /// The kinds drawn from (default: all of [`ChaosFault::ALL`]).
    #[serde(default = "all_faults")]
    pub faults: Vec<ChaosFault>,
    /// `Retry-After` of a drawn 429, in seconds (default 1).
    #[serde(default = "one_second")]
    pub retry_after_seconds: u64,
    /// How long a slow answer is held back, in milliseconds (default 2,000).
    #[serde(default = "two_seconds")]
    pub slow_ms: u64,
    /// Only requests whose path contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Only requests with this method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl ChaosRule {
    /// `percent` % of requests fail, with every kind of fault, seed 0.
    pub fn new(percent: u8) -> ChaosRule {
        ChaosRule {
            percent,
            seed: 0,
            faults: all_faults(),
            retry_after_seconds: 1,
            slow_ms: 2_000,
            path_contains: None,
            method: None,
        }
    }

    /// Draws from `seed`.
    pub fn seed(self, seed: u64) -> ChaosRule {
        ChaosRule { seed, ..self }
    }

    /// Draws only these kinds.
    pub fn faults(self, faults: &[ChaosFault]) -> ChaosRule {
        ChaosRule {
            faults: faults.to_vec(),
            ..self
        }
    }

    /// Sends `Retry-After: seconds` with a drawn 429.
    pub fn retry_after(self, seconds: u64) -> ChaosRule {
        ChaosRule {
            retry_after_seconds: seconds,
            ..self
        }
    }

    /// Holds slow answers back for `delay`.
    pub fn slow(self, delay: Duration) -> ChaosRule {
        ChaosRule {
            slow_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            ..self
        }
    }

    /// Only requests whose path contains `fragment`.
    pub fn path_contains(self, fragment: &str) -> ChaosRule {
        ChaosRule {
            path_contains: Some(fragment.to_owned()),
            ..self
        }
    }

    /// Only requests with `method`.
    pub fn method(self, method: &str) -> ChaosRule {
        ChaosRule {
            method: Some(method.to_owned()),
            ..self
        }
    }
}

/// A chaos rule in force, with its generator.
#[derive(Debug, Clone)]
pub(crate) struct Chaos {
    pub(crate) rule: ChaosRule,
    state: u64,
}

impl Chaos {
    pub(crate) fn new(rule: ChaosRule) -> Chaos {
        Chaos {
            state: rule.seed,
            rule,
        }
    }

    /// Draws for one matching request: `Some(fault)` for the unlucky share.
    pub(crate) fn draw(&mut self) -> Option<ChaosFault> {
        if self.rule.faults.is_empty() {
            return None;
        }
        let roll = self.next() % 100;
        if roll >= u64::from(self.rule.percent) {
            return None;
        }
        let index = usize::try_from(self.next() % self.rule.faults.len() as u64).unwrap_or(0);
        self.rule.faults.get(index).copied()
    }

    /// splitmix64: small, fast, and every seed (0 included) gives a full-period stream.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn all_faults() -> Vec<ChaosFault> {
    ChaosFault::ALL.to_vec()
}

fn one_second() -> u64 {
    1
}

fn two_seconds() -> u64 {
    2_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(rule: ChaosRule, n: usize) -> Vec<Option<ChaosFault>> {
        let mut chaos = Chaos::new(rule);
        (0..n).map(|_| chaos.draw()).collect()
    }

    #[test]
    fn a_seed_replays_its_draws_and_the_rate_holds() {
        let first = draws(ChaosRule::new(20).seed(7), 10_000);
        assert_eq!(first, draws(ChaosRule::new(20).seed(7), 10_000));
        assert_ne!(first, draws(ChaosRule::new(20).seed(8), 10_000));
        let faulted = first.iter().flatten().count();
        assert!((1_700..2_300).contains(&faulted), "{faulted} of 10,000");
        for kind in ChaosFault::ALL {
            let seen = first.iter().flatten().filter(|f| **f == kind).count();
            assert!(seen > 200, "{kind:?} drawn {seen} times");
        }
    }

    #[test]
    fn zero_percent_and_an_empty_mix_inject_nothing() {
        assert!(draws(ChaosRule::new(0), 1_000).iter().all(Option::is_none));
        assert!(
            draws(ChaosRule::new(100).faults(&[]), 1_000)
                .iter()
                .all(Option::is_none)
        );
        let only = draws(ChaosRule::new(100).faults(&[ChaosFault::DropAfter]), 100);
        assert!(only.iter().all(|f| *f == Some(ChaosFault::DropAfter)));
    }

    #[test]
    fn rules_parse_from_json_with_defaults() {
        let rule: ChaosRule = serde_json::from_str(
            r#"{"percent": 20, "seed": 3, "faults": ["drop_after", "too_many_requests"]}"#,
        )
        .expect("valid rule");
        assert_eq!(
            rule,
            ChaosRule::new(20)
                .seed(3)
                .faults(&[ChaosFault::DropAfter, ChaosFault::TooManyRequests])
        );
        assert!(serde_json::from_str::<ChaosRule>(r#"{"percent": 20, "fualts": []}"#).is_err());
    }
}
