//! Reading a record again, for a resend or a dead letter, from where an
//! earlier reading stopped. A record only streams forward from its start
//! (its body is gzip as received), so reading event k costs decoding the k
//! events before it; when an indexer refuses a batch event by event, each
//! refusal would otherwise decode the record from its start again, which is
//! quadratic in the record's events. A few streams stay open, each at the
//! event after the last one read from it.

use super::super::stream::{EventStream, SourceError};
use crate::queue::{Queue, RecordId};
use std::sync::{Arc, Mutex};

/// Streams kept open per output. Each holds a read buffer, a gzip window and
/// at most one event (`stream.rs`), so this bounds what they cost; four
/// cover the fronts that concurrent resends of one batch move along.
const KEPT: usize = 4;

/// Open streams, most recently used last.
#[derive(Default)]
pub struct Rereads {
    kept: Mutex<Vec<Kept>>,
}

struct Kept {
    /// The store generation it reads (a reopened store is read afresh).
    generation: u64,
    stream: EventStream<'static>,
}

impl Rereads {
    /// A stream of `record` at event `first` at the latest: a kept one
    /// when one has not passed it, else a new one (None once the record
    /// has left the queue).
    pub fn open(
        &self,
        queue: &Arc<Queue>,
        record: RecordId,
        first: u64,
        max_event: u64,
    ) -> Result<Option<EventStream<'static>>, SourceError> {
        let generation = queue.generation();
        let taken = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.retain(|k| k.generation == generation);
            let best = kept
                .iter()
                .enumerate()
                .filter(|(_, k)| k.stream.id() == record && k.stream.position() <= first)
                .max_by_key(|(_, k)| k.stream.position())
                .map(|(i, _)| i);
            best.map(|i| kept.remove(i).stream)
        };
        match taken {
            Some(stream) => Ok(Some(stream)),
            None => EventStream::open(queue, record, max_event),
        }
    }

    /// Keeps `stream` for a later reading of its record (the least recently
    /// used one leaves when too many are kept).
    pub fn keep(&self, queue: &Queue, stream: EventStream<'static>) {
        if stream.position() >= stream.meta().events {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT {
            kept.remove(0);
        }
        kept.push(Kept {
            generation: queue.generation(),
            stream,
        });
    }

    /// How many are kept.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueLimits;

    async fn queue(records: &[u64]) -> (tempfile::TempDir, Arc<Queue>) {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(Queue::open(dir.path(), QueueLimits::roomy()).unwrap());
        for n in records {
            let body: String = (0..*n).map(|j| format!("e{j}\n")).collect();
            queue.push_raw(body.as_bytes(), *n).await;
        }
        (dir, queue)
    }

    fn read_at(r: &Rereads, q: &Arc<Queue>, record: RecordId, at: u64) -> String {
        let mut s = r.open(q, record, at, 1 << 20).unwrap().unwrap();
        s.skip_to(at).unwrap();
        let text = match s.peek().unwrap() {
            Some(crate::forward::stream::Item::Event(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        };
        s.advance();
        r.keep(q, s);
        text
    }

    #[tokio::test]
    async fn reading_forward_decodes_a_record_once() {
        let (_d, q) = queue(&[100]).await;
        let r = Rereads::default();
        for k in 0..100 {
            assert_eq!(read_at(&r, &q, 0, k), format!("e{k}"));
        }
        assert_eq!(q.readers_opened(), 1);
        // Read to its end: nothing is kept.
        assert_eq!(r.kept(), 0);
    }

    #[tokio::test]
    async fn going_back_opens_another_and_both_fronts_move_on() {
        let (_d, q) = queue(&[100, 10]).await;
        let r = Rereads::default();
        assert_eq!(read_at(&r, &q, 0, 50), "e50");
        assert_eq!(read_at(&r, &q, 0, 10), "e10");
        assert_eq!(read_at(&r, &q, 0, 51), "e51");
        assert_eq!(read_at(&r, &q, 0, 11), "e11");
        assert_eq!(read_at(&r, &q, 1, 3), "e3");
        assert_eq!(q.readers_opened(), 3);
        // At most KEPT, the least recently used leaving first.
        for k in 0..KEPT as u64 {
            read_at(&r, &q, 0, 90 - k * 5);
        }
        assert_eq!(r.kept(), KEPT);
    }
}
