//! kube-standin: an in-memory Kubernetes API server for tests and benchmarks.
//!
//! It speaks the real wire protocol — discovery, JSON objects, `Status` errors,
//! server-side apply with field ownership — for the three kinds exsec touches (Namespaces,
//! Secrets, Deployments), so that unmodified kube-rs client code and kubectl run against
//! it. It is not a Kubernetes: there is no watch, admission, RBAC, strategic merge patch or
//! persistence. See `README.md` for what is modelled.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let standin = kube_standin::StandIn::start().await?;
//! standin.create_namespace("paas-apps").ok();
//! standin.write_kubeconfig("/tmp/kubeconfig", "paas-apps")?;
//! standin.faults().fail(kube_standin::FailRule::new(503).retry_after(1));
//! # Ok(()) }
//! ```
//!
//! Layout, one line per module, top-down:
//! - [`server`]: binding, accept loop, connections, shutdown; the [`StandIn`] handle.
//! - `handler`: one HTTP request: body, request log, faults, answer.
//! - [`faults`]: fault knobs (fail, drop, hang, latency, stalled rollouts).
//! - [`chaos`]: random faults at a steady rate from a seeded generator.
//! - [`requests`]: the request log.
//! - `control`: the `/_standin/` endpoints for out-of-process control.
//! - `api`: routing, content negotiation and request options of the Kubernetes API.
//! - `route`: URL paths to routes.
//! - `discovery`: `/version`, `/api`, `/apis` and the resource lists.
//! - `table`: `Table` answers for `kubectl get`.
//! - `selector`: label and field selectors.
//! - `store`: the objects, the resource-version clock, the write pipeline.
//! - `apply`: server-side apply and ownership tracking.
//! - `managed`: `managedFields` entries.
//! - `fields`: field paths and sets.
//! - `strategy`: per-kind normalisation, defaults and validation.
//! - `controller`: Deployment status as a finished rollout.
//! - [`status`]: `Status` errors.
//! - [`kind`]: the served kinds and their names.
//! - `kubeconfig`, `query`, `clock`: small helpers.

mod api;
mod apply;
pub mod chaos;
mod clock;
mod control;
mod controller;
mod discovery;
pub mod faults;
mod fields;
mod handler;
pub mod kind;
mod kubeconfig;
mod managed;
mod query;
pub mod requests;
mod route;
mod selector;
pub mod server;
pub mod status;
mod store;
mod strategy;
mod table;

pub use chaos::{ChaosFault, ChaosRule};
pub use faults::{DropRule, FailRule, FaultSpec, FaultState, Faults, HangRule};
pub use kind::Kind;
pub use requests::RequestRecord;
pub use server::StandIn;
pub use status::ApiError;
