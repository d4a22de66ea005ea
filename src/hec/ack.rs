//! Ack request and reply bodies of `/services/collector/ack`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `{"acks":[0,1,2]}` as clients send it.
#[derive(Debug, Deserialize)]
pub struct AckRequest {
    /// Ack ids to query.
    pub acks: Vec<u64>,
}

/// `{"acks":{"0":true,"1":false}}` as Splunk answers.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct AckReply {
    /// Status per queried id, keyed by the id as a string.
    pub acks: BTreeMap<String, bool>,
}

impl AckRequest {
    /// Parses a (decoded) ack request body.
    pub fn parse(body: &[u8]) -> Result<AckRequest, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

impl AckReply {
    /// Builds a reply from (id, acknowledged) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, bool)>) -> AckReply {
        AckReply {
            acks: pairs
                .into_iter()
                .map(|(id, ok)| (id.to_string(), ok))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let req = AckRequest::parse(br#"{"acks":[0,2]}"#).unwrap();
        assert_eq!(req.acks, vec![0, 2]);
        let reply = AckReply::from_pairs([(0, true), (2, false)]);
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"acks":{"0":true,"2":false}}"#
        );
        assert!(AckRequest::parse(b"{\"acks\":\"x\"}").is_err());
    }
}
