//! Model tests of the queue: order, reopen, release, dead letters, watermarks, write errors.
use super::*;

fn limits() -> QueueLimits {
    QueueLimits::roomy()
}

fn meta(events: u64) -> RecordMeta {
    RecordMeta {
        received_ms: now_ms(),
        ..RecordMeta::plain(DataEndpoint::Raw, BodyEncoding::Identity, 3, events)
    }
}

#[tokio::test]
async fn fifo_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queue::open_again(dir.path());
        for i in 0..300u64 {
            let p = q.append(&meta(i), format!("b{i}").as_bytes()).unwrap();
            assert_eq!(p.id, i);
            q.commit(p).await.unwrap();
        }
        assert!(q.remove(0).unwrap());
        assert!(!q.contains(0));
    }
    let q = Queue::open_again(dir.path());
    let s = q.stats();
    assert_eq!(s.records, 299);
    assert_eq!(s.events, (1..300).sum::<u64>());
    let ids: Vec<_> = q.ids_from(0).collect();
    assert_eq!(ids, (1..300).collect::<Vec<_>>());
    assert_eq!(q.get(299).unwrap().unwrap().body, b"b299");
    let p = q.append(&meta(1), b"new").unwrap();
    assert_eq!(p.id, 300);
}

#[tokio::test]
async fn ids_are_never_handed_out_twice_even_after_the_queue_empties() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queue::open_again(dir.path());
        for i in 0..5u64 {
            let p = q.append(&meta(1), b"x").unwrap();
            assert_eq!(p.id, i);
            q.commit(p).await.unwrap();
        }
        for i in 0..5u64 {
            assert!(q.remove(i).unwrap());
        }
        assert_eq!(q.stats().records, 0);
    }
    let q = Queue::open_again(dir.path());
    let p = q.append(&meta(1), b"y").unwrap();
    assert_eq!(p.id, 5, "record ids go on after an empty queue is reopened");
}

#[tokio::test]
async fn chunked_bodies_round_trip_and_index_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..(CHUNK_BYTES * 3 + 17))
        .map(|i| (i % 251) as u8)
        .collect();
    {
        let q = Queue::open_again(dir.path());
        for i in 0..3u64 {
            let p = q.append(&meta(i + 1), &body).unwrap();
            q.commit(p).await.unwrap();
        }
        assert_eq!(q.get(1).unwrap().unwrap().body, body);
        assert!(q.remove(1).unwrap());
        assert!(q.get(1).unwrap().is_none());
        assert_eq!(
            q.store()
                .unwrap()
                .records
                .range(part_key(1, 0)..part_key(2, 0))
                .count(),
            0
        );
        // A crash between the record and its index entry.
        q.store().unwrap().index.remove(key(2)).unwrap();
        q.flush().unwrap();
    }
    let q = Queue::open_again(dir.path());
    let s = q.stats();
    assert_eq!((s.records, s.events), (2, 1 + 3));
    assert_eq!(q.ids_from(0).collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(q.get(2).unwrap().unwrap().body, body);
    assert_eq!(q.append(&meta(1), b"x").unwrap().id, 3);
}

#[tokio::test]
async fn records_leave_when_every_output_released_them() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = ["splunk", "archive"];
    {
        let q = Queue::open_again(dir.path());
        for _ in 0..3 {
            let p = q.append(&meta(1), b"x").unwrap();
            q.commit(p).await.unwrap();
        }
        assert!(!q.release(0, "archive", &outputs).unwrap());
        assert!(q.is_released(0, "archive"));
        assert!(!q.is_released(0, "splunk"));
        assert!(q.release(0, "splunk", &outputs).unwrap());
        assert!(!q.contains(0));
        assert!(q.is_released(0, "splunk"), "gone counts as delivered");
        // A crash after the last marker but before the delete.
        q.store()
            .unwrap()
            .released
            .insert(marker_key(1, "splunk"), &[])
            .unwrap();
        q.store()
            .unwrap()
            .released
            .insert(marker_key(1, "archive"), &[])
            .unwrap();
        q.store()
            .unwrap()
            .released
            .insert(marker_key(2, "archive"), &[])
            .unwrap();
        q.flush().unwrap();
    }
    let q = Queue::open_again(dir.path());
    assert_eq!(q.sweep_released(&outputs).unwrap(), 1);
    assert_eq!(q.ids_from(0).collect::<Vec<_>>(), vec![2]);
    assert!(q.is_released(2, "archive"));
    assert_eq!(q.store().unwrap().released.len(), 1);
    // An output removed from the config no longer holds records back.
    assert!(q.release(2, "archive", &["archive"]).unwrap());
    assert_eq!(q.stats().records, 0);
}

