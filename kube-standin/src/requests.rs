//! The log of received API requests, for assertions such as "the client sent
//! `fieldManager=exsec&force=true` with `application/apply-patch+yaml`".
//!
//! Requests are recorded when they arrive, before any fault acts on them, so a dropped or
//! hung request is in the log too. The log keeps the newest [`CAPACITY`] entries so a
//! benchmark cannot grow it without bound; `StandIn::requests_total` counts all of them.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::watch;

use crate::query;

/// How many requests the log keeps.
pub const CAPACITY: usize = 10_000;

/// One received request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// The `Accept` header, if sent.
    pub accept: Option<String>,
    /// The `User-Agent` header, if sent.
    pub user_agent: Option<String>,
}

impl RequestRecord {
    /// The decoded value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query::param(&self.query, name)
    }
}

/// The bounded request log with a counter readers can wait on.
#[derive(Debug)]
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<RequestRecord>>,
    total: watch::Sender<u64>,
}

impl RequestLog {
    pub(crate) fn new() -> RequestLog {
        RequestLog {
            entries: Mutex::new(VecDeque::new()),
            total: watch::Sender::new(0),
        }
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        {
            let mut entries = self.lock();
            if entries.len() == CAPACITY {
                entries.pop_front();
            }
            entries.push_back(record);
        }
        self.total.send_modify(|total| *total += 1);
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// How many requests were ever recorded.
    pub(crate) fn total(&self) -> u64 {
        *self.total.borrow()
    }

    /// Resolves once at least `count` requests were ever recorded.
    pub(crate) async fn wait_for_total(&self, count: u64) {
        let mut total = self.total.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail while we borrow it.
        let _ = total.wait_for(|total| *total >= count).await;
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<RequestRecord>> {
        // Invariant: pushes and pops cannot leave the deque inconsistent on panic.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
