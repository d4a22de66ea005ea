//! The first thing to break: an event accepted over both protocols, and a
//! shutdown that an idle HTTP/2 connection does not hold.

use crate::support::process::{post, post_answer};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_an_event_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    for client in [server.http1(), server.http2()] {
        let url = server.url(EVENT);
        let (status, body) =
            post_answer(&client, &url, TOKEN, br#"{"event":"hello"}"#, false).await;
        assert_eq!(status, 200);
        assert_eq!(body, success());
    }
    assert_eq!(server.queue_stats().events, 2);
    server.stop().await;
}

/// Logpush keeps HTTP/2 connections open; they must not hold shutdown until
/// a timeout (actix sends no GOAWAY). The bound is generous: expected ~0.3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_do_not_hold_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let client = server.http2();
    let url = server.url(EVENT);
    let resp = post(&client, &url, TOKEN, br#"{"event":"kept alive"}"#, false)
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    tokio::time::timeout(std::time::Duration::from_secs(20), server.stop())
        .await
        .expect("shutdown must not wait for idle HTTP/2 connections");
    drop(client);
}
