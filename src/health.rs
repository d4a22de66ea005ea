//! `sluice health`: the check a load balancer makes, from the command line.
//! Like a balancer's check it does not verify the certificate unless given
//! the CA to verify it with.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The path HEC serves health on.
pub const HEALTH_PATH: &str = "/services/collector/health";

/// The default node to check.
pub const DEFAULT_URL: &str = "https://127.0.0.1:8088";

/// The check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The CA file is unreadable or not PEM.
    #[error("CA file {path}: {source}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The URL is not an http(s) URL.
    #[error("not an http(s) URL: {0}")]
    Url(String),
    /// No answer (connection, TLS or timeout).
    #[error("{url}: {source}")]
    Request {
        /// What was asked.
        url: String,
        /// Why it failed.
        source: reqwest::Error,
    },
}

/// What the node answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAnswer {
    /// The URL asked.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// The HEC `code`, when the body had one.
    pub code: Option<i64>,
    /// The HEC `text`, when the body had one.
    pub text: Option<String>,
}

impl HealthAnswer {
    /// Healthy means exactly what HEC says it means: 200 with code 17.
    pub fn healthy(&self) -> bool {
        self.status == 200 && self.code == Some(17)
    }
}

/// The health URL for a base URL: a URL without a path gets HEC's health path.
pub fn health_url(base: &str) -> Result<String, HealthError> {
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| HealthError::Url(base.to_string()))?;
    if rest.is_empty() {
        return Err(HealthError::Url(base.to_string()));
    }
    Ok(match rest.find('/') {
        Some(i) if rest[i..] != *"/" => base.to_string(),
        _ => format!("{}{HEALTH_PATH}", base.trim_end_matches('/')),
    })
}

/// Asks `url` (see [`health_url`]) once, within `timeout`.
pub async fn check(
    url: &str,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<HealthAnswer, HealthError> {
    let url = health_url(url)?;
    let builder = reqwest::Client::builder().timeout(timeout);
    let builder = match ca {
        Some(path) => {
            let ca_err = |source: Box<dyn std::error::Error + Send + Sync>| HealthError::Ca {
                path: path.to_path_buf(),
                source,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(Box::new(e)))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ca_err(Box::new(e)))?;
            builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert)
        }
        None => builder.danger_accept_invalid_certs(true),
    };
    let request_err = |source| HealthError::Request {
        url: url.clone(),
        source,
    };
    let client = builder.build().map_err(request_err)?;
    let resp = client.get(&url).send().await.map_err(request_err)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(request_err)?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    Ok(HealthAnswer {
        url,
        status,
        code: json.as_ref().and_then(|j| j.get("code")?.as_i64()),
        text: json.and_then(|j| Some(j.get("text")?.as_str()?.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_health_path() {
        let h = |u| health_url(u).unwrap();
        assert_eq!(
            h("https://127.0.0.1:8088"),
            "https://127.0.0.1:8088/services/collector/health"
        );
        assert_eq!(
            h("https://n:8088/"),
            "https://n:8088/services/collector/health"
        );
        assert_eq!(
            h("http://n/services/collector/health/1.0"),
            "http://n/services/collector/health/1.0"
        );
        assert!(health_url("127.0.0.1:8088").is_err());
        assert!(health_url("https://").is_err());
    }

    #[test]
    fn healthy_is_200_code_17_only() {
        let a = |status, code| HealthAnswer {
            url: String::new(),
            status,
            code,
            text: None,
        };
        assert!(a(200, Some(17)).healthy());
        assert!(!a(503, Some(23)).healthy());
        assert!(!a(200, None).healthy());
        assert!(!a(503, Some(17)).healthy());
    }
}
