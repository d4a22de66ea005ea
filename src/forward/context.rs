//! What the engine of every output shares, and the settings of one output
//! in the engine's terms (each output type's config resolves into them).

use super::batch::BatchLimits;
use crate::enrich::EnricherSlot;
use crate::metrics::Metrics;
use crate::queue::Queue;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Shared by every output.
#[derive(Clone)]
pub struct ForwardContext {
    /// The queue.
    pub queue: Arc<Queue>,
    /// Metrics.
    pub metrics: Metrics,
    /// Names of all outputs: a record leaves when each released it.
    pub outputs: Arc<Vec<String>>,
    /// Token name → its metadata defaults (replaced whole on reload).
    pub tokens: Arc<TokenMetas>,
    /// This node's hostname (default `host`).
    pub hostname: Arc<str>,
    /// Enrichment of network analytics samples (holding `None`: forward as received).
    pub enricher: Arc<EnricherSlot>,
    /// Where each output publishes its status-page snapshot.
    pub board: Arc<super::status::OutputBoard>,
    /// `server.max_event_bytes`: a longer `/raw` line becomes a dead letter
    /// with reason `oversize` instead of being held whole.
    pub max_event_bytes: u64,
}

#[cfg(test)]
impl ForwardContext {
    /// Test fixture: `queue` shared by `outputs`, token "t" with no
    /// defaults, node "node", no enrichment.
    pub(crate) fn for_tests(
        queue: &Arc<Queue>,
        outputs: &[&str],
        max_event_bytes: u64,
    ) -> ForwardContext {
        ForwardContext {
            queue: Arc::clone(queue),
            metrics: Metrics::new().expect("metrics"),
            outputs: Arc::new(outputs.iter().map(|s| s.to_string()).collect()),
            tokens: Arc::new(TokenMetas::new(HashMap::from([(
                "t".to_string(),
                TokenMeta::default(),
            )]))),
            hostname: "node".into(),
            enricher: Arc::new(EnricherSlot::new(None)),
            board: Default::default(),
            max_event_bytes,
        }
    }
}

/// Token name → its metadata defaults. Reload replaces the map whole, so a
/// job reads one consistent map; batches built from then on use the new one.
#[derive(Debug, Default)]
pub struct TokenMetas(ArcSwap<HashMap<String, TokenMeta>>);

impl TokenMetas {
    /// The map in force from the start.
    pub fn new(map: HashMap<String, TokenMeta>) -> TokenMetas {
        TokenMetas(ArcSwap::from_pointee(map))
    }

    /// The map in force now.
    pub fn current(&self) -> Arc<HashMap<String, TokenMeta>> {
        self.0.load_full()
    }

    /// Puts `map` in force for the batches built from now on.
    pub fn replace(&self, map: HashMap<String, TokenMeta>) {
        self.0.store(Arc::new(map));
    }
}

/// A token's metadata defaults, owned.
#[derive(Debug, Clone, Default)]
pub struct TokenMeta {
    /// `index`.
    pub index: Option<String>,
    /// `sourcetype`.
    pub sourcetype: Option<String>,
    /// `source`.
    pub source: Option<String>,
}

/// How the engine drives one output.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The output's name (metrics, logs, release markers).
    pub name: String,
    /// Which events and whether rollups.
    pub routing: super::routing::Routing,
    /// Body caps and compression.
    pub limits: BatchLimits,
    /// `index`, `sourcetype`, `source`, `host` overrides.
    pub overrides: [Option<String>; 4],
    /// Requests in flight per destination.
    pub concurrency: usize,
    /// How long a partial batch may wait for more events.
    pub linger: Duration,
    /// How often to poll indexer acks.
    pub ack_poll_interval: Duration,
    /// Resend a batch whose ack is not true after this long.
    pub ack_timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Undelivered this long → dead letters.
    pub dead_letter_after: Option<Duration>,
    /// Batch builder threads.
    pub build_threads: usize,
    /// How often a `sluice:stats` event goes to the destinations (`None`: never).
    pub stats_interval: Option<Duration>,
}
