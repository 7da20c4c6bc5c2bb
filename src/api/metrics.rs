//! Counters behind `GET /metrics` (Prometheus text format) and the
//! per-token rate limit of `…/verify`. Labels carry routes, statuses and
//! reasons only — never ids of secrets or values.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the apply-latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0];

/// All counters, behind one lock (updates are a few integer bumps).
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    requests: BTreeMap<(&'static str, String, u16), u64>,
    deploys: BTreeMap<String, u64>,
    injections: BTreeMap<(String, String), u64>,
    apply_buckets: [u64; LATENCY_BUCKETS.len()],
    apply_count: u64,
    apply_sum: f64,
}

/// Gauges read at scrape time.
pub struct Gauges {
    /// Records per master key id.
    pub records_per_key: BTreeMap<String, u64>,
    /// Records not yet under the active key.
    pub rotation_remaining: u64,
    /// Durable commits and the writes they held (group commit).
    pub commits: crate::store::CommitStats,
    /// Whether writes currently fail (a full or failing disk).
    pub storage_degraded: bool,
}

impl Metrics {
    /// Counts one request.
    pub fn request(&self, route: &'static str, method: &str, status: u16, _elapsed: Duration) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counters
            .requests
            .entry((route, method.to_owned(), status))
            .or_default() += 1;
    }

    /// Counts one deploy outcome, its injection outcome and how long the
    /// cluster work took.
    pub fn deploy(&self, outcome: &str, injection: &str, reason: &str, apply: Duration) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counters.deploys.entry(outcome.to_owned()).or_default() += 1;
        *counters
            .injections
            .entry((injection.to_owned(), reason.to_owned()))
            .or_default() += 1;
        let seconds = apply.as_secs_f64();
        for (bucket, bound) in counters.apply_buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        counters.apply_count += 1;
        counters.apply_sum += seconds;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP exsec_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE exsec_http_requests_total counter\n");
        for ((route, method, status), n) in &counters.requests {
            let _ = writeln!(
                out,
                "exsec_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP exsec_deploys_total Deploys by outcome.\n");
        out.push_str("# TYPE exsec_deploys_total counter\n");
        for (outcome, n) in &counters.deploys {
            let _ = writeln!(out, "exsec_deploys_total{{outcome=\"{outcome}\"}} {n}");
        }
        out.push_str(
            "# HELP exsec_injections_total External-secret injections by status and reason.\n",
        );
        out.push_str("# TYPE exsec_injections_total counter\n");
        for ((status, reason), n) in &counters.injections {
            let _ = writeln!(
                out,
                "exsec_injections_total{{status=\"{status}\",reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP exsec_deploy_apply_seconds Time a deploy spent applying to the cluster.\n",
        );
        out.push_str("# TYPE exsec_deploy_apply_seconds histogram\n");
        for (bound, n) in LATENCY_BUCKETS.iter().zip(counters.apply_buckets) {
            let _ = writeln!(
                out,
                "exsec_deploy_apply_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "exsec_deploy_apply_seconds_bucket{{le=\"+Inf\"}} {}",
            counters.apply_count
        );
        let _ = writeln!(out, "exsec_deploy_apply_seconds_sum {}", counters.apply_sum);
        let _ = writeln!(
            out,
            "exsec_deploy_apply_seconds_count {}",
            counters.apply_count
        );
        out.push_str("# HELP exsec_keyring_records Secret records sealed under each master key.\n");
        out.push_str("# TYPE exsec_keyring_records gauge\n");
        for (key_id, n) in &gauges.records_per_key {
            let _ = writeln!(out, "exsec_keyring_records{{key_id=\"{key_id}\"}} {n}");
        }
        out.push_str(
            "# HELP exsec_rotation_remaining Records not yet sealed under the active key.\n",
        );
        out.push_str("# TYPE exsec_rotation_remaining gauge\n");
        let _ = writeln!(
            out,
            "exsec_rotation_remaining {}",
            gauges.rotation_remaining
        );
        out.push_str("# HELP exsec_store_commits_total Durable write transactions committed.\n");
        out.push_str("# TYPE exsec_store_commits_total counter\n");
        let _ = writeln!(out, "exsec_store_commits_total {}", gauges.commits.commits);
        out.push_str(
            "# HELP exsec_store_writes_total Writes acknowledged; several share a commit under load.\n",
        );
        out.push_str("# TYPE exsec_store_writes_total counter\n");
        let _ = writeln!(out, "exsec_store_writes_total {}", gauges.commits.writes);
        out.push_str(
            "# HELP exsec_storage_degraded 1 while writes fail (full or failing disk); reads are still answered.\n",
        );
        out.push_str("# TYPE exsec_storage_degraded gauge\n");
        let _ = writeln!(
            out,
            "exsec_storage_degraded {}",
            u8::from(gauges.storage_degraded)
        );
        out
    }
}

/// A fixed-window limit per caller.
pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// At most `per_window` calls per `window` per caller.
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if the caller may go on, else the seconds until it may.
    pub fn check(&self, caller: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = windows.entry(caller.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_window {
            let wait = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(wait.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}
