//! Client-facing ack ids: per token and channel from 0, forgotten after the
//! first `true`, bounded per channel (oldest dropped), per token and in
//! total, idle channels swept.

use crate::hec::Channel;
use crate::queue::RecordId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What an ack id waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckWait {
    /// Already flushed to the queue (`ack = "durable"`).
    Flushed,
    /// Its record leaving the queue, i.e. delivered by every output (`ack = "delivered"`).
    Delivered(RecordId),
}

#[derive(Debug)]
struct ChannelAcks {
    next_id: u64,
    pending: BTreeMap<u64, AckWait>,
    last_used: Instant,
}

/// Ack state is per token and channel: a token never sees another's ids,
/// even on the same channel GUID.
type Key = (Arc<str>, Channel);

#[derive(Debug, Default)]
struct Inner {
    channels: HashMap<Key, ChannelAcks>,
    /// Pending ids per token name.
    per_token: HashMap<Arc<str>, usize>,
    total: usize,
    /// Pending ids each token may hold (`[[tokens]] ack_max`); replaced on
    /// reload, while ids already handed out stay valid.
    budgets: HashMap<String, usize>,
}

impl Inner {
    fn forget(&mut self, token: &Arc<str>, n: usize) {
        if let Some(c) = self.per_token.get_mut(token) {
            *c = c.saturating_sub(n);
        }
        self.total = self.total.saturating_sub(n);
    }
}

/// The registry of client ack ids.
#[derive(Debug)]
pub struct ClientAcks {
    inner: Mutex<Inner>,
    max_per_channel: usize,
    max_total: usize,
    idle: Duration,
}

/// Sizes for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckCounts {
    /// Channels with state.
    pub channels: usize,
    /// Ids not yet reported true.
    pub pending: usize,
}

/// Why an ack id cannot be handed out now (the request gets 503 code 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckFull {
    /// The token used up its own `ack_max`.
    Token,
    /// Every token together reached `ack_max_total`.
    Service,
}

/// Each ack-enabled token's budget: its `ack_max`, else an equal share of
/// `ack_max_total`, so no token's clients can starve another's.
pub fn budgets(tokens: &[crate::config::TokenConfig], max_total: usize) -> HashMap<String, usize> {
    use crate::config::AckMode;
    let acked: Vec<_> = tokens.iter().filter(|t| t.ack != AckMode::None).collect();
    let share = max_total / acked.len().max(1);
    acked
        .iter()
        .map(|t| (t.name.clone(), t.ack_max.unwrap_or(share).max(1)))
        .collect()
}

impl ClientAcks {
    /// A registry with the given bounds; `budgets` maps each ack-enabled
    /// token's name to its `ack_max` (a token without one gets none).
    pub fn new(
        max_per_channel: usize,
        max_total: usize,
        budgets: HashMap<String, usize>,
        idle: Duration,
    ) -> ClientAcks {
        ClientAcks {
            inner: Mutex::new(Inner {
                budgets,
                ..Inner::default()
            }),
            max_per_channel,
            max_total,
            idle,
        }
    }

    /// Puts new per-token budgets in force (reload): a removed token gets
    /// no new ids; the ids it holds are still answered until they expire.
    pub fn set_budgets(&self, budgets: HashMap<String, usize>) {
        self.lock().budgets = budgets;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `token` may register another id.
    pub fn has_room(&self, token: &str) -> Result<(), AckFull> {
        let inner = self.lock();
        let budget = inner.budgets.get(token).copied().unwrap_or(0);
        if inner.per_token.get(token).copied().unwrap_or(0) >= budget {
            return Err(AckFull::Token);
        }
        if inner.total >= self.max_total {
            return Err(AckFull::Service);
        }
        Ok(())
    }

    /// Whether no token can register an id any more (`/health` code 19).
    pub fn service_full(&self) -> bool {
        self.lock().total >= self.max_total
    }

    /// Hands out the next id of `token` on `channel`.
    pub fn register(&self, token: &str, channel: Channel, wait: AckWait) -> u64 {
        let mut inner = self.lock();
        let now = Instant::now();
        let name: Arc<str> = match inner.per_token.get_key_value(token) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(token),
        };
        let ch = inner
            .channels
            .entry((Arc::clone(&name), channel))
            .or_insert_with(|| ChannelAcks {
                next_id: 0,
                pending: BTreeMap::new(),
                last_used: now,
            });
        let id = ch.next_id;
        ch.next_id += 1;
        ch.last_used = now;
        ch.pending.insert(id, wait);
        let added = if ch.pending.len() > self.max_per_channel {
            ch.pending.pop_first();
            0
        } else {
            1
        };
        *inner.per_token.entry(name).or_insert(0) += added;
        inner.total += added;
        id
    }

