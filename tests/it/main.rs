//! Sluice's integration tests: one test crate with a module per area.
//!
//! One crate rather than one per file (as ripgrep does): the library and its
//! dependencies link into a single test binary once instead of a dozen times,
//! and the shared harness in `support` is compiled once and reached as
//! `crate::support` from every area, not copied in with `#[path]`.

mod support;

mod admin_access;
mod cli;
mod cli_queue;
mod durability;
mod enrich;
mod faults;
mod forward;
mod forward_crash;
mod hec_protocol;
mod hec_sink;
mod mtls;
mod operate;
mod rollup;
mod s3;
mod scaleout;
mod shutdown;
mod smoke;
mod splunk_app;
mod status_page;
