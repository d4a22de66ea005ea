//! HEC data channels: GUIDs, compared case-insensitively.

use std::fmt;
use uuid::Uuid;

/// A validated channel id (a GUID in its 8-4-4-4-12 form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(Uuid);

impl Channel {
    /// Parses a channel as Splunk accepts it: a hyphenated GUID in any letter case.
    pub fn parse(s: &str) -> Option<Channel> {
        let s = s.trim();
        if s.len() != 36 {
            return None;
        }
        Uuid::try_parse(s).ok().map(Channel)
    }

    /// A new random channel.
    pub fn random() -> Channel {
        Channel(Uuid::new_v4())
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_compare_case_insensitively() {
        let a = Channel::parse("0AA9A7A8-5B0E-4A7B-9C1D-2E3F4A5B6C7D").unwrap();
        let b = Channel::parse("0aa9a7a8-5b0e-4a7b-9c1d-2e3f4a5b6c7d").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0aa9a7a8-5b0e-4a7b-9c1d-2e3f4a5b6c7d");
    }

    #[test]
    fn rejects_non_guids() {
        for bad in [
            "",
            "abc",
            "0aa9a7a85b0e4a7b9c1d2e3f4a5b6c7d",
            "{0aa9a7a8-5b0e-4a7b-9c1d-2e3f4a5b6c7d}",
            "0aa9a7a8-5b0e-4a7b-9c1d-2e3f4a5b6c7z",
        ] {
            assert!(Channel::parse(bad).is_none(), "{bad}");
        }
    }
}
