//! Client-facing ack ids: per channel from 0, forgotten after the first `true`,
//! bounded per channel (oldest dropped) and in total, idle channels swept.

use crate::hec::Channel;
use crate::queue::RecordId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
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

#[derive(Debug, Default)]
struct Inner {
    channels: HashMap<Channel, ChannelAcks>,
    total: usize,
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

impl ClientAcks {
    /// A registry with the given bounds.
    pub fn new(max_per_channel: usize, max_total: usize, idle: Duration) -> ClientAcks {
        ClientAcks {
            inner: Mutex::new(Inner::default()),
            max_per_channel,
            max_total,
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether another id can be registered (else the request gets 503 code 9).
    pub fn has_room(&self) -> bool {
        self.lock().total < self.max_total
    }

    /// Hands out the channel's next id.
    pub fn register(&self, channel: Channel, wait: AckWait) -> u64 {
        let mut inner = self.lock();
        let now = Instant::now();
        let ch = inner
            .channels
            .entry(channel)
            .or_insert_with(|| ChannelAcks {
                next_id: 0,
                pending: BTreeMap::new(),
                last_used: now,
            });
        let id = ch.next_id;
        ch.next_id += 1;
        ch.last_used = now;
        ch.pending.insert(id, wait);
        let mut delta: isize = 1;
        if ch.pending.len() > self.max_per_channel {
            ch.pending.pop_first();
            delta = 0;
        }
        inner.total = inner.total.saturating_add_signed(delta);
        id
    }

    /// Answers a poll; ids reported true are forgotten.
    pub fn query(
        &self,
        channel: Channel,
        ids: &[u64],
        delivered: impl Fn(RecordId) -> bool,
    ) -> Vec<(u64, bool)> {
        let mut inner = self.lock();
        let mut removed = 0usize;
        let out = match inner.channels.get_mut(&channel) {
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
        inner.total -= removed;
        out
    }

    /// Forgets channels unused for longer than the idle timeout.
    pub fn sweep(&self) -> AckCounts {
        let mut inner = self.lock();
        let idle = self.idle;
        let mut dropped = 0;
        inner.channels.retain(|_, ch| {
            let keep = ch.last_used.elapsed() < idle;
            if !keep {
                dropped += ch.pending.len();
            }
            keep
        });
        inner.total -= dropped;
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

    #[test]
    fn ids_count_per_channel_and_are_forgotten_after_true() {
        let acks = ClientAcks::new(10, 100, Duration::from_secs(60));
        assert_eq!(acks.register(ch(1), AckWait::Flushed), 0);
        assert_eq!(acks.register(ch(1), AckWait::Flushed), 1);
        assert_eq!(acks.register(ch(2), AckWait::Flushed), 0);
        let never = |_| false;
        assert_eq!(
            acks.query(ch(1), &[0, 1, 7], never),
            vec![(0, true), (1, true), (7, false)]
        );
        assert_eq!(
            acks.query(ch(1), &[0], never),
            vec![(0, false)],
            "forgotten after true"
        );
        assert_eq!(
            acks.query(ch(3), &[0], never),
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
    fn delivered_waits_for_the_record() {
        let acks = ClientAcks::new(10, 100, Duration::from_secs(60));
        let id = acks.register(ch(1), AckWait::Delivered(42));
        assert_eq!(acks.query(ch(1), &[id], |_| false), vec![(id, false)]);
        assert_eq!(acks.query(ch(1), &[id], |r| r == 42), vec![(id, true)]);
    }

    #[test]
    fn bounded_per_channel_and_in_total() {
        let acks = ClientAcks::new(3, 4, Duration::from_secs(60));
        for _ in 0..5 {
            acks.register(ch(1), AckWait::Delivered(1));
        }
        assert_eq!(acks.counts().pending, 3);
        assert_eq!(
            acks.query(ch(1), &[0, 1], |_| true),
            vec![(0, false), (1, false)]
        );
        assert!(acks.has_room());
        acks.register(ch(2), AckWait::Delivered(1));
        assert!(!acks.has_room());
    }

    #[test]
    fn idle_channels_are_swept() {
        let acks = ClientAcks::new(3, 4, Duration::from_millis(0));
        acks.register(ch(1), AckWait::Flushed);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            acks.sweep(),
            AckCounts {
                channels: 0,
                pending: 0
            }
        );
    }
}
