//! HEC tokens: secrets that never print and compare in constant time.

use std::fmt;
use subtle::ConstantTimeEq;

/// A HEC token value. `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> TokenSecret {
        TokenSecret(value.into())
    }

    /// A new random token in Splunk's GUID form.
    pub fn generate() -> TokenSecret {
        TokenSecret(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Compares with a presented token without leaking where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// The secret itself, for the few places that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for TokenSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(TokenSecret)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl fmt::Display for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let t = TokenSecret::new("s3cret-value");
        assert!(!format!("{t:?} {t}").contains("s3cret"));
        assert!(t.matches("s3cret-value"));
        assert!(!t.matches("s3cret-valuf"));
        assert!(!t.matches("s3cret"));
    }

    #[test]
    fn generated_tokens_are_guids() {
        let t = TokenSecret::generate();
        assert!(super::super::channel::Channel::parse(t.expose()).is_some());
    }
}
