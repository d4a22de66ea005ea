//! Reading a stored body chunk by chunk, so an output never holds a whole
//! record: memory per reader is one chunk, whatever the record's size.

use super::{Queue, QueueError, RecordId};
use std::io::{self, Read};
use std::sync::Arc;

/// A stored body as a byte stream (still encoded as received).
pub struct BodyReader {
    queue: Arc<Queue>,
    id: RecordId,
    chunks: u32,
    next_part: u32,
    generation: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl BodyReader {
    pub(super) fn new(queue: Arc<Queue>, id: RecordId, chunks: u32, generation: u64) -> Self {
        BodyReader {
            queue,
            id,
            chunks,
            next_part: 1,
            generation,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Number of stored chunks.
    pub fn chunks(&self) -> u32 {
        self.chunks
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next_part > self.chunks {
                return Ok(0);
            }
            self.buf = self
                .queue
                .chunk(self.id, self.next_part, self.generation)
                .map_err(io::Error::other)?;
            self.pos = 0;
            self.next_part += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl From<QueueError> for io::Error {
    fn from(e: QueueError) -> io::Error {
        io::Error::other(e)
    }
}
