//! Sluice: a durable, Splunk-HEC-compatible receiver for Cloudflare Logpush.

pub mod admin;
pub mod allocator;
pub mod app;
pub mod bootstrap;
pub mod config;
pub mod enrich;
pub mod forward;
pub mod health;
pub mod hec;
pub mod ingest;
pub mod loadgen;
pub mod metrics;
pub mod private_fs;
pub mod queue;
pub mod rollup;
pub mod setting;
pub mod status;
pub mod tls;
