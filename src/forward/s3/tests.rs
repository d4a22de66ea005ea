//! The s3 output against a bucket in memory (or refusing on purpose), with
//! a real queue: recovery, scanning and stopping decisions.

use super::*;
use crate::forward::batch::Compression;
use crate::forward::routing::Routing;
use crate::hec::TokenSecret;
use crate::queue::QueueLimits;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use std::sync::atomic::Ordering;

struct Rig {
    _dir: tempfile::TempDir,
    queue: Arc<Queue>,
    store: Arc<InMemory>,
    stop: watch::Sender<bool>,
    sink: S3Sink,
}

fn output() -> S3Output {
    S3Output {
        name: "s3".into(),
        bucket: "b-1".into(),
        prefix: "p".into(),
        endpoint: None,
        region: "r".into(),
        access_key_id: TokenSecret::new("id"),
        secret_access_key: TokenSecret::new("secret"),
        compression: Compression::None,
        enrich: false,
        max_object_bytes: 1 << 20,
        max_object_age: Duration::from_secs(60),
        routing: Routing::default(),
    }
}

/// `records` one-line records queued, for outputs `s3` and `outputs`.
async fn rig(records: usize, outputs: &[&str]) -> Rig {
    rig_with(records, outputs, 1 << 20).await
}

/// As [`rig`], with `server.max_event_bytes`.
async fn rig_with(records: usize, outputs: &[&str], max_event_bytes: u64) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Queue::open(dir.path(), QueueLimits::roomy()).unwrap());
    for i in 0..records {
        queue
            .push_raw(format!("{{\"n\":{i}}}\n").as_bytes(), 1)
            .await;
    }
    let ctx = ForwardContext::for_tests(&queue, outputs, max_event_bytes);
    let store = Arc::new(InMemory::new());
    let (stop, rx) = watch::channel(false);
    let bucket = Bucket::on(Arc::clone(&store) as Arc<dyn ObjectStore>);
    let sink = S3Sink::new(&output(), ctx, rx, bucket).unwrap();
    Rig {
        _dir: dir,
        queue,
        store,
        stop,
        sink,
    }
}

async fn object(store: &InMemory, key: &str) -> Vec<u8> {
    let got = store.get(&ObjectPath::from(key)).await.unwrap();
    got.bytes().await.unwrap().to_vec()
}

/// The crash this guards against: an object went up whole, its first
/// record was released, then the process died before the rest. Recovery
/// once wrote the records still queued to the same key: the object in the
/// bucket became a part of itself, and the released record was in none.
#[tokio::test]
async fn a_crash_mid_release_finishes_the_releases_and_keeps_the_object() {
    let mut r = rig(3, &["s3"]).await;
    let key = "p/dt=2026-12-03/hour=11/node-0-2.ndjson";
    let whole = b"{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n";
    r.store
        .put(&ObjectPath::from(key), whole.to_vec().into())
        .await
        .unwrap();
    r.queue.begin_object("s3", 0, 2, key).unwrap();
    r.queue.object_uploaded("s3", 0).unwrap();
    r.queue.release(0, "s3", &["s3"]).unwrap();

    r.sink.recover().await;

    assert_eq!(object(&r.store, key).await, whole);
    assert_eq!(r.queue.stats().records, 0, "the rest was released");
    assert!(r.queue.begun_objects("s3").unwrap().is_empty());
    assert_eq!(r.sink.next, 3);
    assert_eq!(r.sink.bucket.tried.load(Ordering::SeqCst), 0);
}

/// Begun but not uploaded: the same records go to the same key.
#[tokio::test]
async fn a_crash_before_the_upload_writes_the_same_records_to_the_same_key() {
    let mut r = rig(3, &["s3"]).await;
    let key = "p/dt=2026-12-03/hour=11/node-0-1.ndjson";
    r.queue.begin_object("s3", 0, 1, key).unwrap();

    r.sink.recover().await;

    assert_eq!(object(&r.store, key).await, b"{\"n\":0}\n{\"n\":1}\n");
    assert_eq!(r.queue.ids_from(0).collect::<Vec<_>>(), vec![2]);
    assert!(r.queue.begun_objects("s3").unwrap().is_empty());
    assert_eq!(r.sink.next, 2);
}

