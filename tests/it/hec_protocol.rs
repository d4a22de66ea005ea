//! HEC protocol conformance over real TLS, HTTP/1.1 and HTTP/2: every code
//! ingest can answer, Splunk's check order, the ack protocol, what real
//! clients send, and Logpush's probe and batches.
//!
//! Codes that need special server states (9, 18, 23) are covered elsewhere.

use crate::support::*;

use base64::Engine;
use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::{Method, Version};
use serde_json::{json, Value};
use std::io::Write;

const JSON_UTF8: &str = "application/json; charset=UTF-8";
/// A well-formed token no config defines.
const UNKNOWN_TOKEN: &str = "99999999-2222-4333-8444-555555555555";

/// A request to send (cloned per client).
#[derive(Clone, Debug)]
struct Req {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Req {
    fn post(path: impl Into<String>) -> Req {
        Req {
            method: Method::POST,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn get(path: impl Into<String>) -> Req {
        Req {
            method: Method::GET,
            ..Req::post(path)
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    /// `Authorization: Splunk <token>`.
    fn auth(self, token: &str) -> Req {
        self.header("Authorization", format!("Splunk {token}"))
    }

    /// A POST to `path` with the ack token and `channel` in the header.
    fn acked(path: impl Into<String>, channel: &str) -> Req {
        Req::post(path).auth(ACK_TOKEN).channel(channel)
    }

    /// `X-Splunk-Request-Channel: <channel>`.
    fn channel(self, channel: &str) -> Req {
        self.header("X-Splunk-Request-Channel", channel)
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }

    /// Gzips the body and says so.
    fn gzipped(mut self) -> Req {
        self.body = gzip(&self.body);
        self.header("Content-Encoding", "gzip")
    }
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    version: Version,
    content_type: Option<String>,
}

async fn send(client: &reqwest::Client, server: &TestServer, req: &Req) -> Answer {
    let mut b = client.request(req.method.clone(), server.url(&req.path));
    for (k, v) in &req.headers {
        b = b.header(*k, v.as_str());
    }
    let resp = b
        .body(req.body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", req.method, req.path));
    let version = resp.version();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii content type").to_string());
    let (status, body) = answer(resp).await;
    Answer {
        status,
        body,
        version,
        content_type,
    }
}

/// Sends `req` and asserts the exact status, JSON body and content type.
async fn expect(
    client: &reqwest::Client,
    server: &TestServer,
    req: &Req,
    status: u16,
    body: Value,
) -> Answer {
    let a = send(client, server, req).await;
    let ctx = format!("{} {} over {:?}", req.method, req.path, a.version);
    assert_eq!(a.status, status, "status of {ctx}: {}", a.body);
    assert_eq!(a.body, body, "body of {ctx}");
    assert_eq!(
        a.content_type.as_deref(),
        Some(JSON_UTF8),
        "content type of {ctx}"
    );
    a
}

/// An HTTP/1.1 and an HTTP/2 client, with the version each must negotiate.
fn clients(server: &TestServer) -> [(reqwest::Client, Version); 2] {
    [
        (server.http1(), Version::HTTP_11),
        (server.http2(), Version::HTTP_2),
    ]
}

/// Sends `req` over HTTP/1.1 and over HTTP/2 and asserts the same answer on both.
async fn expect_both(server: &TestServer, req: &Req, status: u16, body: Value) {
    for (client, version) in clients(server) {
        let a = expect(&client, server, req, status, body.clone()).await;
        assert_eq!(a.version, version, "{} {}", req.method, req.path);
    }
}

/// Splunk's refusals in its auth order for `base`, a request without
/// `Authorization`: as it is 401 code 2, with each of `bad_headers` as its
/// `Authorization` 401 code 3, with an unknown token 403 code 4.
async fn expect_auth_refusals(server: &TestServer, base: &Req, bad_headers: &[&str]) {
    expect_both(server, base, 401, hec("Token is required", 2)).await;
    for bad in bad_headers {
        let req = base.clone().header("Authorization", *bad);
        expect_both(server, &req, 401, hec("Invalid authorization", 3)).await;
    }
    let req = base.clone().auth(UNKNOWN_TOKEN);
    expect_both(server, &req, 403, hec("Invalid token", 4)).await;
}

/// Sends the `/ack` poll `req` and asserts 200 with `{"acks": acks}`.
async fn expect_acks(client: &reqwest::Client, server: &TestServer, req: &Req, acks: Value) {
    expect(client, server, req, 200, json!({ "acks": acks })).await;
}

/// The 400 answer to `?token=` for a token that does not allow it.
fn query_auth_off() -> Value {
    hec("Query string authorization is not enabled", 16)
}

/// The 404 answer for a path that is not HEC's.
fn not_found() -> Value {
    hec("The requested URL was not found on this server.", 404)
}

/// The 405 answer for a HEC path and the wrong method.
fn not_allowed() -> Value {
    hec("Method Not Allowed", 405)
}

/// `{"text":..,"code":..,"invalid-event-number":n}`.
fn hec_at(text: &str, code: u16, n: u64) -> Value {
    json!({"text": text, "code": code, "invalid-event-number": n})
}

/// `Authorization: Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// The most recently queued record.
fn last_record(server: &TestServer) -> sluice::queue::Record {
    let q = server.running.as_ref().expect("running").queue();
    let id = q.ids_from(0).last().expect("a queued record");
    q.get(id).expect("readable").expect("present")
}

async fn dir_and_server() -> (tempfile::TempDir, TestServer) {
    start_in_tempdir(|dir| config_text(dir, "", "")).await
}

// ---------------------------------------------------------------------------
// 1. Every code ingest can produce, over HTTP/1.1 and HTTP/2.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_0_success_with_and_without_ack_id() {
    let (_dir, mut server) = dir_and_server().await;
    let ev = Req::post(EVENT).auth(TOKEN).body(r#"{"event":"hello"}"#);
    expect_both(&server, &ev, 200, success()).await;
    let raw = Req::post(RAW).auth(TOKEN).body("line one\nline two\n");
    expect_both(&server, &raw, 200, success()).await;
    assert_eq!(server.queue_stats().events, 6);

    for (i, (client, version)) in clients(&server).into_iter().enumerate() {
        let ch = channel_n(i as u32 + 1);
        let ev = Req::acked(EVENT, &ch).body(r#"{"event":"acked"}"#);
        let a = expect(&client, &server, &ev, 200, success_ack(0)).await;
        assert_eq!(a.version, version);
        expect(&client, &server, &ev, 200, success_ack(1)).await;
    }
    assert_eq!(server.queue_stats().events, 10);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_codes_1_2_3_4() {
    let (_dir, mut server) = dir_and_server().await;
    let body = r#"{"event":"x"}"#;
    for path in [EVENT, RAW] {
        let base = Req::post(path).body(body);
        expect_both(
            &server,
            &base.clone().auth(DISABLED_TOKEN),
            403,
            hec("Token disabled", 1),
        )
        .await;
        expect_auth_refusals(&server, &base, &["Bearer x", "Splunk", "Basic !!!"]).await;
    }
    // /ack checks auth the same way.
    expect_both(
        &server,
        &Req::post(ACK).body(r#"{"acks":[0]}"#),
        401,
        hec("Token is required", 2),
    )
    .await;
    assert_eq!(server.queue_stats().events, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_5_no_data() {
    let (_dir, mut server) = dir_and_server().await;
    let no_data = hec("No data", 5);
    for (path, body) in [
        (EVENT, ""),
        (EVENT, " \n\t\r\n "),
        (RAW, ""),
        (RAW, "\n\n\r\n   \n"),
    ] {
        let req = Req::post(path).auth(TOKEN).body(body);
        expect_both(&server, &req, 400, no_data.clone()).await;
        // The same, gzipped.
        expect_both(&server, &req.clone().gzipped(), 400, no_data.clone()).await;
    }
    assert_eq!(server.queue_stats().events, 0);
    assert_eq!(server.queue_stats().records, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_6_invalid_event_number_keeps_the_good_events() {
    let (_dir, mut server) = dir_and_server().await;
    for (client, version) in clients(&server) {
        let before = server.queue_stats().events;
        let req = Req::post(EVENT)
            .auth(TOKEN)
            .body(r#"{"event":"a"}{"event":"b"} {"event":"c"}garbage{"event":"d"}"#);
        let a = expect(
            &client,
            &server,
            &req,
            400,
            hec_at("Invalid data format", 6, 3),
        )
        .await;
        assert_eq!(a.version, version);
        assert_eq!(
            server.queue_stats().events,
            before + 3,
            "the 3 objects before the bad one are queued"
        );

        // The same inside a gzip body.
        let before = server.queue_stats().events;
        expect(
            &client,
            &server,
            &req.clone().gzipped(),
            400,
            hec_at("Invalid data format", 6, 3),
        )
        .await;
        assert_eq!(server.queue_stats().events, before + 3);

        // A truncated last object.
        let before = server.queue_stats().events;
        let req = Req::post(EVENT)
            .auth(TOKEN)
            .body(r#"{"event":1}{"event":2"#);
        expect(
            &client,
            &server,
            &req,
            400,
            hec_at("Invalid data format", 6, 1),
        )
        .await;
        assert_eq!(server.queue_stats().events, before + 1);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_6_for_null_and_false_events() {
    let (_dir, mut server) = dir_and_server().await;
    for body in [r#"{"event":null}"#, r#"{"event":false}"#] {
        let req = Req::post(EVENT).auth(TOKEN).body(body);
        expect_both(&server, &req, 400, hec_at("Invalid data format", 6, 0)).await;
    }
    assert_eq!(server.queue_stats().events, 0);
    // A null event after a good one: the good one is kept.
    let req = Req::post(EVENT)
        .auth(TOKEN)
        .body(r#"{"event":"ok"}{"event":null}"#);
    expect_both(&server, &req, 400, hec_at("Invalid data format", 6, 1)).await;
    assert_eq!(server.queue_stats().events, 2);
    // `{}`, `[]` and `0` are real events.
    let req = Req::post(EVENT)
        .auth(TOKEN)
        .body(r#"{"event":{}}{"event":[]}{"event":0}"#);
    expect_both(&server, &req, 200, success()).await;
    assert_eq!(server.queue_stats().events, 8);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_7_incorrect_index() {
    let (_dir, mut server) = dir_and_server().await;
    let ev = Req::post(EVENT)
        .auth(INDEXED_TOKEN)
        .body(r#"{"event":"x","index":"main"}"#);
    expect_both(&server, &ev, 400, hec_at("Incorrect index", 7, 0)).await;
    let ev = Req::post(EVENT)
        .auth(INDEXED_TOKEN)
        .body(r#"{"event":"x","index":"cloudflare"}{"event":"y","index":"main"}"#);
    expect_both(&server, &ev, 400, hec_at("Incorrect index", 7, 1)).await;
    assert_eq!(server.queue_stats().events, 2);
    let raw = Req::post(format!("{RAW}?index=main"))
        .auth(INDEXED_TOKEN)
        .body("a line\n");
    expect_both(&server, &raw, 400, hec("Incorrect index", 7)).await;
    assert_eq!(server.queue_stats().events, 2);
    // The allowed index is fine on both endpoints.
    let raw = Req::post(format!("{RAW}?index=cloudflare"))
        .auth(INDEXED_TOKEN)
        .body("a line\n");
    expect_both(&server, &raw, 200, success()).await;
    let ev = Req::post(EVENT)
        .auth(INDEXED_TOKEN)
        .body(r#"{"event":"x","index":"cloudflare"}"#);
    expect_both(&server, &ev, 200, success()).await;
    assert_eq!(server.queue_stats().events, 6);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_codes_10_and_11() {
    let (_dir, mut server) = dir_and_server().await;
    for (path, body) in [
        (EVENT, r#"{"event":"x"}"#),
        (RAW, "x\n"),
        (ACK, r#"{"acks":[0]}"#),
    ] {
        let req = Req::post(path).auth(ACK_TOKEN).body(body);
        expect_both(&server, &req, 400, hec("Data channel is missing", 10)).await;
        for bad in [
            "not-a-guid",
            "0aa9a7a85b0e4a7b9c1d2e3f4a5b6c7d",
            "0aa9a7a8-5b0e-4a7b-9c1d-2e3f4a5b6c7z",
        ] {
            expect_both(
                &server,
                &req.clone().channel(bad),
                400,
                hec("Invalid data channel", 11),
            )
            .await;
        }
        let req = Req::post(format!("{path}?channel=nope"))
            .auth(ACK_TOKEN)
            .body(body);
        expect_both(&server, &req, 400, hec("Invalid data channel", 11)).await;
    }
    assert_eq!(server.queue_stats().events, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_12_13_15_event_and_fields() {
    let (_dir, mut server) = dir_and_server().await;
    let cases = [
        (r#"{"host":"h"}"#, hec_at("Event field is required", 12, 0)),
        (
            r#"{"event":""}"#,
            hec_at("Event field cannot be blank", 13, 0),
        ),
        (
            r#"{"event":"  "}"#,
            hec_at("Event field cannot be blank", 13, 0),
        ),
        (
            r#"{"event":"x","fields":{"a":{"b":1}}}"#,
            hec_at("Error in handling indexed fields", 15, 0),
        ),
        (
            r#"{"event":"x","fields":{"a":[[1]]}}"#,
            hec_at("Error in handling indexed fields", 15, 0),
        ),
        (
            r#"{"event":"ok"}{"event":"x","fields":{"a":{"b":1}}}"#,
            hec_at("Error in handling indexed fields", 15, 1),
        ),
    ];
    for (body, want) in cases {
        let req = Req::post(EVENT).auth(TOKEN).body(body);
        expect_both(&server, &req, 400, want).await;
    }
    assert_eq!(server.queue_stats().events, 2, "only the good prefix");
    // Flat fields with scalar arrays are fine.
    let req = Req::post(EVENT)
        .auth(TOKEN)
        .body(r#"{"event":"x","fields":{"a":[1,"b"],"c":2}}"#);
    expect_both(&server, &req, 200, success()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_14_ack_disabled() {
    let (_dir, mut server) = dir_and_server().await;
    let req = Req::post(ACK).auth(TOKEN).body(r#"{"acks":[0]}"#);
    expect_both(&server, &req, 400, hec("ACK is disabled", 14)).await;
    expect_both(
        &server,
        &req.clone().channel(CHANNEL),
        400,
        hec("ACK is disabled", 14),
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_16_query_token_not_enabled() {
    let (_dir, mut server) = dir_and_server().await;
    let want = query_auth_off();
    for path in [EVENT, RAW] {
        let req = Req::post(format!("{path}?token={TOKEN}")).body(r#"{"event":"x"}"#);
        expect_both(&server, &req, 400, want.clone()).await;
        // Even with a valid header too.
        expect_both(&server, &req.clone().auth(TOKEN), 400, want.clone()).await;
        // An unknown query token answers 16 too.
        let req = Req::post(format!("{path}?token=nope")).body(r#"{"event":"x"}"#);
        expect_both(&server, &req, 400, want.clone()).await;
    }
    assert_eq!(server.queue_stats().events, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_17_health() {
    let (_dir, mut server) = dir_and_server().await;
    let healthy = hec("HEC is healthy", 17);
    for path in [HEALTH, "/services/collector/health/1.0"] {
        expect_both(&server, &Req::get(path), 200, healthy.clone()).await;
        expect_both(&server, &Req::post(path), 200, healthy.clone()).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_404_and_wrong_method_405() {
    let (_dir, mut server) = dir_and_server().await;
    for path in [
        "/services/collector/nope",
        "/",
        "/services/collector/event/2.0",
    ] {
        let req = Req::post(path).auth(TOKEN).body("{}");
        expect_both(&server, &req, 404, not_found()).await;
        expect_both(&server, &Req::get(path), 404, not_found()).await;
    }
    for path in [
        EVENT,
        "/services/collector",
        "/services/collector/event/1.0",
        RAW,
        ACK,
    ] {
        expect_both(&server, &Req::get(path).auth(TOKEN), 405, not_allowed()).await;
    }
    let put = Req {
        method: Method::PUT,
        ..Req::post(EVENT).auth(TOKEN).body(r#"{"event":"x"}"#)
    };
    expect_both(&server, &put, 405, not_allowed()).await;
    assert_eq!(server.queue_stats().events, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_413_body_over_max_body_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with(dir.path(), "max_body_bytes = 1000", "").await;
    let too_large = hec("Content too large", 413);
    let big_event = format!(r#"{{"event":"{}"}}"#, "x".repeat(2000));
    let big_raw = "y".repeat(1500) + "\n";
    // A body far over the cap (several HTTP/2 flow-control windows): the
    // answer still arrives, the connection is not just reset.
    let huge = "z\n".repeat(300_000);
    for (path, body) in [(EVENT, big_event), (RAW, big_raw), (RAW, huge)] {
        let req = Req::post(path).auth(TOKEN).body(body);
        expect_both(&server, &req, 413, too_large.clone()).await;
    }
    assert_eq!(server.queue_stats().records, 0);
    // Just under the cap is fine.
    let small = format!(r#"{{"event":"{}"}}"#, "x".repeat(900));
    expect_both(
        &server,
        &Req::post(EVENT).auth(TOKEN).body(small),
        200,
        success(),
    )
    .await;
    assert_eq!(server.queue_stats().events, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_413_gzip_bomb_over_max_decoded_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with(dir.path(), "max_decoded_bytes = 1048576", "").await;
    let bomb = bomb(20 << 20, 1 << 20);
    for path in [RAW, EVENT] {
        let req = Req::post(path)
            .auth(TOKEN)
            .header("Content-Encoding", "gzip")
            .body(bomb.clone());
        expect_both(&server, &req, 413, hec("Content too large", 413)).await;
    }
    assert_eq!(server.queue_stats().records, 0);
    // Under the decoded cap, gzip is accepted.
    let req = Req::post(RAW).auth(TOKEN).body("a\nb\n").gzipped();
    expect_both(&server, &req, 200, success()).await;
    assert_eq!(server.queue_stats().events, 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_415_unsupported_encodings() {
    let (_dir, mut server) = dir_and_server().await;
    for path in [EVENT, RAW] {
        for enc in ["deflate", "br", "compress", "zstd"] {
            let req = Req::post(path)
                .auth(TOKEN)
                .header("Content-Encoding", enc)
                .body(r#"{"event":"x"}"#);
            expect_both(&server, &req, 415, hec("Unsupported Media Type", 415)).await;
        }
    }
    // gzip, x-gzip and identity are fine, whatever the letter case.
    for enc in ["gzip", "GZIP", "x-gzip"] {
        let req = Req::post(EVENT)
            .auth(TOKEN)
            .header("Content-Encoding", enc)
            .body(gzip(br#"{"event":"x"}"#));
        expect_both(&server, &req, 200, success()).await;
    }
    let req = Req::post(EVENT)
        .auth(TOKEN)
        .header("Content-Encoding", "identity")
        .body(r#"{"event":"x"}"#);
    expect_both(&server, &req, 200, success()).await;
    assert_eq!(server.queue_stats().events, 8);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Check order, as measured on Splunk.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_order_matches_splunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with(dir.path(), "max_body_bytes = 1000", "").await;
    let oversized = vec![b'x'; 5000];

    // Route/method before anything.
    let req = Req::post(format!("/nope?token={TOKEN}"));
    expect_both(&server, &req, 404, not_found()).await;
    let req = Req::get(format!("{EVENT}?token={TOKEN}"));
    expect_both(&server, &req, 405, not_allowed()).await;

    // `?token=` (query auth off) before the header, even a valid one.
    let req = Req::post(format!("{EVENT}?token={TOKEN}"))
        .auth(TOKEN)
        .body(r#"{"event":"x"}"#);
    expect_both(&server, &req, 400, query_auth_off()).await;
    // ... and before a bad header, channel, encoding and size.
    let req = Req::post(format!("{EVENT}?token={TOKEN}"))
        .header("Authorization", "Bearer x")
        .channel("bad")
        .header("Content-Encoding", "deflate")
        .body(oversized.clone());
    expect_both(&server, &req, 400, query_auth_off()).await;

    // Auth before channel: a disabled token with a missing or bad channel is 1.
    let req = Req::post(EVENT)
        .auth(DISABLED_TOKEN)
        .body(r#"{"event":"x"}"#);
    expect_both(&server, &req, 403, hec("Token disabled", 1)).await;
    expect_both(
        &server,
        &req.clone().channel("bad"),
        403,
        hec("Token disabled", 1),
    )
    .await;
    // Missing / unknown token before channel, encoding and size.
    let rest = Req::post(EVENT)
        .channel("bad")
        .header("Content-Encoding", "deflate")
        .body(oversized.clone());
    expect_auth_refusals(&server, &rest, &["Bearer x"]).await;

    // Channel before encoding (and size).
    let req = Req::acked(EVENT, "bad")
        .header("Content-Encoding", "deflate")
        .body(oversized.clone());
    expect_both(&server, &req, 400, hec("Invalid data channel", 11)).await;
    let req = Req::post(EVENT)
        .auth(ACK_TOKEN)
        .header("Content-Encoding", "deflate")
        .body(oversized.clone());
    expect_both(&server, &req, 400, hec("Data channel is missing", 10)).await;

    // Encoding before size.
    let req = Req::post(EVENT)
        .auth(TOKEN)
        .header("Content-Encoding", "deflate")
        .body(oversized.clone());
    expect_both(&server, &req, 415, hec("Unsupported Media Type", 415)).await;

    // Size before parse: an oversized body of garbage is 413, not 6.
    let req = Req::post(EVENT).auth(TOKEN).body(oversized);
    expect_both(&server, &req, 413, hec("Content too large", 413)).await;

    assert_eq!(server.queue_stats().records, 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 3. The ack protocol.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_ids_per_channel_and_polling() {
    let (_dir, mut server) = dir_and_server().await;
    for (i, (client, version)) in clients(&server).into_iter().enumerate() {
        // One channel per client: upper case in the header, lower case in the query.
        let upper = channel_n(10 + i as u32).to_uppercase();
        let lower = upper.to_lowercase();
        let other = channel_n(20 + i as u32);
        let unused = channel_n(30 + i as u32);

        let ev = Req::acked(EVENT, &upper).body(r#"{"event":"one"}"#);
        let a = expect(&client, &server, &ev, 200, success_ack(0)).await;
        assert_eq!(a.version, version);
        let raw = Req::post(format!("{RAW}?channel={lower}"))
            .auth(ACK_TOKEN)
            .body("two\n");
        expect(&client, &server, &raw, 200, success_ack(1)).await;
        // Another channel starts at 0.
        let ev_other = Req::acked(EVENT, &other).body(r#"{"event":"three"}"#);
        expect(&client, &server, &ev_other, 200, success_ack(0)).await;

        // Poll with the lower-case channel in the header.
        let poll = Req::acked(ACK, &lower).body(r#"{"acks":[0,1,5]}"#);
        expect_acks(
            &client,
            &server,
            &poll,
            json!({"0": true, "1": true, "5": false}),
        )
        .await;
        // Forgotten after true.
        expect_acks(
            &client,
            &server,
            &poll,
            json!({"0": false, "1": false, "5": false}),
        )
        .await;
        // A channel that never sent anything knows no ids.
        let poll_unused = Req::post(format!("{ACK}?channel={unused}"))
            .auth(ACK_TOKEN)
            .body(r#"{"acks":[0,1]}"#);
        expect_acks(
            &client,
            &server,
            &poll_unused,
            json!({"0": false, "1": false}),
        )
        .await;
        // The other channel: its own id 0 is true, id 1 (of the first channel) false.
        let poll_other = Req::acked(ACK, &other).body(r#"{"acks":[1,0]}"#);
        expect_acks(
            &client,
            &server,
            &poll_other,
            json!({"0": true, "1": false}),
        )
        .await;

        // Ids keep counting on the first channel after a poll.
        expect(&client, &server, &ev, 200, success_ack(2)).await;
        let poll = Req::acked(ACK, &upper).body(r#"{"acks":[2]}"#);
        expect_acks(&client, &server, &poll, json!({"2": true})).await;
    }
    assert_eq!(server.queue_stats().events, 8);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_poll_gzip_body_and_1_0_path() {
    let (_dir, mut server) = dir_and_server().await;
    for (i, (client, _)) in clients(&server).into_iter().enumerate() {
        let ch = channel_n(40 + i as u32);
        let ev = Req::acked(EVENT, &ch).body(r#"{"event":"x"}"#);
        expect(&client, &server, &ev, 200, success_ack(0)).await;
        expect(&client, &server, &ev, 200, success_ack(1)).await;
        // Vector gzips its /ack bodies.
        let poll = Req::acked(ACK, &ch).body(r#"{"acks":[0]}"#).gzipped();
        expect_acks(&client, &server, &poll, json!({"0": true})).await;
        let poll = Req::acked("/services/collector/ack/1.0", &ch).body(r#"{"acks":[0,1]}"#);
        expect_acks(&client, &server, &poll, json!({"0": false, "1": true})).await;
        // An empty or broken ack body.
        let poll = Req::acked(ACK, &ch);
        expect(&client, &server, &poll, 400, hec("No data", 5)).await;
        let poll = Req::acked(ACK, &ch).body(r#"{"acks":"x"}"#);
        expect(&client, &server, &poll, 400, hec("Invalid data format", 6)).await;
        let poll = Req::acked(ACK, &ch)
            .header("Content-Encoding", "deflate")
            .body(r#"{"acks":[0]}"#);
        expect(
            &client,
            &server,
            &poll,
            415,
            hec("Unsupported Media Type", 415),
        )
        .await;
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 4. What real clients send.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_event_shapes() {
    let (_dir, mut server) = dir_and_server().await;
    let mut expected = 0;
    let cases: [(Req, u64); 9] = [
        // Python and Node libraries: `time` as a string.
        (
            Req::post(EVENT)
                .auth(TOKEN)
                .body(r#"{"time":"1700000000.123","event":{"msg":"hi"},"host":"h"}"#),
            1,
        ),
        // Node library: /event/1.0 with a form content type.
        (
            Req::post("/services/collector/event/1.0")
                .auth(TOKEN)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(r#"{"time":"1700000000.5","event":"node","source":"s"}"#),
            1,
        ),
        // Objects separated by newlines, and by nothing.
        (
            Req::post(EVENT)
                .auth(TOKEN)
                .body("{\"event\":1}\n{\"event\":2}\r\n\n{\"event\":3}\n"),
            3,
        ),
        (
            Req::post(EVENT)
                .auth(TOKEN)
                .body(r#"{"event":1}{"event":"}{"}{"event":3}"#),
            3,
        ),
        // A top-level array.
        (
            Req::post(EVENT)
                .auth(TOKEN)
                .body(r#"[{"event":1}, {"event":{"a":[1,2]}}]"#),
            2,
        ),
        // The bare collector path.
        (
            Req::post("/services/collector")
                .auth(TOKEN)
                .body(r#"{"event":"bare"}"#),
            1,
        ),
        // Basic auth with the token as password.
        (
            Req::post(EVENT)
                .header("Authorization", basic("anything", TOKEN))
                .body(r#"{"event":"basic"}"#),
            1,
        ),
        // `?token=` for a token that allows it.
        (
            Req::post(format!("{EVENT}?token={QUERY_TOKEN}")).body(r#"{"event":"query"}"#),
            1,
        ),
        // Numeric times in seconds, milliseconds and nanoseconds.
        (
            Req::post(EVENT).auth(TOKEN).body(
                r#"{"event":"s","time":1700000000}{"event":"ms","time":1700000000123}{"event":"ns","time":"1700000000123456789"}"#,
            ),
            3,
        ),
    ];
    for (req, events) in &cases {
        expect_both(&server, req, 200, success()).await;
        expected += 2 * events;
        assert_eq!(
            server.queue_stats().events,
            expected,
            "{} {}",
            req.method,
            req.path
        );
    }
    // `Connection: close` (HTTP/1.1 only: the header is forbidden in HTTP/2).
    let client = server.http1();
    for _ in 0..2 {
        let req = Req::post(EVENT)
            .auth(TOKEN)
            .header("Connection", "close")
            .body(r#"{"event":"close"}"#);
        expect(&client, &server, &req, 200, success()).await;
    }
    assert_eq!(server.queue_stats().events, expected + 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_raw_shapes() {
    let (_dir, mut server) = dir_and_server().await;
    let client = server.http2();

    // /raw with query metadata.
    let req = Req::post(format!(
        "{RAW}?sourcetype=cf%3Anal&source=logpush&host=edge-1&index=cloudflare"
    ))
    .auth(TOKEN)
    .body("one\ntwo\r\nthree");
    expect(&client, &server, &req, 200, success()).await;
    assert_eq!(server.queue_stats().events, 3);
    let rec = last_record(&server);
    assert_eq!(rec.meta.sourcetype.as_deref(), Some("cf:nal"));
    assert_eq!(rec.meta.source.as_deref(), Some("logpush"));
    assert_eq!(rec.meta.host.as_deref(), Some("edge-1"));
    assert_eq!(rec.meta.index.as_deref(), Some("cloudflare"));
    assert_eq!(rec.meta.token, "plain");
    assert_eq!(rec.meta.channel, None);
    assert_eq!(rec.meta.events, 3);

    // /raw without a channel for a token without acks, on both protocols.
    let req = Req::post(RAW).auth(TOKEN).body("no channel\n");
    expect_both(&server, &req, 200, success()).await;
    let req = Req::post("/services/collector/raw/1.0")
        .auth(TOKEN)
        .body("raw 1.0\n");
    expect_both(&server, &req, 200, success()).await;
    assert_eq!(server.queue_stats().events, 7);

    // A channel given by a non-ack client is kept, normalised.
    let req = Req::post(format!("{RAW}?channel={CHANNEL}"))
        .auth(TOKEN)
        .body("with channel\n");
    expect(&client, &server, &req, 200, success()).await;
    assert_eq!(
        last_record(&server).meta.channel.as_deref(),
        Some(CHANNEL.to_lowercase().as_str())
    );
    assert_eq!(server.queue_stats().events, 8);

    // Multi-member gzip: every member's lines count.
    let mut body = gzip(b"a\nb\n");
    body.extend(gzip(b"c\n\nd\n"));
    body.extend(gzip(b"e"));
    let req = Req::post(RAW)
        .auth(TOKEN)
        .header("Content-Encoding", "gzip")
        .body(body);
    expect_both(&server, &req, 200, success()).await;
    assert_eq!(server.queue_stats().events, 8 + 2 * 5);

    // Truncated gzip: 400 code 6 and nothing queued.
    let before = server.queue_stats();
    let lines = sample_lines();
    let raw_gz = gzip(lines.join("\n").as_bytes());
    let events: String = lines
        .iter()
        .map(|l| format!(r#"{{"event":{l}}}"#))
        .collect();
    let event_gz = gzip(events.as_bytes());
    for (path, full) in [(RAW, raw_gz), (EVENT, event_gz)] {
        let req = Req::post(path)
            .auth(TOKEN)
            .header("Content-Encoding", "gzip")
            .body(full[..full.len() / 2].to_vec());
        expect_both(&server, &req, 400, hec("Invalid data format", 6)).await;
    }
    // Not gzip at all, though declared so.
    let req = Req::post(RAW)
        .auth(TOKEN)
        .header("Content-Encoding", "gzip")
        .body("plain text\n");
    expect_both(&server, &req, 400, hec("Invalid data format", 6)).await;
    let after = server.queue_stats();
    assert_eq!(
        (after.records, after.events, after.bytes),
        (before.records, before.events, before.bytes)
    );
    // An idle HTTP/2 connection would hold graceful shutdown open (see the report).
    drop(client);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 5–6. Cloudflare Logpush.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logpush_probe_is_answered_and_not_queued() {
    let (_dir, mut server) = dir_and_server().await;
    let probe = std::fs::read(sample("logpush-probe.json.gz")).expect("probe sample");
    let req = Req::post(format!("{RAW}?channel={CHANNEL}"))
        .auth(TOKEN)
        .header("Content-Encoding", "gzip")
        .header("User-Agent", "Go-http-client/2.0")
        .body(probe);
    let a = expect(&server.http2(), &server, &req, 200, success()).await;
    assert_eq!(a.version, Version::HTTP_2);
    let stats = server.queue_stats();
    assert_eq!((stats.records, stats.events), (0, 0));
    let metrics = server.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "sluice_ingest_probes_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

/// Finding 9: the probe was recognised on every endpoint. On `/event` it is
/// an event without `event` (Splunk: 400 code 12); on an ack token its
/// answer carries an ackId that is already true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logpush_probe_is_raw_only_and_acked_at_once() {
    let (_dir, mut server) = dir_and_server().await;
    let probe = std::fs::read(sample("logpush-probe.json.gz")).expect("probe sample");
    let c = server.http2();
    let send = |path: String, token: &'static str| {
        crate::support::process::authorized_post(&c, &server.url(&path), token)
            .header("Content-Encoding", "gzip")
            .body(probe.clone())
            .send()
    };
    let (status, body) = answer(
        send(format!("{EVENT}?channel={CHANNEL}"), TOKEN)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"text":"Event field is required","code":12,"invalid-event-number":0})
        )
    );
    let (status, body) = answer(
        send(format!("{RAW}?channel={CHANNEL}"), ACK_TOKEN)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].clone()), (200, json!(0)), "{body}");
    let id = body["ackId"].as_u64().expect("an ackId on an ack token");
    let (_, acks) = poll_ack(&c, &server.base, ACK_TOKEN, CHANNEL, id).await;
    assert_eq!(acks["acks"][id.to_string()], json!(true), "{acks}");
    let stats = server.queue_stats();
    assert_eq!(
        (stats.records, stats.events),
        (0, 0),
        "probes are never queued"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logpush_shaped_batch_over_http2() {
    let (_dir, mut server) = dir_and_server().await;
    let lines = sample_lines();
    let mut ndjson = String::new();
    for line in lines.iter().cycle().take(10_000) {
        ndjson.push_str(line);
        ndjson.push('\n');
    }
    let req = Req::post(format!(
        "{RAW}?channel={CHANNEL}&sourcetype=cloudflare:network_analytics"
    ))
    .header("Authorization", format!("Splunk {TOKEN}"))
    .header("User-Agent", "Go-http-client/2.0")
    .header("Content-Encoding", "gzip")
    .body(gzip(ndjson.as_bytes()));
    let a = expect(&server.http2(), &server, &req, 200, success()).await;
    assert_eq!(a.version, Version::HTTP_2);
    let stats = server.queue_stats();
    assert_eq!((stats.records, stats.events), (1, 10_000));
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"sluice_ingest_events_total{token="plain"} 10000"#),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"sluice_ingest_requests_total{code="0",endpoint="raw"} "#)),
        "{metrics}"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 7. Nothing already accepted is lost.
// ---------------------------------------------------------------------------

/// The first half of a gzip body of 1,000 lines.
fn truncated_gzip() -> Vec<u8> {
    let full = gzip("a line of text\n".repeat(1000).as_bytes());
    full[..full.len() / 2].to_vec()
}

/// gzip of `decoded` newlines, checked to be under `max_compressed` bytes.
fn bomb(decoded: usize, max_compressed: usize) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(&vec![b'\n'; decoded]).expect("gzip");
    let b = e.finish().expect("gzip");
    assert!(b.len() < max_compressed, "bomb is {} bytes", b.len());
    b
}

/// Requests that must be refused without queueing anything.
fn bad_requests() -> Vec<(Req, u16)> {
    let ev = r#"{"event":"x"}"#;
    vec![
        (Req::post(EVENT).auth(DISABLED_TOKEN).body(ev), 403),
        (Req::post(EVENT).body(ev), 401),
        (
            Req::post(EVENT)
                .header("Authorization", "Bearer x")
                .body(ev),
            401,
        ),
        (
            Req::post(EVENT).header("Authorization", "Splunk").body(ev),
            401,
        ),
        (Req::post(EVENT).auth("nope").body(ev), 403),
        (Req::post(EVENT).auth(TOKEN), 400),
        (Req::post(EVENT).auth(TOKEN).body("  \n "), 400),
        (Req::post(RAW).auth(TOKEN).body("\n\n\n"), 400),
        (Req::post(EVENT).auth(TOKEN).body("garbage"), 400),
        (Req::post(EVENT).auth(TOKEN).body(r#"{"event":null}"#), 400),
        (
            Req::post(EVENT)
                .auth(INDEXED_TOKEN)
                .body(r#"{"event":1,"index":"main"}"#),
            400,
        ),
        (
            Req::post(format!("{RAW}?index=main"))
                .auth(INDEXED_TOKEN)
                .body("x\n"),
            400,
        ),
        (Req::post(EVENT).auth(ACK_TOKEN).body(ev), 400),
        (Req::acked(EVENT, "bad").body(ev), 400),
        (Req::post(EVENT).auth(TOKEN).body(r#"{"host":"h"}"#), 400),
        (Req::post(EVENT).auth(TOKEN).body(r#"{"event":""}"#), 400),
        (Req::post(ACK).auth(TOKEN).body(r#"{"acks":[0]}"#), 400),
        (
            Req::post(EVENT)
                .auth(TOKEN)
                .body(r#"{"event":1,"fields":{"a":{"b":1}}}"#),
            400,
        ),
        (Req::post(format!("{EVENT}?token={TOKEN}")).body(ev), 400),
        (
            Req::post("/services/collector/nope").auth(TOKEN).body(ev),
            404,
        ),
        (Req::get(EVENT).auth(TOKEN), 405),
        (
            Req::post(EVENT)
                .auth(TOKEN)
                .header("Content-Encoding", "deflate")
                .body(ev),
            415,
        ),
        (
            Req::post(EVENT)
                .auth(TOKEN)
                .header("Content-Encoding", "br")
                .body(ev),
            415,
        ),
        (
            Req::post(RAW)
                .auth(TOKEN)
                .header("Content-Encoding", "gzip")
                .body(truncated_gzip()),
            400,
        ),
        (
            Req::post(RAW)
                .auth(TOKEN)
                .header("Content-Encoding", "gzip")
                .body(bomb(3 << 20, 16384)),
            413,
        ),
        (Req::post(RAW).auth(TOKEN).body("z".repeat(20_000)), 413),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_accepted_is_lost_after_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with(
        dir.path(),
        "max_body_bytes = 16384\nmax_decoded_bytes = 1048576",
        "",
    )
    .await;
    // Accept some events every way.
    let good = [
        Req::post(EVENT)
            .auth(TOKEN)
            .body(r#"{"event":1}{"event":2}"#),
        Req::post(RAW).auth(TOKEN).body("a\nb\nc\n").gzipped(),
        Req::acked(EVENT, CHANNEL).body(r#"{"event":"acked"}"#),
        Req::post(format!("{EVENT}?token={QUERY_TOKEN}")).body(r#"{"event":"q"}"#),
    ];
    for req in &good {
        let a = send(&server.http1(), &server, req).await;
        assert_eq!(a.status, 200, "{}: {}", req.path, a.body);
    }
    let before = server.queue_stats();
    assert_eq!((before.records, before.events), (4, 7));

    for (client, _) in clients(&server) {
        for (req, status) in bad_requests() {
            let a = send(&client, &server, &req).await;
            assert_eq!(
                a.status, status,
                "{} {} over {:?}: {}",
                req.method, req.path, a.version, a.body
            );
            assert_eq!(a.content_type.as_deref(), Some(JSON_UTF8));
            let now = server.queue_stats();
            assert_eq!(
                (now.records, now.events, now.bytes),
                (before.records, before.events, before.bytes),
                "after {} {} over {:?}",
                req.method,
                req.path,
                a.version
            );
        }
    }
    // The accepted ack id is still answerable, and new requests still work.
    let poll = Req::acked(ACK, CHANNEL).body(r#"{"acks":[0]}"#);
    expect_acks(&server.http2(), &server, &poll, json!({"0": true})).await;
    expect_both(&server, &good[0], 200, success()).await;
    assert_eq!(server.queue_stats().events, before.events + 4);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 8. Metrics count bad requests.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_bad_requests() {
    let (_dir, mut server) = dir_and_server().await;
    let req = Req::post(EVENT).body(r#"{"event":"x"}"#);
    expect(
        &server.http1(),
        &server,
        &req,
        401,
        hec("Token is required", 2),
    )
    .await;
    let req = Req::post(RAW)
        .auth(TOKEN)
        .header("Content-Encoding", "br")
        .body("x");
    expect(
        &server.http2(),
        &server,
        &req,
        415,
        hec("Unsupported Media Type", 415),
    )
    .await;
    expect(
        &server.http1(),
        &server,
        &Req::post("/nope"),
        404,
        not_found(),
    )
    .await;
    let metrics = server.metrics().await;
    for line in [
        r#"sluice_ingest_requests_total{code="2",endpoint="event"} 1"#,
        r#"sluice_ingest_requests_total{code="415",endpoint="raw"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"sluice_ingest_requests_total{code="404","#)),
        "{metrics}"
    );
    server.stop().await;
}
