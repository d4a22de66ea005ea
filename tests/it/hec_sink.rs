//! The test HEC sink itself, checked against the real protocol over HTTP: if
//! the sink is not faithful, every forwarding test built on it proves nothing.

use crate::support::hec_sink::*;
use crate::support::{answer, gzip, healthy, hec, success, success_ack, ACK, EVENT, HEALTH, RAW};
use serde_json::{json, Value};
use sluice::hec::Channel;
use std::time::Duration;

/// An authorised POST to `path` on `channel` (None: no channel).
fn post(
    sink: &HecSink,
    c: &reqwest::Client,
    path: &str,
    channel: Option<&str>,
) -> reqwest::RequestBuilder {
    let b = c
        .post(format!("{}{path}", sink.url()))
        .header("Authorization", format!("Splunk {SINK_TOKEN}"));
    match channel {
        Some(ch) => b.header("X-Splunk-Request-Channel", ch),
        None => b,
    }
}

/// Sends `r`; the status and JSON body of the answer.
async fn reply(r: reqwest::RequestBuilder) -> (u16, Value) {
    answer(r.send().await.expect("send")).await
}

async fn send_event(sink: &HecSink, c: &reqwest::Client, ch: &str, body: &str) -> (u16, Value) {
    reply(post(sink, c, EVENT, Some(ch)).body(body.to_string())).await
}

async fn poll(sink: &HecSink, c: &reqwest::Client, ch: &str, ids: &[u64]) -> Value {
    let body = json!({ "acks": ids }).to_string();
    let (status, v) = reply(post(sink, c, ACK, Some(ch)).body(body)).await;
    assert_eq!(status, 200, "{v}");
    v
}

fn channel() -> String {
    Channel::random().to_string().to_uppercase()
}

/// A sink with default options, a client for it and a new channel.
async fn started() -> (HecSink, reqwest::Client, String) {
    let sink = HecSink::start(SinkOptions::default()).await;
    let c = sink.client();
    (sink, c, channel())
}

