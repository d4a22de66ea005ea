//! What a Splunk HEC answer to a batch means for the forwarding engine, as
//! one pure function over status, headers and body, so every answer Splunk
//! can give is pinned by a table test rather than found out in production.

use super::super::transport::{Answer, SendOutcome};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize, Default)]
struct HecAnswer {
    #[serde(default)]
    code: Option<i64>,
    #[serde(rename = "ackId", default)]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number", default)]
    invalid_event_number: Option<u64>,
}

/// Classifies Splunk's answer to one batch. `use_ack`: whether this output
/// waits for indexer acknowledgements.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8], use_ack: bool) -> Answer {
    let parsed: Option<HecAnswer> = serde_json::from_slice(body).ok();
    let hec = parsed.as_ref().is_some_and(|a| a.code.is_some());
    let answer = parsed.unwrap_or_default();
    let reason = || String::from_utf8_lossy(body).into_owned();
    let outcome = match (status, answer.code) {
        // A 200 that is not HEC's (a proxy's or maintenance page) says
        // nothing about the events: never count it as delivered.
        (200, _) if !hec => SendOutcome::Retry { after: None },
        (200, _) => match (use_ack, answer.ack_id) {
            (false, _) => SendOutcome::Delivered,
            (true, Some(id)) => SendOutcome::AckPending(id),
            (true, None) => SendOutcome::AckUnavailable,
        },
        (400, _) if answer.invalid_event_number.is_some() => SendOutcome::InvalidEvent {
            number: answer.invalid_event_number.unwrap_or_default(),
            reason: reason(),
        },
        // The token, in 400 form (21, 22), or query-string auth (16): the
        // events are fine, the credentials are not.
        (400, Some(16 | 21 | 22)) | (401 | 403, _) => SendOutcome::Unauthorized { status },
        // Our channel was not accepted (missing, or reset on the indexer):
        // the data is not at fault, so never split or dead-letter it.
        (400, Some(10 | 11)) => SendOutcome::Retry { after: None },
        (400 | 413, _) => SendOutcome::Rejected {
            status,
            reason: reason(),
        },
        // 429, 500, 503 and anything unexpected (404 from a wrong URL, a
        // proxy's 502): keep the data and try again.
        _ => SendOutcome::Retry {
            after: retry_after(headers),
        },
    };
    let detail = (status != 200).then(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(DETAIL_MAX)]);
        format!("HTTP {status}: {}", text.trim())
    });
    Answer {
        outcome,
        code: status.to_string(),
        detail,
    }
}

/// How much of a refusal's body the status page keeps.
const DETAIL_MAX: usize = 200;

