//! Group commit: one flush makes every append before it durable.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tokio::sync::watch;

/// How far the flusher has got.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Every append with a sequence number at or below this is on disk.
    durable: u64,
    /// Appends at or below this (and above `durable`) failed to flush.
    failed: u64,
}

#[derive(Debug, Default)]
struct Requests {
    requested: u64,
    stop: bool,
}

/// A flush thread shared by all writers.
pub struct GroupCommit {
    requests: Arc<(Mutex<Requests>, Condvar)>,
    progress: watch::Receiver<Progress>,
    thread: Option<JoinHandle<()>>,
}

/// A flush failed; the append may not be durable.
#[derive(Debug, thiserror::Error)]
#[error("queue flush failed")]
pub struct FlushFailed;

impl GroupCommit {
    /// Starts the flusher; `flush` writes everything appended so far to disk.
    pub fn start<F>(flush: F) -> std::io::Result<GroupCommit>
    where
        F: Fn() -> Result<(), String> + Send + 'static,
    {
        let requests = Arc::new((Mutex::new(Requests::default()), Condvar::new()));
        let (tx, rx) = watch::channel(Progress::default());
        let shared = Arc::clone(&requests);
        let thread = std::thread::Builder::new()
            .name("queue-commit".into())
            .spawn(move || flusher(&shared, &tx, flush))?;
        Ok(GroupCommit {
            requests,
            progress: rx,
            thread: Some(thread),
        })
    }

    /// Asks for a flush covering `seq` and waits for it.
    pub async fn wait(&self, seq: u64) -> Result<(), FlushFailed> {
        {
            let (lock, cvar) = &*self.requests;
            let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
            if r.requested < seq {
                r.requested = seq;
            }
            cvar.notify_one();
        }
        let mut rx = self.progress.clone();
        let p = *rx
            .wait_for(|p| p.durable >= seq || p.failed >= seq)
            .await
            .map_err(|_| FlushFailed)?;
        if p.durable >= seq {
            Ok(())
        } else {
            Err(FlushFailed)
        }
    }
}

fn flusher<F>(requests: &(Mutex<Requests>, Condvar), tx: &watch::Sender<Progress>, flush: F)
where
    F: Fn() -> Result<(), String>,
{
    let (lock, cvar) = requests;
    let mut done = 0u64;
    loop {
        let target = {
            let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
            while r.requested <= done && !r.stop {
                r = cvar.wait(r).unwrap_or_else(|e| e.into_inner());
            }
            if r.stop && r.requested <= done {
                return;
            }
            r.requested
        };
        // Appends with seq <= target finished their insert before asking, so
        // this flush covers them all.
        match flush() {
            Ok(()) => tx.send_modify(|p| p.durable = target),
            Err(e) => {
                tracing::error!(error = %e, "queue flush failed");
                tx.send_modify(|p| p.failed = target);
            }
        }
        done = target;
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        {
            let (lock, cvar) = &*self.requests;
            lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
            cvar.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn concurrent_waiters_share_flushes() {
        let flushes = Arc::new(AtomicU64::new(0));
        let f = Arc::clone(&flushes);
        let gc = Arc::new(
            GroupCommit::start(move || {
                f.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                Ok(())
            })
            .unwrap(),
        );
        let mut tasks = Vec::new();
        for seq in 1..=50 {
            let gc = Arc::clone(&gc);
            tasks.push(tokio::spawn(async move { gc.wait(seq).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(flushes.load(Ordering::SeqCst) < 50);
    }

    #[tokio::test]
    async fn failures_reach_the_waiter() {
        let gc = GroupCommit::start(|| Err("disk on fire".into())).unwrap();
        assert!(gc.wait(1).await.is_err());
    }
}
