//! Who is calling: `?token=` (opt-in per token), `Authorization: Splunk <token>`
//! or Basic with the token as password, in Splunk's check order.

use crate::config::Token;
use crate::hec::codes::{self, HecStatus};
use crate::hec::TokenSecret;
use base64::Engine;

/// Finds the calling token, or the answer Splunk gives.
pub fn authenticate<'t, T: AsRef<Token>>(
    tokens: &'t [T],
    authorization: Option<&str>,
    query_token: Option<&str>,
) -> Result<&'t T, HecStatus> {
    if let Some(q) = query_token {
        // Splunk answers 16 for a query token unless query auth is on for it,
        // even when a valid header is present too.
        return match find(tokens, q) {
            Some(t) if t.as_ref().config.allow_query_token => enabled(t),
            _ => Err(codes::QUERY_AUTH_DISABLED),
        };
    }
    let header = authorization.ok_or(codes::TOKEN_REQUIRED)?.trim();
    let presented = presented_token(header).ok_or(codes::INVALID_AUTHORIZATION)?;
    let token = find(tokens, &presented).ok_or(codes::INVALID_TOKEN)?;
    enabled(token)
}

fn enabled<T: AsRef<Token>>(t: &T) -> Result<&T, HecStatus> {
    if t.as_ref().config.disabled {
        Err(codes::TOKEN_DISABLED)
    } else {
        Ok(t)
    }
}

/// Compares against every token so timing does not reveal which one matched.
fn find<'t, T: AsRef<Token>>(tokens: &'t [T], presented: &str) -> Option<&'t T> {
    let mut found = None;
    for t in tokens {
        if t.as_ref().secret.matches(presented) && found.is_none() {
            found = Some(t);
        }
    }
    found
}

/// The token inside an `Authorization` header, for the schemes HEC accepts.
fn presented_token(header: &str) -> Option<String> {
    let (scheme, rest) = header.split_once(char::is_whitespace)?;
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("splunk") {
        return Some(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

/// Basic auth on the metrics listener (`server.metrics_user`,
/// `metrics_password`): Prometheus's `basic_auth`.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    user: TokenSecret,
    password: TokenSecret,
}

impl BasicAuth {
    /// Requires `user` and `password`.
    pub fn new(user: &str, password: TokenSecret) -> BasicAuth {
        BasicAuth {
            user: TokenSecret::new(user),
            password,
        }
    }

    /// Whether an `Authorization` header carries the user and password;
    /// both are compared in constant time, each in full.
    pub fn permits(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, rest)) = authorization.and_then(|h| h.trim().split_once(' ')) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        let user_ok = self.user.matches(user);
        let password_ok = self.password.matches(password);
        user_ok & password_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AckMode, TokenConfig};
    use crate::hec::TokenSecret;

    fn token(name: &str, value: &str, query: bool, disabled: bool) -> Token {
        Token {
            config: TokenConfig {
                name: name.into(),
                token: Some(TokenSecret::new(value)),
                token_env: None,
                index: None,
                sourcetype: None,
                source: None,
                ack: AckMode::None,
                ack_max: None,
                allow_query_token: query,
                allowed_indexes: vec![],
                disabled,
                final_pass_system: None,
            },
            secret: TokenSecret::new(value),
        }
    }

    fn code(r: Result<&Token, HecStatus>) -> Result<String, u16> {
        r.map(|t| t.config.name.clone()).map_err(|s| s.code)
    }

    #[test]
    fn splunk_check_order() {
        let tokens = [
            token("a", "aaa", false, false),
            token("q", "qqq", true, false),
            token("off", "ooo", false, true),
        ];
        let t = &tokens[..];
        assert_eq!(
            code(authenticate(t, Some("Splunk aaa"), None)),
            Ok("a".into())
        );
        assert_eq!(
            code(authenticate(t, Some("splunk   aaa "), None)),
            Ok("a".into())
        );
        assert_eq!(code(authenticate(t, None, None)), Err(2));
        assert_eq!(code(authenticate(t, Some("Bearer aaa"), None)), Err(3));
        assert_eq!(code(authenticate(t, Some("Splunk"), None)), Err(3));
        assert_eq!(code(authenticate(t, Some("Splunk nope"), None)), Err(4));
        assert_eq!(code(authenticate(t, Some("Splunk ooo"), None)), Err(1));
        assert_eq!(
            code(authenticate(t, Some("Splunk aaa"), Some("aaa"))),
            Err(16)
        );
        assert_eq!(code(authenticate(t, None, Some("zzz"))), Err(16));
        assert_eq!(code(authenticate(t, None, Some("qqq"))), Ok("q".into()));
        // Basic with the token as password (user ignored).
        let basic = base64::engine::general_purpose::STANDARD.encode("x:aaa");
        assert_eq!(
            code(authenticate(t, Some(&format!("Basic {basic}")), None)),
            Ok("a".into())
        );
        assert_eq!(code(authenticate(t, Some("Basic !!!"), None)), Err(3));
    }
}

#[cfg(test)]
mod basic_tests {
    use super::*;

    #[test]
    fn basic_auth_needs_both_user_and_password() {
        let auth = BasicAuth::new("prometheus", TokenSecret::new("s3cret"));
        let b = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(auth.permits(Some(&b("prometheus:s3cret"))));
        assert!(auth.permits(Some(&format!("basic  {}", &b("prometheus:s3cret")[6..]))));
        assert!(!auth.permits(Some(&b("prometheus:wrong"))));
        assert!(!auth.permits(Some(&b("other:s3cret"))));
        assert!(!auth.permits(Some(&b("prometheus"))));
        assert!(!auth.permits(Some("Bearer s3cret")));
        assert!(!auth.permits(Some("Basic !!!")));
        assert!(!auth.permits(None));
    }
}
