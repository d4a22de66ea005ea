//! Every HEC answer goes through here: status → HTTP response, counted once.

use crate::hec::ack::AckReply;
use crate::hec::codes::{HecBody, HecStatus};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// Splunk's content type for HEC answers.
pub const JSON_UTF8: &str = "application/json; charset=UTF-8";

/// An answer to a HEC request.
#[derive(Debug)]
pub struct Reply {
    /// Status, code and text.
    pub status: HecStatus,
    /// `invalid-event-number`, for a bad event in an `/event` batch.
    pub invalid_event_number: Option<u64>,
    /// `ackId`, for a token with acknowledgements.
    pub ack_id: Option<u64>,
    /// The `/ack` answer body, which replaces the status body.
    pub acks: Option<AckReply>,
    /// Close the connection after answering (shutdown drain).
    pub close: bool,
}

impl Reply {
    /// A plain status answer.
    pub fn status(status: HecStatus) -> Reply {
        Reply {
            status,
            invalid_event_number: None,
            ack_id: None,
            acks: None,
            close: false,
        }
    }

    /// An answer that also closes the connection.
    pub fn closing(status: HecStatus) -> Reply {
        Reply {
            close: true,
            ..Reply::status(status)
        }
    }

    /// The HTTP response.
    pub fn into_response(self) -> HttpResponse {
        let code =
            StatusCode::from_u16(self.status.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut builder = HttpResponse::build(code);
        builder.content_type(JSON_UTF8);
        if self.close {
            builder.force_close();
        }
        let body = match &self.acks {
            Some(acks) => serde_json::to_vec(acks),
            None => serde_json::to_vec(&HecBody {
                invalid_event_number: self.invalid_event_number,
                ack_id: self.ack_id,
                ..self.status.body()
            }),
        };
        builder.body(body.unwrap_or_default())
    }
}

impl From<HecStatus> for Reply {
    fn from(status: HecStatus) -> Reply {
        Reply::status(status)
    }
}
