//! The thread that renders records into object members. One per `s3`
//! output, at a lower scheduling priority (nice 10): archiving must not
//! take the cores from the outputs Splunk waits on; it uses what they leave
//! and catches up when they are idle (the queue holds the records meanwhile).

use super::super::context::TokenMetas;
use super::super::stream::SourceError;
use super::record::{member, Member, Rendering};
use crate::enrich::EnricherSlot;
use crate::queue::{Queue, RecordId};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Nice value of the renderer thread.
const NICENESS: libc::c_int = 10;

type Reply = oneshot::Sender<Result<Option<Member>, SourceError>>;

/// Hands records to the renderer thread.
pub struct Renderer {
    tx: Option<mpsc::Sender<(RecordId, Reply)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Renderer {
    /// Ends the thread and waits for it (at most the record it is on), so
    /// its handle on the queue is gone when the output has stopped.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Renderer {
    /// Starts the thread; it ends when the `Renderer` is dropped.
    pub fn start(
        name: &str,
        queue: Arc<Queue>,
        how: Rendering,
        tokens: Arc<TokenMetas>,
        enricher: Arc<EnricherSlot>,
    ) -> std::io::Result<Renderer> {
        let (tx, rx) = mpsc::channel::<(RecordId, Reply)>();
        let thread = std::thread::Builder::new()
            .name(format!("s3-{name}"))
            .spawn(move || {
                // SAFETY: setpriority on this thread's own id changes only its
                // scheduling; a failure (not permitted) leaves it as it was.
                unsafe {
                    let tid = libc::gettid();
                    libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS);
                }
                while let Ok((id, reply)) = rx.recv() {
                    let tokens = tokens.current();
                    let enricher = enricher.current();
                    let rendered = member(&queue, id, &how, &tokens, enricher.as_deref());
                    let _ = reply.send(rendered);
                }
            })?;
        Ok(Renderer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Renders record `id` (`Err(None)`: the thread is gone).
    pub async fn render(&self, id: RecordId) -> Option<Result<Option<Member>, SourceError>> {
        let (reply, rx) = oneshot::channel();
        self.tx.as_ref()?.send((id, reply)).ok()?;
        rx.await.ok()
    }
}