/// `Retry-After` in seconds (Splunk and proxies do not send HTTP dates).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn outcome(status: u16, body: &str, use_ack: bool) -> SendOutcome {
        classify(status, &HeaderMap::new(), body.as_bytes(), use_ack).outcome
    }

    #[test]
    fn every_hec_answer_has_one_meaning() {
        let retry = SendOutcome::Retry { after: None };
        let rejected = |status: u16, body: &str| SendOutcome::Rejected {
            status,
            reason: body.to_string(),
        };
        let table: Vec<(u16, &str, bool, SendOutcome)> = vec![
            (
                200,
                r#"{"text":"Success","code":0}"#,
                false,
                SendOutcome::Delivered,
            ),
            (
                200,
                r#"{"text":"Success","code":0,"ackId":7}"#,
                false,
                SendOutcome::Delivered,
            ),
            (
                200,
                r#"{"text":"Success","code":0,"ackId":7}"#,
                true,
                SendOutcome::AckPending(7),
            ),
            (
                200,
                r#"{"text":"Success","code":0}"#,
                true,
                SendOutcome::AckUnavailable,
            ),
            (
                200,
                r#"{"text":"HEC queue is approaching its capacity limit","code":24,"ackId":3}"#,
                true,
                SendOutcome::AckPending(3),
            ),
            (200, "not json", true, retry.clone()),
            (200, "<html>maintenance</html>", false, retry.clone()),
            (200, r#"{"text":"Success"}"#, false, retry.clone()),
            (
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":4}"#,
                true,
                SendOutcome::InvalidEvent {
                    number: 4,
                    reason: r#"{"text":"Invalid data format","code":6,"invalid-event-number":4}"#
                        .into(),
                },
            ),
            (
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":0}"#,
                false,
                SendOutcome::InvalidEvent {
                    number: 0,
                    reason: r#"{"text":"Invalid data format","code":6,"invalid-event-number":0}"#
                        .into(),
                },
            ),
            (
                400,
                r#"{"text":"No data","code":5}"#,
                true,
                rejected(400, r#"{"text":"No data","code":5}"#),
            ),
            (
                400,
                r#"{"text":"Incorrect index","code":7,"invalid-event-number":1}"#,
                true,
                SendOutcome::InvalidEvent {
                    number: 1,
                    reason: r#"{"text":"Incorrect index","code":7,"invalid-event-number":1}"#
                        .into(),
                },
            ),
            (
                400,
                r#"{"text":"Event field is required","code":12}"#,
                true,
                rejected(400, r#"{"text":"Event field is required","code":12}"#),
            ),
            (
                400,
                r#"{"text":"Event field cannot be blank","code":13}"#,
                true,
                rejected(400, r#"{"text":"Event field cannot be blank","code":13}"#),
            ),
            (
                400,
                r#"{"text":"Error in handling indexed fields","code":15}"#,
                true,
                rejected(
                    400,
                    r#"{"text":"Error in handling indexed fields","code":15}"#,
                ),
            ),
            (
                400,
                r#"{"text":"Data channel is missing","code":10}"#,
                true,
                retry.clone(),
            ),
            (
                400,
                r#"{"text":"Invalid data channel","code":11}"#,
                true,
                retry.clone(),
            ),
            (
                400,
                r#"{"text":"Query string authorization is not enabled","code":16}"#,
                true,
                SendOutcome::Unauthorized { status: 400 },
            ),
            (
                400,
                r#"{"text":"Invalid token","code":21}"#,
                true,
                SendOutcome::Unauthorized { status: 400 },
            ),
            (
                400,
                r#"{"text":"Token disabled","code":22}"#,
                true,
                SendOutcome::Unauthorized { status: 400 },
            ),
            (
                400,
                "<html>bad request</html>",
                true,
                rejected(400, "<html>bad request</html>"),
            ),
            (
                401,
                r#"{"text":"Token is required","code":2}"#,
                true,
                SendOutcome::Unauthorized { status: 401 },
            ),
            (
                401,
                r#"{"text":"Invalid authorization","code":3}"#,
                true,
                SendOutcome::Unauthorized { status: 401 },
            ),
            (
                403,
                r#"{"text":"Invalid token","code":4}"#,
                true,
                SendOutcome::Unauthorized { status: 403 },
            ),
            (
                403,
                r#"{"text":"Token disabled","code":1}"#,
                true,
                SendOutcome::Unauthorized { status: 403 },
            ),
            (
                413,
                r#"{"text":"Content-Length of 9 too large (maximum is 8)","code":413}"#,
                true,
                rejected(
                    413,
                    r#"{"text":"Content-Length of 9 too large (maximum is 8)","code":413}"#,
                ),
            ),
            (
                429,
                r#"{"text":"HEC queue is at capacity and cannot process any more requests","code":26}"#,
                true,
                retry.clone(),
            ),
            (
                500,
                r#"{"text":"Internal server error","code":8}"#,
                true,
                retry.clone(),
            ),
            (
                503,
                r#"{"text":"Server is busy","code":9}"#,
                true,
                retry.clone(),
            ),
            (
                503,
                r#"{"text":"Server is shutting down","code":23}"#,
                true,
                retry.clone(),
            ),
            (
                503,
                r#"{"text":"HEC is unhealthy, queues are full","code":18}"#,
                true,
                retry.clone(),
            ),
            (
                404,
                r#"{"text":"The requested URL was not found on this server.","code":404}"#,
                true,
                retry.clone(),
            ),
            (502, "Bad Gateway", true, retry.clone()),
        ];
        for (status, body, use_ack, want) in table {
            assert_eq!(
                outcome(status, body, use_ack),
                want,
                "{status} {body} use_ack={use_ack}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_the_code_is_the_status() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 12 "));
        let a = classify(503, &h, br#"{"text":"Server is busy","code":9}"#, true);
        assert_eq!(
            a.outcome,
            SendOutcome::Retry {
                after: Some(Duration::from_secs(12))
            }
        );
        assert_eq!(a.code, "503");
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        assert_eq!(
            classify(429, &h, b"", true).outcome,
            SendOutcome::Retry { after: None }
        );
    }
}
