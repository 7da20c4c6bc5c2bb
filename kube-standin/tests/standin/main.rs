//! The stand-in's integration tests, in one binary (each test binary links kube and
//! hyper, so one keeps build time down).
//!
//! - `harness`: a started stand-in with a kube-rs client built from the kubeconfig it wrote.
//! - `kube_client`: server-side apply, ownership, errors, lists — through real kube-rs.
//! - `faults`: every fault knob, what kube 5's retry layer does with it, the binary.
//! - `kubectl`: real kubectl against the stand-in (skipped loudly when not on PATH).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed expectation is the assertion"
)]

mod faults;
mod harness;
mod kube_client;
mod kubectl;