#[tokio::test]
async fn ack_ids_per_channel_forgotten_after_true() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let c = sink.client();
    let (a, b) = (channel(), channel());
    assert_eq!(
        send_event(&sink, &c, &a, r#"{"event":"a0"}"#).await,
        (200, success_ack(0))
    );
    assert_eq!(
        send_event(&sink, &c, &b, r#"{"event":"b0"}"#).await.1["ackId"],
        0
    );
    // The channel may also come in the query string.
    let url = format!("{}{EVENT}?channel={b}", sink.url());
    let r = c
        .post(url)
        .header("Authorization", format!("Splunk {SINK_TOKEN}"))
        .body(r#"{"event":"b1"}"#);
    assert_eq!(reply(r).await.1["ackId"], 1);

    // Id 1 exists only on channel b; unknown ids are false.
    assert_eq!(
        poll(&sink, &c, &a, &[0, 1, 9]).await,
        json!({"acks":{"0":true,"1":false,"9":false}})
    );
    // Forgotten after answering true once.
    assert_eq!(poll(&sink, &c, &a, &[0]).await, json!({"acks":{"0":false}}));
    // Channels compare case-insensitively.
    assert_eq!(
        poll(&sink, &c, &b.to_lowercase(), &[0, 1]).await,
        json!({"acks":{"0":true,"1":true}})
    );
    assert_eq!(sink.indexed().len(), 3);
    assert_eq!(sink.acknowledged().len(), 3);
    assert_eq!(sink.indexed()[2].ack_id, Some(1));
    assert_eq!(
        sink.indexed()[2].channel.as_deref(),
        Some(b.to_lowercase().as_str())
    );
}

#[tokio::test]
async fn event_bodies_gzip_arrays_and_every_event_path() {
    let (sink, c, ch) = started().await;
    let batch = r#"{"event":{"n":1},"time":"1700000000.5","host":"h1","source":"s1","sourcetype":"st1","index":"i1","fields":{"event_id":"e1","colo":["a","b"]}}
{"event":"two"}{"event":3,"time":1700000000123}"#;
    let r = post(&sink, &c, EVENT, Some(&ch))
        .header("Content-Encoding", "gzip")
        .body(gzip(batch.as_bytes()));
    assert_eq!(reply(r).await, (200, success_ack(0)));
    for path in ["/services/collector/event/1.0", "/services/collector"] {
        let r = post(&sink, &c, path, Some(&ch)).body(r#"[{"event":"arr1"}, {"event":"arr2"}]"#);
        assert_eq!(reply(r).await.0, 200, "{path}");
    }
    let got = sink.indexed();
    assert_eq!(got.len(), 7);
    let e = &got[0];
    assert_eq!((e.endpoint, e.time), (Endpoint::Event, Some(1700000000.5)));
    assert_eq!(e.host.as_deref(), Some("h1"));
    assert_eq!(
        (
            e.source.as_deref(),
            e.sourcetype.as_deref(),
            e.index.as_deref()
        ),
        (Some("s1"), Some("st1"), Some("i1"))
    );
    assert_eq!(e.event, json!({"n":1}));
    assert_eq!(e.event_id().as_deref(), Some("e1"));
    assert_eq!(e.fields["colo"], json!(["a", "b"]));
    // Metadata never carries over to the next object.
    assert_eq!((got[1].host.as_deref(), got[1].time), (None, None));
    assert_eq!(got[2].time, Some(1700000000.123));
    assert_eq!(got[3].event, json!("arr1"));
    assert_eq!(got[6].ack_id, Some(2));

    // gzip ack bodies, as Vector sends them.
    let r = post(&sink, &c, ACK, Some(&ch))
        .header("Content-Encoding", "gzip")
        .body(gzip(br#"{"acks":[0,1,2]}"#));
    assert_eq!(
        reply(r).await.1,
        json!({"acks":{"0":true,"1":true,"2":true}})
    );
    // No objects at all: code 5; bad gzip: code 6; deflate: 415.
    assert_eq!(
        send_event(&sink, &c, &ch, " [] ").await,
        (400, hec("No data", 5))
    );
    let r = post(&sink, &c, EVENT, Some(&ch))
        .header("Content-Encoding", "gzip")
        .body("not gzip");
    assert_eq!(reply(r).await.1["code"], 6);
    let r = post(&sink, &c, EVENT, Some(&ch))
        .header("Content-Encoding", "deflate")
        .body("x");
    assert_eq!(reply(r).await.0, 415);
    assert_eq!(sink.indexed().len(), 7);
}

#[tokio::test]
async fn invalid_event_number_indexes_the_prefix() {
    let (sink, c, ch) = started().await;
    let body = r#"{"event":"ok0"}{"event":"ok1"}{"event":null}{"event":"never"}"#;
    assert_eq!(
        send_event(&sink, &c, &ch, body).await,
        (
            400,
            json!({"text":"Invalid data format","code":6,"invalid-event-number":2})
        )
    );
    let body = r#"{"event":"ok2"}{"event":"  "}"#;
    assert_eq!(
        send_event(&sink, &c, &ch, body).await,
        (
            400,
            json!({"text":"Event field cannot be blank","code":13,"invalid-event-number":1})
        )
    );
    let events: Vec<Value> = sink.indexed().into_iter().map(|e| e.event).collect();
    assert_eq!(events, vec![json!("ok0"), json!("ok1"), json!("ok2")]);
    // No ack id covers a refused request, but Splunk said the prefix is indexed.
    assert!(sink.indexed().iter().all(|e| e.ack_id.is_none()));
    assert_eq!(sink.acknowledged().len(), 3);

    // A poison event: the same answer for content Splunk would otherwise take.
    sink.faults()
        .poison(|v| v["event"]["poison"] == json!(true));
    let batch: String = (0..5)
        .map(|i| json!({"event":{"i":i,"poison":i == 3}}).to_string())
        .collect();
    assert_eq!(
        send_event(&sink, &c, &ch, &batch).await,
        (
            400,
            json!({"text":"Invalid data format","code":6,"invalid-event-number":3})
        )
    );
    assert_eq!(sink.indexed().len(), 6);
    let tail = json!({"event":{"i":4}}).to_string();
    assert_eq!(
        send_event(&sink, &c, &ch, &tail).await,
        (200, success_ack(0))
    );
    sink.faults().clear();
    assert_eq!(
        send_event(
            &sink,
            &c,
            &ch,
            &json!({"event":{"poison":true}}).to_string()
        )
        .await
        .0,
        200
    );
    assert_eq!(sink.indexed().len(), 8);
}

#[tokio::test]
async fn auth_and_channel_are_checked_in_splunk_order() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let c = sink.client();
    let url = format!("{}{EVENT}", sink.url());
    let r = c.post(&url).body(r#"{"event":1}"#);
    assert_eq!(reply(r).await, (401, hec("Token is required", 2)));
    let r = c
        .post(&url)
        .header("Authorization", "Splunk wrong")
        .body(r#"{"event":1}"#);
    assert_eq!(reply(r).await, (403, hec("Invalid token", 4)));
    let r = c
        .post(&url)
        .header("Authorization", format!("Bearer {SINK_TOKEN}"))
        .body("{}");
    assert_eq!(reply(r).await, (401, hec("Invalid authorization", 3)));
    let r = post(&sink, &c, EVENT, None).body(r#"{"event":1}"#);
    assert_eq!(reply(r).await, (400, hec("Data channel is missing", 10)));
    let r = post(&sink, &c, ACK, Some("not-a-guid")).body(r#"{"acks":[0]}"#);
    assert_eq!(reply(r).await, (400, hec("Invalid data channel", 11)));
    let r = post(&sink, &c, RAW, None).body("line");
    assert_eq!(reply(r).await.1["code"], 10);
    assert!(sink.indexed().is_empty());
    assert_eq!(sink.count(EVENT, Some(401)), 2);
    assert_eq!(sink.count(EVENT, Some(403)), 1);
    assert_eq!(sink.count(EVENT, Some(400)), 1);
}

#[tokio::test]
async fn acks_off_answers_without_ack_id() {
    let sink = HecSink::start(SinkOptions {
        acks: false,
        ..SinkOptions::default()
    })
    .await;
    let c = sink.client();
    let r = post(&sink, &c, EVENT, None)
        .body(r#"{"event":"cloud"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"text":"Success","code":0}"#);
    let r = post(&sink, &c, RAW, None).body("l1\nl2");
    assert_eq!(reply(r).await, (200, success()));
    let r = post(&sink, &c, ACK, Some(&channel())).body(r#"{"acks":[0]}"#);
    assert_eq!(reply(r).await, (400, hec("ACK is disabled", 14)));
    assert_eq!(sink.acknowledged().len(), 3);
}

#[tokio::test]
async fn raw_lines_take_metadata_from_the_query() {
    let (sink, c, ch) = started().await;
    let url = format!(
        "{}{RAW}?channel={ch}&sourcetype=cf%3Anal&source=lp&host=edge&index=net",
        sink.url()
    );
    let body = "{\"event_id\":\"r1\",\"a\":1}\r\n\n   \nplain line\nlast";
    let r = c
        .post(url)
        .header("Authorization", format!("Splunk {SINK_TOKEN}"))
        .header("Content-Encoding", "gzip")
        .body(gzip(body.as_bytes()));
    assert_eq!(reply(r).await, (200, success_ack(0)));
    let got = sink.indexed();
    let lines: Vec<&str> = got.iter().map(|e| e.raw.as_str()).collect();
    assert_eq!(
        lines,
        vec![r#"{"event_id":"r1","a":1}"#, "plain line", "last"]
    );
    let e = &got[0];
    assert_eq!(e.endpoint, Endpoint::Raw);
    assert_eq!(
        (e.sourcetype.as_deref(), e.source.as_deref()),
        (Some("cf:nal"), Some("lp"))
    );
    assert_eq!(
        (e.host.as_deref(), e.index.as_deref()),
        (Some("edge"), Some("net"))
    );
    assert_eq!(e.event_id().as_deref(), Some("r1"));
    assert_eq!(count_by_key(&got).values().copied().max(), Some(1));
    let r = post(&sink, &c, RAW, Some(&ch)).body("\n \r\n");
    assert_eq!(reply(r).await.1["code"], 5);
}

#[tokio::test]
async fn scripted_answers_with_retry_after() {
    let (sink, c, ch) = started().await;
    let faults = sink.faults();
    faults.fail_next(Target::Data, 2, Fault::busy(7));
    for _ in 0..2 {
        let r = post(&sink, &c, EVENT, Some(&ch))
            .body(r#"{"event":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(answer(r).await, (503, hec("Server is busy", 9)));
    }
    // The fault was for data requests only, and is used up.
    assert_eq!(
        poll(&sink, &c, &ch, &[0]).await,
        json!({"acks":{"0":false}})
    );
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":1}"#).await.1["ackId"],
        0
    );

    faults.fail_next(Target::Data, 1, Fault::too_many(2));
    let r = post(&sink, &c, EVENT, Some(&ch))
        .body(r#"{"event":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(answer(r).await.0, 429);
    faults.fail_next(Target::Data, 1, Fault::internal());
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":1}"#).await,
        (500, hec("Internal server error", 8))
    );

    faults.fail_until_cleared(Target::All, Fault::revoked());
    for _ in 0..3 {
        assert_eq!(
            send_event(&sink, &c, &ch, r#"{"event":1}"#).await,
            (403, hec("Invalid token", 4))
        );
    }
    let r = post(&sink, &c, ACK, Some(&ch)).body(r#"{"acks":[0]}"#);
    assert_eq!(reply(r).await.0, 403);
    faults.clear();
    faults.fail_until_cleared(Target::Ack, Fault::unauthorized());
    let r = post(&sink, &c, ACK, Some(&ch)).body(r#"{"acks":[0]}"#);
    assert_eq!(reply(r).await, (401, hec("Invalid authorization", 3)));
    faults.clear();
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":2}"#).await.1["ackId"],
        1
    );
    assert_eq!(sink.indexed().len(), 2);
    assert_eq!(sink.count(EVENT, Some(503)), 2);
    assert_eq!(sink.count(EVENT, Some(403)), 3);
    assert_eq!(sink.count(EVENT, Some(200)), 2);
}

#[tokio::test]
async fn body_over_the_limit_answers_413() {
    let (sink, c, ch) = started().await;
    sink.faults().max_body_bytes(Some(100));
    let big = json!({"event":"x".repeat(200)}).to_string();
    assert_eq!(
        send_event(&sink, &c, &ch, &big).await,
        (413, hec("Content too large", 413))
    );
    // The limit is on the body as received: gzipped, the same event fits.
    let r = post(&sink, &c, EVENT, Some(&ch))
        .header("Content-Encoding", "gzip")
        .body(gzip(big.as_bytes()));
    assert_eq!(reply(r).await.0, 200);
    assert_eq!(sink.indexed().len(), 1);
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let (sink, c, ch) = started().await;
    sink.faults().fail_next(Target::Data, 1, Fault::Reset);
    let r = post(&sink, &c, EVENT, Some(&ch))
        .body(r#"{"event":"lost"}"#)
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    assert!(sink.indexed().is_empty());
    // After indexing: the events land, the client hears nothing, the id is spent.
    sink.faults()
        .fail_next(Target::Data, 1, Fault::ResetAfterIndexing);
    let r = post(&sink, &c, EVENT, Some(&ch))
        .body(r#"{"event":"landed"}"#)
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(sink.indexed().len(), 1);
    assert_eq!(sink.count(EVENT, None), 2);
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":"landed"}"#).await.1["ackId"],
        1
    );
    assert_eq!(count_by_key(&sink.indexed())[r#"{"event":"landed"}"#], 2);
    // Resets on /ack too.
    sink.faults().fail_next(Target::Ack, 1, Fault::Reset);
    let r = post(&sink, &c, ACK, Some(&ch))
        .body(r#"{"acks":[0]}"#)
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        poll(&sink, &c, &ch, &[0, 1]).await,
        json!({"acks":{"0":true,"1":true}})
    );
}

#[tokio::test]
async fn slow_replies_still_answer() {
    let (sink, c, ch) = started().await;
    sink.faults()
        .fail_next(Target::All, 2, Fault::Delay(Duration::from_millis(30)));
    assert_eq!(send_event(&sink, &c, &ch, r#"{"event":1}"#).await.0, 200);
    assert_eq!(poll(&sink, &c, &ch, &[0]).await, json!({"acks":{"0":true}}));
    assert_eq!(sink.requests().len(), 2);
}

#[tokio::test]
async fn lost_and_delayed_acks() {
    let (sink, c, ch) = started().await;
    let faults = sink.faults();
    faults.acks(AckMode::Lost);
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":"lost"}"#).await.1["ackId"],
        0
    );
    faults.acks(AckMode::Delayed(Duration::from_secs(3600)));
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":"hour"}"#).await.1["ackId"],
        1
    );
    faults.acks(AckMode::Delayed(Duration::from_millis(50)));
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":"soon"}"#).await.1["ackId"],
        2
    );
    faults.clear();
    for _ in 0..3 {
        assert_eq!(
            poll(&sink, &c, &ch, &[0, 1]).await,
            json!({"acks":{"0":false,"1":false}})
        );
    }
    let mut acked = false;
    for _ in 0..250 {
        if poll(&sink, &c, &ch, &[2]).await["acks"]["2"] == json!(true) {
            acked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(acked, "a delayed ack never turned true");
    assert_eq!(sink.indexed().len(), 3);
    let acknowledged: Vec<Value> = sink.acknowledged().into_iter().map(|e| e.event).collect();
    assert_eq!(acknowledged, vec![json!("soon")]);
    // Requests accepted after clear() are acknowledged at once.
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":"now"}"#).await.1["ackId"],
        3
    );
    assert_eq!(sink.acknowledged().len(), 2);
}

#[tokio::test]
async fn down_refuses_connections_and_up_serves_the_same_port() {
    let (sink, c, ch) = started().await;
    let url = sink.url();
    assert_eq!(send_event(&sink, &c, &ch, r#"{"event":1}"#).await.0, 200);
    sink.down().await;
    assert!(std::net::TcpStream::connect(sink.addr()).is_err());
    // A new client, so no pooled connection hides the refusal.
    let c = sink.client();
    let r = post(&sink, &c, EVENT, Some(&ch))
        .body(r#"{"event":2}"#)
        .send()
        .await;
    assert!(r.as_ref().is_err_and(|e| e.is_connect()), "{r:?}");
    sink.up().await;
    assert_eq!(sink.url(), url);
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":3}"#).await.1["ackId"],
        1
    );
    assert_eq!(
        poll(&sink, &c, &ch, &[0, 1]).await,
        json!({"acks":{"0":true,"1":true}})
    );
    assert_eq!(sink.indexed().len(), 2);
    sink.stop().await;
    assert!(std::net::TcpStream::connect(sink.addr()).is_err());
}

#[tokio::test]
async fn sticky_cookie_is_set_and_what_comes_back_is_recorded() {
    let opts = SinkOptions {
        sticky_cookie: Some("idx-a".into()),
        ..SinkOptions::default()
    };
    let sink = HecSink::start(opts).await;
    let c = sink.client();
    let ch = channel();
    let r = post(&sink, &c, EVENT, Some(&ch))
        .body(r#"{"event":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["set-cookie"], "SINKSTICKY=idx-a; Path=/");
    let cookie = "SINKSTICKY=idx-a; other=1";
    let r = post(&sink, &c, EVENT, Some(&ch))
        .header("Cookie", cookie)
        .body(r#"{"event":2}"#);
    assert_eq!(reply(r).await.0, 200);
    let r = post(&sink, &c, ACK, Some(&ch))
        .header("Cookie", cookie)
        .body(r#"{"acks":[0,1]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["set-cookie"], "SINKSTICKY=idx-a; Path=/");
    let reqs = sink.requests();
    let sticky: Vec<(&str, Option<&str>)> = reqs
        .iter()
        .map(|r| (r.path.as_str(), r.cookie(STICKY_COOKIE)))
        .collect();
    assert_eq!(
        sticky,
        vec![(EVENT, None), (EVENT, Some("idx-a")), (ACK, Some("idx-a"))]
    );
    assert_eq!(reqs[2].cookie("other"), Some("1"));
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let c = sink.client();
    let get = |path: &str| c.get(format!("{}{path}", sink.url())).send();
    assert_eq!(answer(get(HEALTH).await.unwrap()).await, (200, healthy()));
    sink.faults().healthy(false);
    assert_eq!(
        answer(get(HEALTH).await.unwrap()).await,
        (503, hec("HEC is unhealthy, queues are full", 18))
    );
    sink.faults().clear();
    sink.faults().fail_next(Target::Health, 1, Fault::busy(1));
    assert_eq!(
        answer(get("/services/collector/health/1.0").await.unwrap())
            .await
            .1["code"],
        9
    );
    assert_eq!(answer(get(HEALTH).await.unwrap()).await.1["code"], 17);
    assert_eq!(
        answer(get("/nope").await.unwrap()).await,
        (
            404,
            hec("The requested URL was not found on this server.", 404)
        )
    );
    assert_eq!(answer(get(EVENT).await.unwrap()).await.0, 405);
}

#[tokio::test]
async fn tls_sink_serves_https_with_its_own_ca() {
    let sink = HecSink::start(SinkOptions {
        tls: true,
        ..SinkOptions::default()
    })
    .await;
    assert!(sink.url().starts_with("https://127.0.0.1:"));
    assert!(sink.ca_pem().is_some_and(|p| p.is_file()));
    let c = sink.client();
    let ch = channel();
    let r = post(&sink, &c, EVENT, Some(&ch))
        .body(r#"{"event":"secure"}"#)
        .send()
        .await
        .unwrap();
    // Real Splunk HEC speaks HTTP/1.1 only, even when the client offers h2.
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(answer(r).await.1["ackId"], 0);
    // A client that does not trust the CA is refused by TLS.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(post(&sink, &plain, EVENT, Some(&ch))
        .body("{}")
        .send()
        .await
        .is_err());
    // Reset and down/up work over TLS as well.
    sink.faults().fail_next(Target::Data, 1, Fault::Reset);
    let r = post(&sink, &c, EVENT, Some(&ch))
        .body(r#"{"event":1}"#)
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    sink.down().await;
    assert!(std::net::TcpStream::connect(sink.addr()).is_err());
    sink.up().await;
    // A new client: the old one's pooled connection died with the listener.
    let c = sink.client();
    assert_eq!(
        send_event(&sink, &c, &ch, r#"{"event":"again"}"#).await.1["ackId"],
        1
    );
    assert_eq!(sink.indexed().len(), 2);
}