/// Records this output released while another output still holds them
/// were skipped 64 at a time, then the output waited for an append or a
/// second: a backlog of released records took minutes to pass.
#[tokio::test]
async fn released_records_are_passed_without_waiting() {
    let mut r = rig(201, &["s3", "splunk"]).await;
    for id in 0..200 {
        r.queue.release(id, "s3", &["s3", "splunk"]).unwrap();
    }
    while r.sink.fill().await {}
    let open = r.sink.open.as_ref().map(|o| o.range());
    assert_eq!(open, Some(Some((200, 200))));
}

/// A config that went from two outputs to this one alone: records the
/// other never released but this one did stay queued with no engine to
/// sweep them.
#[tokio::test]
async fn records_every_output_released_are_removed_at_start() {
    let mut r = rig(2, &["s3"]).await;
    r.queue.release(0, "s3", &["s3", "splunk"]).unwrap();
    assert_eq!(r.queue.stats().records, 2);
    r.sink.recover().await;
    assert_eq!(r.queue.ids_from(0).collect::<Vec<_>>(), vec![1]);
}

/// After the stop was signalled, every wait between tries ended at once
/// (the signal had changed and stayed changed): a refusing bucket was
/// asked again and again, without pause, for the stop's whole wait.
#[tokio::test(start_paused = true)]
async fn a_refusing_bucket_is_tried_with_pauses_while_stopping() {
    let mut r = rig(1, &["s3"]).await;
    r.sink.bucket.failing.store(true, Ordering::SeqCst);
    r.stop.send(true).unwrap();
    assert!(r.sink.stopping());
    let (first, last) = (0, 0);
    let o = OpenObject::new(first, 0, b"{\"n\":0}\n".to_vec(), 1);
    assert_eq!(o.range(), Some((first, last)));
    let started = tokio::time::Instant::now();
    assert!(
        !r.sink.complete(o, None).await,
        "gave up at the stop's wait"
    );
    let tried = r.sink.bucket.tried.load(Ordering::SeqCst);
    // Waits of 0.5, 1, 2, 4, 8 and 16 s fit in the 30 s wait.
    assert!((2..=8).contains(&tried), "tried {tried} times");
    assert!(started.elapsed() >= SHUTDOWN_WAIT);
    // Nothing was released, and the range stays begun for the restart.
    assert_eq!(r.queue.stats().records, 1);
    assert_eq!(r.queue.begun_objects("s3").unwrap().len(), 1);
}

/// After the store is reopened the open object may hold records the new
/// store lost (their senders were answered 503 and send them again) and
/// released records may be back: the output reads the store again.
#[tokio::test]
async fn after_a_reopen_the_output_reads_the_store_again() {
    let mut r = rig(3, &["s3", "splunk"]).await;
    r.queue.release(2, "s3", &["s3", "splunk"]).unwrap();
    while r.sink.fill().await {}
    assert_eq!(r.sink.open.as_ref().and_then(|o| o.range()), Some((0, 1)));
    assert_eq!(r.sink.next, 3);
    r.queue.fail_and_reopen();
    r.sink.follow_reopen().await;
    assert!(r.sink.open.is_none());
    assert_eq!(r.sink.next, 0);
    while r.sink.fill().await {}
    assert_eq!(r.sink.open.as_ref().and_then(|o| o.range()), Some((0, 1)));
    // Nothing changed again: nothing is read again.
    r.sink.follow_reopen().await;
    assert_eq!(r.sink.next, 3);
}

