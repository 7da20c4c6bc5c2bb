//! Bounded edges (SPEC §11.1): nothing a client sends can add a metric
//! series or grow the daemon's memory. Regression test for the report in
//! which 300 made-up methods grew `/metrics` by 300 lines and 200 methods of
//! 400 KB took the daemon from 27 MB to 107 MB.

use crate::server::{Options, TestServer};

/// Distinct made-up methods sent without a token.
const METHODS: usize = 1_000;
/// Every this-many-th method is [`LONG_METHOD_BYTES`] long.
const LONG_EVERY: usize = 5;
const LONG_METHOD_BYTES: usize = 100 * 1024;
/// What the daemon's resident memory may grow by over the whole run. The
/// long methods alone are 20 MB: kept anywhere, they break this.
const RSS_GROWTH_LIMIT_KB: u64 = 8 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_add_no_metric_series_and_no_memory() {
    let server = TestServer::spawn_with(Options::default()).await;
    let pid = server.process.as_ref().unwrap().pid();

    // One short and one long made-up method and one scrape first: the
    // fixed series they fall into (`method="other"`, the unsupported-method
    // route, the scrape's own) exist from here on.
    send_made_up(&server, 0, "WARMUP").await;
    send_made_up(&server, 1, &"Y".repeat(LONG_METHOD_BYTES)).await;
    metrics(&server).await;
    let before = metrics(&server).await;
    let rss_before = rss_kb(pid);

    for i in 0..METHODS {
        let method = if i % LONG_EVERY == 0 {
            format!("{i}{}", "X".repeat(LONG_METHOD_BYTES))
        } else {
            format!("MADEUP{i}")
        };
        send_made_up(&server, i, &method).await;
    }

    let after = metrics(&server).await;
    let rss_after = rss_kb(pid);
    assert!(
        !after.contains("MADEUP") && !after.contains("XXXX"),
        "a client's method reached /metrics"
    );
    // Only counter values changed: the same series, line for line.
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .map(|line| {
                line.rsplit_once(' ')
                    .map_or(line, |(name, _)| name)
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(series(&before), series(&after), "/metrics gained series");
    assert!(
        after.contains(r#"method="other",status="405""#)
            && after.contains(r#"method="other",status="400""#),
        "made-up methods are counted as `other`:\n{after}"
    );
    assert!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KB,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
    let longest = server
        .process
        .as_ref()
        .unwrap()
        .log_tail()
        .lines()
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest < 2_000,
        "a log line of {longest} bytes echoes the request"
    );
    // Still serving.
    assert_eq!(server.call("GET", "/healthz", None, None).await.status, 200);
}

/// Sends one request with `method` and checks the answer: 405 for a
/// made-up method, 400 for one too long to be a method; neither echoes it.
async fn send_made_up(server: &TestServer, i: usize, method: &str) {
    let answer = server.call(method, "/v1/tenants", None, None).await;
    let (status, code) = if method.len() > 16 {
        (400, "invalid_method")
    } else {
        (405, "method_not_allowed")
    };
    let problem = answer.assert_problem(status, code);
    assert!(
        !problem["detail"].as_str().unwrap().contains(&method[..6]),
        "request {i}: the method is echoed: {problem}"
    );
}

async fn metrics(server: &TestServer) -> String {
    let answer = server.admin("GET", "/metrics", None).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.text()
}

/// Resident memory of a process, from `/proc/<pid>/status`.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