#[tokio::test]
async fn dead_letters_list_replay_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open_again(dir.path());
    let letter = |output: &str, event: &str| DeadLetter {
        output: output.into(),
        record: 7,
        event_number: 0,
        reason: "400".into(),
        time_ms: 1,
        event: event.into(),
    };
    let a = q
        .dead_letter(&letter("splunk", r#"{"event":"a","time":1}"#))
        .unwrap();
    q.dead_letter(&letter("archive", r#"{"event":"b","time":1}"#))
        .unwrap();
    q.dead_letter(&letter("splunk", "")).unwrap();
    assert_eq!(q.dead_letters().unwrap().len(), 3);
    assert_eq!(q.dead_letter_count("splunk"), 2);
    assert_eq!(
        q.dead_letter_get(a).unwrap().unwrap().event,
        r#"{"event":"a","time":1}"#
    );
    assert_eq!(
        q.replay_dead(Some(a), None, &["splunk", "archive"])
            .await
            .unwrap(),
        1
    );
    let id = q.ids_from(0).next().unwrap();
    assert!(
        q.is_released(id, "archive"),
        "only the output that gave up gets it again"
    );
    assert!(!q.is_released(id, "splunk"));
    assert_eq!(
        q.get(id).unwrap().unwrap().body,
        br#"{"event":"a","time":1}"#
    );
    assert_eq!(q.purge_dead(None, Some("archive")).unwrap(), 1);
    assert_eq!(
        q.dead_letters().unwrap().len(),
        1,
        "the unreadable one stays until purged"
    );
    assert_eq!(q.purge_dead(None, None).unwrap(), 1);
    assert_eq!(
        (
            q.dead_letter_count("splunk"),
            q.dead_letter_count("archive")
        ),
        (0, 0)
    );
}

#[tokio::test]
async fn dead_letter_counts_run_without_scanning_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let letter = |output: &str| DeadLetter {
        output: output.into(),
        record: 1,
        event_number: 0,
        reason: "400".into(),
        time_ms: 1,
        event: r#"{"event":"x"}"#.into(),
    };
    {
        let q = Queue::open_again(dir.path());
        // The first letter is counted by the first scan, not twice.
        q.dead_letter(&letter("a")).unwrap();
        assert_eq!(q.dead_letter_count("a"), 1);
        for _ in 0..4 {
            q.dead_letter(&letter("a")).unwrap();
        }
        q.dead_letter(&letter("b")).unwrap();
        assert_eq!((q.dead_letter_count("a"), q.dead_letter_count("b")), (5, 1));
        let first = q.dead_letters().unwrap()[0].0;
        assert_eq!(q.purge_dead(Some(first), None).unwrap(), 1);
        assert_eq!(
            q.replay_dead(None, Some("b"), &["a", "b"]).await.unwrap(),
            1
        );
        assert_eq!((q.dead_letter_count("a"), q.dead_letter_count("b")), (4, 0));
        q.flush().unwrap();
    }
    let q = Queue::open_again(dir.path());
    assert_eq!((q.dead_letter_count("a"), q.dead_letter_count("b")), (4, 0));
}

#[tokio::test]
async fn watermark_has_hysteresis() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        QueueLimits {
            max_bytes: 2000,
            ..limits()
        },
    )
    .unwrap();
    let mut ids = Vec::new();
    while q.admit(150).is_ok() {
        let p = q.append(&meta(1), &[b'x'; 150]).unwrap();
        ids.push(p.id);
        q.commit(p).await.unwrap();
    }
    assert_eq!(q.admit(1), Err(Busy::Full));
    assert!(q.over_watermark());
    let mut removed = 0;
    while q.stats().bytes * 10 >= 2000 * 9 {
        assert_eq!(q.admit(1), Err(Busy::Full), "still above 90 %");
        q.remove(ids[removed]).unwrap();
        removed += 1;
    }
    assert_eq!(q.admit(1), Ok(()));
}

#[tokio::test]
async fn a_write_error_refuses_until_reopened_and_keeps_what_was_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open_again(dir.path());
    let p = q.append(&meta(1), b"kept").unwrap();
    q.commit(p).await.unwrap();
    let unflushed = q.append(&meta(1), b"not flushed").unwrap();
    q.slot.write_failed(&"simulated ENOSPC");
    assert_eq!(q.admit(1), Err(Busy::WriteFailed));
    assert!(q.over_watermark());
    assert_eq!(q.write_errors(), 1);
    let generation = q.generation();
    assert!(q.reopen_if_failed().unwrap());
    assert!(q.writable());
    assert_eq!(q.generation(), generation + 1);
    assert!(
        q.commit(unflushed).await.is_err(),
        "an append to the old store is never reported durable"
    );
    assert_eq!(q.get(p.id).unwrap().unwrap().body, b"kept");
    let next = q.append(&meta(1), b"after").unwrap();
    assert!(next.id > unflushed.id, "ids never go back");
    q.commit(next).await.unwrap();
    assert_eq!(q.admit(1), Ok(()));
}

#[test]
fn body_reader_streams_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(Queue::open_again(dir.path()));
    let body: Vec<u8> = (0..(CHUNK_BYTES * 2 + 5))
        .map(|i| (i % 253) as u8)
        .collect();
    let p = q.append(&meta(1), &body).unwrap();
    let (m, mut r) = q.body_reader(p.id).unwrap().unwrap();
    assert_eq!(m.events, 1);
    assert_eq!(r.chunks(), 3);
    let mut small = [0u8; 1000];
    let n = std::io::Read::read(&mut r, &mut small).unwrap();
    assert_eq!(&small[..n], &body[..n]);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut rest).unwrap();
    assert_eq!([&small[..n], &rest[..]].concat(), body);
}

#[test]
fn low_disk_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        QueueLimits {
            min_free_bytes: u64::MAX / 2,
            ..limits()
        },
    )
    .unwrap();
    assert_eq!(q.admit(1), Err(Busy::DiskLow));
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _q = Queue::open(dir.path(), limits()).unwrap();
    match Queue::open(dir.path(), limits()) {
        Err(QueueError::Locked { .. }) => {}
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}