/// The compression changed between a crash and the restart: the begun
/// object is still written as its stored key says (gzip under `.gz`).
#[tokio::test]
async fn a_begun_object_keeps_the_compression_its_key_names() {
    let mut r = rig(2, &["s3"]).await;
    let key = "p/dt=2026-12-03/hour=11/node-0-1.ndjson.gz";
    r.queue.begin_object("s3", 0, 1, key).unwrap();
    r.sink.recover().await;
    let body = object(&r.store, key).await;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&body[..]), &mut text)
        .unwrap();
    assert_eq!(text, "{\"n\":0}\n{\"n\":1}\n");
    // The output's own compression is back for what comes next.
    let line = b"{\"n\":2}\n";
    r.queue.push_raw(line, 1).await;
    let m = match r.sink.read(2).await {
        Read::Member(m) => m,
        _ => panic!("record 1 is queued"),
    };
    assert_eq!(m.bytes, line);
}

/// A line over `max_event_bytes` becomes a dead letter and the record goes
/// into the object without it. When the letter could not be stored, the
/// record once went anyway: the line was in no object and no letter.
#[tokio::test]
async fn a_record_waits_until_its_dead_letter_is_stored() {
    let mut r = rig_with(0, &["s3"], 16).await;
    let body = b"{\"n\":\"a line longer than sixteen bytes\"}\n{\"n\":1}\n";
    r.queue.push_raw(body, 2).await;
    r.queue.fail_writes(1);
    assert!(!r.sink.fill().await);
    assert!(r.sink.open.is_none(), "taken without its letter");
    assert_eq!(r.queue.dead_letter_count("s3"), 0);
    assert!(r.sink.fill().await);
    assert_eq!(r.sink.open.as_ref().and_then(|o| o.range()), Some((0, 0)));
    assert_eq!(r.queue.dead_letter_count("s3"), 1);
}

/// A begun object whose first record has left is written again under its
/// own entry: a second entry for the same key (from the first record still
/// queued) outlived a crash mid-release beside the first, and the restart
/// after that rewrote the object from the records left.
#[tokio::test(start_paused = true)]
async fn a_begun_object_keeps_its_entry_when_its_first_record_left() {
    let mut r = rig(3, &["s3"]).await;
    let key = "p/dt=2026-12-03/hour=11/node-0-2.ndjson";
    r.queue.begin_object("s3", 0, 2, key).unwrap();
    r.queue.release(0, "s3", &["s3"]).unwrap();
    // Then a stop whose releases keep failing until its wait runs out.
    r.queue.fail_writes(u64::MAX);
    r.stop.send(true).unwrap();
    assert!(r.sink.stopping());
    r.sink.recover().await;
    assert_eq!(object(&r.store, key).await, b"{\"n\":1}\n{\"n\":2}\n");
    let begun = r.queue.begun_objects("s3").unwrap();
    assert_eq!(
        begun
            .iter()
            .map(|b| (b.first, b.last, b.uploaded))
            .collect::<Vec<_>>(),
        [(0, 2, true)]
    );
    // The restart only releases.
    r.queue.fail_writes(0);
    r.sink.stopping_since = None;
    r.stop.send(false).unwrap();
    r.sink.recover().await;
    assert_eq!(object(&r.store, key).await, b"{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(r.queue.stats().records, 0);
    assert!(r.queue.begun_objects("s3").unwrap().is_empty());
}

/// An object filled before a reopen may hold records the new store lost
/// (answered 503, so sent again): it is not uploaded; the store is read
/// again and what it holds goes up.
#[tokio::test]
async fn an_object_filled_before_a_reopen_is_not_uploaded() {
    let mut r = rig(2, &["s3"]).await;
    while r.sink.fill().await {}
    assert!(r.sink.open.is_some());
    r.queue.fail_and_reopen();
    r.sink.close_open().await;
    assert_eq!(r.sink.bucket.tried.load(Ordering::SeqCst), 0);
    assert_eq!(r.queue.stats().records, 2);
    r.sink.follow_reopen().await;
    while r.sink.fill().await {}
    r.sink.close_open().await;
    assert_eq!(r.sink.bucket.tried.load(Ordering::SeqCst), 1);
    assert_eq!(r.queue.stats().records, 0);
}
