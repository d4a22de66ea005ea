//! Splunk HEC status codes: the one table of codes, HTTP statuses and texts.

use serde::Serialize;

/// A HEC answer: HTTP status, HEC code and Splunk's text for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HecStatus {
    /// HTTP status code.
    pub http: u16,
    /// HEC `code` field (the HTTP status for answers outside Splunk's code table).
    pub code: u16,
    /// HEC `text` field, exactly as Splunk words it.
    pub text: &'static str,
}

macro_rules! hec_codes {
    ($($name:ident = ($code:expr, $http:expr, $text:expr);)*) => {
        $(
            #[doc = $text]
            pub const $name: HecStatus = HecStatus { http: $http, code: $code, text: $text };
        )*
        /// Every status in Splunk's code table, in code order.
        pub const TABLE: &[HecStatus] = &[$($name),*];
    };
}

hec_codes! {
    SUCCESS = (0, 200, "Success");
    TOKEN_DISABLED = (1, 403, "Token disabled");
    TOKEN_REQUIRED = (2, 401, "Token is required");
    INVALID_AUTHORIZATION = (3, 401, "Invalid authorization");
    INVALID_TOKEN = (4, 403, "Invalid token");
    NO_DATA = (5, 400, "No data");
    INVALID_DATA_FORMAT = (6, 400, "Invalid data format");
    INCORRECT_INDEX = (7, 400, "Incorrect index");
    INTERNAL_ERROR = (8, 500, "Internal server error");
    SERVER_BUSY = (9, 503, "Server is busy");
    CHANNEL_MISSING = (10, 400, "Data channel is missing");
    CHANNEL_INVALID = (11, 400, "Invalid data channel");
    EVENT_REQUIRED = (12, 400, "Event field is required");
    EVENT_BLANK = (13, 400, "Event field cannot be blank");
    ACK_DISABLED = (14, 400, "ACK is disabled");
    INDEXED_FIELDS = (15, 400, "Error in handling indexed fields");
    QUERY_AUTH_DISABLED = (16, 400, "Query string authorization is not enabled");
    HEALTHY = (17, 200, "HEC is healthy");
    UNHEALTHY_QUEUES_FULL = (18, 503, "HEC is unhealthy, queues are full");
    UNHEALTHY_ACK = (19, 503, "HEC is unhealthy, ack service unavailable");
    UNHEALTHY_QUEUES_ACK = (20, 503, "HEC is unhealthy, queues are full, ack service unavailable");
    INVALID_TOKEN_400 = (21, 400, "Invalid token");
    TOKEN_DISABLED_400 = (22, 400, "Token disabled");
    SHUTTING_DOWN = (23, 503, "Server is shutting down");
    QUEUE_NEAR_CAPACITY = (24, 200, "HEC queue is approaching its capacity limit");
    ACK_NEAR_CAPACITY = (25, 200, "HEC ACK is approaching its capacity limit");
    QUEUE_AT_CAPACITY = (26, 429, "HEC queue is at capacity and cannot process any more requests");
    ACK_AT_CAPACITY = (27, 429, "HEC ACK channel is at capacity and cannot process any more requests");
}

/// Unknown path (Splunk's own 404 body).
pub const NOT_FOUND: HecStatus = HecStatus {
    http: 404,
    code: 404,
    text: "The requested URL was not found on this server.",
};
/// Known path, wrong method.
pub const METHOD_NOT_ALLOWED: HecStatus = HecStatus {
    http: 405,
    code: 405,
    text: "Method Not Allowed",
};
/// The body did not arrive within `body_timeout`.
pub const REQUEST_TIMEOUT: HecStatus = HecStatus {
    http: 408,
    code: 408,
    text: "Request Timeout",
};
/// Body over `max_body_bytes`, or decoded body over `max_decoded_bytes`.
pub const PAYLOAD_TOO_LARGE: HecStatus = HecStatus {
    http: 413,
    code: 413,
    text: "Content too large",
};
/// `Content-Encoding` other than gzip or identity.
pub const UNSUPPORTED_ENCODING: HecStatus = HecStatus {
    http: 415,
    code: 415,
    text: "Unsupported Media Type",
};

/// A peer outside `server.allow_cidrs` (its connection is also shut;
/// Splunk's `acceptFrom` drops such connections without an answer).
pub const FORBIDDEN_PEER: HecStatus = HecStatus {
    http: 403,
    code: 403,
    text: "Forbidden",
};

/// Looks a code up in Splunk's table.
pub fn by_code(code: u16) -> Option<HecStatus> {
    TABLE.get(usize::from(code)).copied()
}

/// The JSON body HEC sends with every answer.
#[derive(Debug, Serialize)]
pub struct HecBody<'a> {
    /// Splunk's text for the code.
    pub text: &'a str,
    /// HEC code.
    pub code: u16,
    /// Index of the first bad event in a batch (code 6 and friends).
    #[serde(
        rename = "invalid-event-number",
        skip_serializing_if = "Option::is_none"
    )]
    pub invalid_event_number: Option<u64>,
    /// Ack id of the accepted request, for tokens with acknowledgements.
    #[serde(rename = "ackId", skip_serializing_if = "Option::is_none")]
    pub ack_id: Option<u64>,
}

impl HecStatus {
    /// The body for this status with no extra fields.
    pub fn body(&self) -> HecBody<'static> {
        HecBody {
            text: self.text,
            code: self.code,
            invalid_event_number: None,
            ack_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_code() {
        assert_eq!(TABLE.len(), 28);
        for (i, s) in TABLE.iter().enumerate() {
            assert_eq!(usize::from(s.code), i);
        }
        assert_eq!(by_code(9), Some(SERVER_BUSY));
        assert_eq!(by_code(28), None);
    }

    #[test]
    fn bodies_match_splunk() {
        let ok = serde_json::to_string(&SUCCESS.body()).unwrap();
        assert_eq!(ok, r#"{"text":"Success","code":0}"#);
        let bad = HecBody {
            invalid_event_number: Some(3),
            ..INVALID_DATA_FORMAT.body()
        };
        assert_eq!(
            serde_json::to_string(&bad).unwrap(),
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#
        );
        let acked = HecBody {
            ack_id: Some(0),
            ..SUCCESS.body()
        };
        assert_eq!(
            serde_json::to_string(&acked).unwrap(),
            r#"{"text":"Success","code":0,"ackId":0}"#
        );
    }
}
