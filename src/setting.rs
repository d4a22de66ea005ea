//! What every component's configuration shares, so components can own their
//! config types without depending on `config/` (which aggregates them): how
//! a setting that cannot be used is reported, and how a secret given as
//! `token` or `token_env` is read — once, in one place.

use crate::hec::TokenSecret;

/// A setting that cannot be used: its key (e.g. `outputs[0].urls`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct Invalid {
    /// The key, as written in the file.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    /// `key` is wrong because of `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Whether secrets are read while resolving. The queue commands never
/// authenticate anywhere, so they check where each secret comes from but do
/// not need the service's environment to hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Read every secret (`run`, `validate`).
    Read,
    /// Check that each is given once; leave the value empty.
    Skip,
}

/// A secret given either inline (`<prefix>token`) or by naming an
/// environment variable (`<prefix>token_env`): exactly one must be set, and
/// the value must be non-empty without spaces. `prefix` is the table's key
/// with its dot, e.g. `tokens[0].`.
pub fn secret(
    inline: Option<&TokenSecret>,
    env: Option<&str>,
    prefix: &str,
    secrets: Secrets,
) -> Result<TokenSecret, Invalid> {
    named_secret(inline, env, &format!("{prefix}token"), secrets)
}

/// [`secret`] under another name: `<key>` inline or `<key>_env`, e.g.
/// `server.metrics_password`.
pub fn named_secret(
    inline: Option<&TokenSecret>,
    env: Option<&str>,
    name: &str,
    secrets: Secrets,
) -> Result<TokenSecret, Invalid> {
    let key = |k: &str| format!("{name}{}", k.strip_prefix("token").unwrap_or(k));
    let (value, from) = match (inline, env) {
        (Some(_), Some(_)) => {
            return Err(Invalid::new(
                key("token_env"),
                format!("set {name} or {name}_env, not both"),
            ))
        }
        (None, None) => {
            return Err(Invalid::new(
                key("token"),
                format!("set {name} or {name}_env"),
            ))
        }
        (_, _) if secrets == Secrets::Skip => return Ok(TokenSecret::new(String::new())),
        (Some(v), None) => (v.expose().to_string(), key("token")),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) => (v.trim().to_string(), key("token_env")),
            Err(_) => {
                return Err(Invalid::new(
                    key("token_env"),
                    format!("environment variable {var} is not set"),
                ))
            }
        },
    };
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(Invalid::new(from, "must be non-empty without spaces"));
    }
    Ok(TokenSecret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_comes_from_exactly_one_place() {
        let inline = TokenSecret::new("abc".to_string());
        let read = Secrets::Read;
        assert!(secret(Some(&inline), None, "t.", read)
            .unwrap()
            .matches("abc"));
        let both = secret(Some(&inline), Some("X"), "t.", read).unwrap_err();
        assert_eq!(both.key, "t.token_env");
        assert_eq!(secret(None, None, "t.", read).unwrap_err().key, "t.token");
        let var = Some("SLUICE_TEST_NEVER_SET_42");
        let unset = secret(None, var, "outputs[1].", read).unwrap_err();
        assert_eq!(unset.key, "outputs[1].token_env");
        assert!(unset.message.contains("SLUICE_TEST_NEVER_SET_42"));
        // Skipped: the environment is not read, the shape still checked.
        assert!(secret(None, var, "t.", Secrets::Skip).is_ok());
        assert!(secret(None, None, "t.", Secrets::Skip).is_err());
        let blank = TokenSecret::new(" a b ".to_string());
        assert_eq!(
            secret(Some(&blank), None, "t.", read).unwrap_err().key,
            "t.token"
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            Invalid::new("server.listen", "bad").to_string(),
            "`server.listen`: bad"
        );
    }
}
