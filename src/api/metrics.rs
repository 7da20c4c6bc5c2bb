//! Counters behind `GET /metrics` (Prometheus text format) and the
//! per-token rate limit of `…/verify`.
//!
//! Every label value comes from a fixed, small set chosen by exsec — route
//! ids, standard method names (anything else is `other`), status codes the
//! server itself produces, outcome and reason names — so nothing a client
//! sends can add a series (SPEC §11.1). Never ids of secrets or values.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histograms (apply, request).
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// All counters, behind one lock (updates are a few integer bumps).
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    /// The sum of `requests`.
    requests_served: u64,
    request_seconds: BTreeMap<&'static str, Histogram>,
    deploys: BTreeMap<String, u64>,
    injections: BTreeMap<(String, String), u64>,
    apply_seconds: Histogram,
}

/// A Prometheus histogram over [`LATENCY_BUCKETS`] (cumulative on output).
#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is either
    /// empty or `name="value",` (with the trailing comma).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = labels.trim_end_matches(',');
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Gauges read at scrape time.
pub struct Gauges {
    /// Records per master key id.
    pub records_per_key: BTreeMap<String, u64>,
    /// Records not yet under the active key.
    pub rotation_remaining: u64,
    /// Durable commits and the writes they held (group commit).
    pub commits: crate::store::CommitStats,
    /// No master key is loaded (writes of values answer 503).
    pub keyring_degraded: bool,
    /// Bad key files refused since start (one per distinct bad content).
    pub key_reload_failures: u64,
    /// Connections served, the cap, and how many waited for a slot.
    pub connections: super::server::ConnectionStats,
    /// Whether writes currently fail (a full or failing disk).
    pub storage_degraded: bool,
    /// Automatic redeploys queued (waiting, running or failing).
    pub redeploy_queue: u64,
}

/// The methods a metric label or a log line may name; anything else is
/// `other` (a client can send any token as a method).
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// The label of a request method: its name when standard, else `other`.
pub fn method_label(method: &hyper::Method) -> &'static str {
    STANDARD_METHODS
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

impl Metrics {
    /// Counts one request and how long it took. `route` is a route id (or a
    /// fixed name for unrouted requests) and `method` a [`method_label`].
    pub fn request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counters
            .requests
            .entry((route, method, status))
            .or_default() += 1;
        counters.requests_served += 1;
        counters
            .request_seconds
            .entry(route)
            .or_default()
            .observe(elapsed);
    }

    /// Requests answered since the start (every route and status).
    pub fn requests_served(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests_served
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
        counters.apply_seconds.observe(apply);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP exsec_build_info The running exsec version.\n");
        out.push_str("# TYPE exsec_build_info gauge\n");
        let _ = writeln!(
            out,
            "exsec_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
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
        out.push_str(
            "# HELP exsec_http_request_duration_seconds Time from routing to the answer, by route.\n",
        );
        out.push_str("# TYPE exsec_http_request_duration_seconds histogram\n");
        for (route, histogram) in &counters.request_seconds {
            histogram.render(
                &mut out,
                "exsec_http_request_duration_seconds",
                &format!("route=\"{route}\","),
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
        counters
            .apply_seconds
            .render(&mut out, "exsec_deploy_apply_seconds", "");
        out.push_str("# HELP exsec_keyring_records Secret records sealed under each master key.\n");
        out.push_str("# TYPE exsec_keyring_records gauge\n");
        for (key_id, n) in &gauges.records_per_key {
            let _ = writeln!(out, "exsec_keyring_records{{key_id=\"{key_id}\"}} {n}");
        }
        let connections = &gauges.connections;
        for (name, kind, help, value) in [
            (
                "exsec_rotation_remaining",
                "gauge",
                "Records not yet sealed under the active key.",
                gauges.rotation_remaining,
            ),
            (
                "exsec_rotation_pending_records",
                "gauge",
                "Records the re-sealing job still has to move to the active key.",
                gauges.rotation_remaining,
            ),
            (
                "exsec_auto_redeploy_queue",
                "gauge",
                "Automatic redeploys queued by secret writes: waiting for quiet, running or retrying.",
                gauges.redeploy_queue,
            ),
            (
                "exsec_keyring_degraded",
                "gauge",
                "1 when no master key is loaded (values cannot be sealed or opened).",
                u64::from(gauges.keyring_degraded),
            ),
            (
                "exsec_key_reload_failures_total",
                "counter",
                "Key files refused since start, once per distinct bad content.",
                gauges.key_reload_failures,
            ),
            (
                "exsec_storage_degraded",
                "gauge",
                "1 while writes fail (full or failing disk); reads are still answered.",
                u64::from(gauges.storage_degraded),
            ),
            (
                "exsec_store_commits_total",
                "counter",
                "Durable write transactions committed.",
                gauges.commits.commits,
            ),
            (
                "exsec_store_writes_total",
                "counter",
                "Writes acknowledged; several share a commit under load.",
                gauges.commits.writes,
            ),
            (
                "exsec_http_connections_open",
                "gauge",
                "Connections being served, over all listeners.",
                connections.open,
            ),
            (
                "exsec_http_connections_max",
                "gauge",
                "The cap on connections served at once (server.max_connections).",
                connections.max,
            ),
            (
                "exsec_http_connection_waits_total",
                "counter",
                "Connections accepted at the cap, which waited for another to close.",
                connections.waited,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            records_per_key: BTreeMap::new(),
            rotation_remaining: 3,
            commits: crate::store::CommitStats::default(),
            keyring_degraded: true,
            key_reload_failures: 2,
            storage_degraded: false,
            redeploy_queue: 4,
            connections: crate::api::server::ConnectionStats {
                open: 1,
                max: 1024,
                waited: 0,
            },
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        for name in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            let method = hyper::Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), name);
        }
        for name in ["FOO", "get", "X".repeat(10_000).as_str()] {
            let method = hyper::Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other");
        }
    }

    #[test]
    fn request_durations_are_a_cumulative_histogram_per_route() {
        let metrics = Metrics::default();
        metrics.request("/healthz", "GET", 200, Duration::from_micros(300));
        metrics.request("/healthz", "GET", 200, Duration::from_millis(30));
        let text = metrics.render(&gauges());
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} missing:\n{text}"))
                .rsplit_once(' ')
                .unwrap()
                .1
                .to_owned()
        };
        let bucket = "exsec_http_request_duration_seconds_bucket{route=\"/healthz\",";
        assert_eq!(line(&format!("{bucket}le=\"0.0005\"}}")), "1");
        assert_eq!(line(&format!("{bucket}le=\"0.02\"}}")), "1");
        assert_eq!(line(&format!("{bucket}le=\"0.05\"}}")), "2");
        assert_eq!(line(&format!("{bucket}le=\"+Inf\"}}")), "2");
        assert_eq!(
            line("exsec_http_request_duration_seconds_count{route=\"/healthz\"}"),
            "2"
        );
        assert_eq!(line("exsec_keyring_degraded"), "1");
        assert_eq!(line("exsec_key_reload_failures_total"), "2");
        assert_eq!(line("exsec_rotation_pending_records"), "3");
        assert_eq!(line("exsec_auto_redeploy_queue"), "4");
        assert_eq!(
            line("exsec_build_info{"),
            "1",
            "build info carries the version as a label"
        );
    }
}