    /// Answers `token`'s poll on `channel`; ids reported true are forgotten.
    pub fn query(
        &self,
        token: &str,
        channel: Channel,
        ids: &[u64],
        delivered: impl Fn(RecordId) -> bool,
    ) -> Vec<(u64, bool)> {
        let mut inner = self.lock();
        let Some((name, _)) = inner.per_token.get_key_value(token) else {
            return ids.iter().map(|&id| (id, false)).collect();
        };
        let name = Arc::clone(name);
        let mut removed = 0usize;
        let out = match inner.channels.get_mut(&(Arc::clone(&name), channel)) {
            None => ids.iter().map(|&id| (id, false)).collect(),
            Some(ch) => {
                ch.last_used = Instant::now();
                ids.iter()
                    .map(|&id| {
                        let done = match ch.pending.get(&id) {
                            Some(AckWait::Flushed) => true,
                            Some(AckWait::Delivered(rec)) => delivered(*rec),
                            None => false,
                        };
                        if done {
                            ch.pending.remove(&id);
                            removed += 1;
                        }
                        (id, done)
                    })
                    .collect()
            }
        };
        inner.forget(&name, removed);
        out
    }

    /// Forgets channels unused for longer than the idle timeout.
    pub fn sweep(&self) -> AckCounts {
        let mut inner = self.lock();
        let idle = self.idle;
        let mut dropped: Vec<(Arc<str>, usize)> = Vec::new();
        inner.channels.retain(|(token, _), ch| {
            let keep = ch.last_used.elapsed() < idle;
            if !keep {
                dropped.push((Arc::clone(token), ch.pending.len()));
            }
            keep
        });
        for (token, n) in dropped {
            inner.forget(&token, n);
        }
        AckCounts {
            channels: inner.channels.len(),
            pending: inner.total,
        }
    }

    /// Current sizes.
    pub fn counts(&self) -> AckCounts {
        let inner = self.lock();
        AckCounts {
            channels: inner.channels.len(),
            pending: inner.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(n: u8) -> Channel {
        Channel::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    fn budgets(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn acks(per_channel: usize, total: usize) -> ClientAcks {
        ClientAcks::new(
            per_channel,
            total,
            budgets(&[("a", total), ("b", total)]),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn ids_count_per_channel_and_are_forgotten_after_true() {
        let acks = acks(10, 100);
        assert_eq!(acks.register("a", ch(1), AckWait::Flushed), 0);
        assert_eq!(acks.register("a", ch(1), AckWait::Flushed), 1);
        assert_eq!(acks.register("a", ch(2), AckWait::Flushed), 0);
        let never = |_| false;
        assert_eq!(
            acks.query("a", ch(1), &[0, 1, 7], never),
            vec![(0, true), (1, true), (7, false)]
        );
        assert_eq!(
            acks.query("a", ch(1), &[0], never),
            vec![(0, false)],
            "forgotten after true"
        );
        assert_eq!(
            acks.query("a", ch(3), &[0], never),
            vec![(0, false)],
            "other channel"
        );
        assert_eq!(
            acks.counts(),
            AckCounts {
                channels: 2,
                pending: 1
            }
        );
    }

    #[test]
    fn another_token_sees_nothing_on_the_same_channel() {
        let acks = acks(10, 100);
        let id = acks.register("a", ch(1), AckWait::Flushed);
        assert_eq!(acks.query("b", ch(1), &[id], |_| true), vec![(id, false)]);
        assert_eq!(
            acks.query("unknown", ch(1), &[id], |_| true),
            vec![(id, false)]
        );
        assert_eq!(
            acks.register("b", ch(1), AckWait::Flushed),
            0,
            "b's own ids"
        );
        assert_eq!(acks.query("a", ch(1), &[id], |_| true), vec![(id, true)]);
    }

    #[test]
    fn delivered_waits_for_the_record() {
        let acks = acks(10, 100);
        let id = acks.register("a", ch(1), AckWait::Delivered(42));
        assert_eq!(acks.query("a", ch(1), &[id], |_| false), vec![(id, false)]);
        assert_eq!(acks.query("a", ch(1), &[id], |r| r == 42), vec![(id, true)]);
    }

    #[test]
    fn bounded_per_channel_per_token_and_in_total() {
        let acks = ClientAcks::new(
            3,
            6,
            budgets(&[("a", 4), ("b", 4)]),
            Duration::from_secs(60),
        );
        for _ in 0..5 {
            acks.register("a", ch(1), AckWait::Delivered(1));
        }
        assert_eq!(acks.counts().pending, 3);
        assert_eq!(
            acks.query("a", ch(1), &[0, 1], |_| true),
            vec![(0, false), (1, false)]
        );
        assert_eq!(acks.has_room("a"), Ok(()));
        acks.register("a", ch(2), AckWait::Delivered(1));
        assert_eq!(acks.has_room("a"), Err(AckFull::Token), "a's budget is 4");
        assert_eq!(acks.has_room("b"), Ok(()), "b is not starved by a");
        assert!(!acks.service_full());
        acks.register("b", ch(1), AckWait::Delivered(1));
        acks.register("b", ch(2), AckWait::Delivered(1));
        assert_eq!(acks.has_room("b"), Err(AckFull::Service));
        assert!(acks.service_full());
        assert_eq!(acks.has_room("none"), Err(AckFull::Token), "no budget");
    }

    #[test]
    fn idle_channels_are_swept() {
        let acks = ClientAcks::new(3, 4, budgets(&[("a", 4)]), Duration::from_millis(0));
        acks.register("a", ch(1), AckWait::Flushed);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            acks.sweep(),
            AckCounts {
                channels: 0,
                pending: 0
            }
        );
        assert_eq!(acks.has_room("a"), Ok(()));
    }
}
