//! `[[outputs]]` with `type = "s3"`: the keys as written, their defaults,
//! and their resolution, credentials read once.

use super::super::batch::Compression;
use super::super::routing::{EventsRoute, Routing};
use crate::hec::TokenSecret;
use crate::rollup::config::RollupSettings;
use crate::setting::{Invalid, Secrets};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `max_object_bytes` default.
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;
/// `max_object_age` default.
pub const MAX_OBJECT_AGE: Duration = Duration::from_secs(60);
/// The smallest `max_object_bytes`.
const MIN_OBJECT_BYTES: u64 = 1 << 10;

/// One `type = "s3"` output as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Name used in metrics, logs and release markers.
    pub name: String,
    /// The bucket.
    #[serde(default)]
    pub bucket: String,
    /// Key prefix (no leading or trailing `/` needed).
    #[serde(default)]
    pub prefix: String,
    /// `https://<account>.r2.cloudflarestorage.com`, MinIO's URL…; unset: AWS.
    pub endpoint: Option<String>,
    /// The region (`auto` for R2; default `auto` with an endpoint).
    pub region: Option<String>,
    /// Environment variable holding the access key id.
    pub access_key_id_env: Option<String>,
    /// Environment variable holding the secret access key.
    pub secret_access_key_env: Option<String>,
    /// An AWS shared credentials file (`[default]` profile).
    pub credentials_file: Option<PathBuf>,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// `false` (default): lines exactly as received; `true`: enriched HEC JSON.
    #[serde(default)]
    pub enrich: bool,
    /// Close an object at this size (bytes as stored).
    pub max_object_bytes: Option<u64>,
    /// Close an object this long after it was opened.
    #[serde(default, with = "humantime_serde")]
    pub max_object_age: Option<Duration>,
    /// Which events go: `all` (default), `drops`, `none`.
    #[serde(default)]
    pub events: EventsRoute,
    /// Whether each record's rollups go, as metric events.
    #[serde(default)]
    pub rollups: bool,
}

/// A resolved `s3` output.
#[derive(Clone)]
pub struct S3Output {
    /// Its name.
    pub name: String,
    /// The bucket.
    pub bucket: String,
    /// Key prefix, without surrounding `/`.
    pub prefix: String,
    /// Endpoint URL (path-style requests); `None`: AWS.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key_id: TokenSecret,
    /// Secret access key.
    pub secret_access_key: TokenSecret,
    /// Object compression.
    pub compression: Compression,
    /// Enrich samples (else lines as received).
    pub enrich: bool,
    /// Object size cap.
    pub max_object_bytes: u64,
    /// Object age cap.
    pub max_object_age: Duration,
    /// Which events, and whether rollups.
    pub routing: Routing,
}

impl std::fmt::Debug for S3Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Output")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("compression", &self.compression)
            .field("enrich", &self.enrich)
            .field("max_object_bytes", &self.max_object_bytes)
            .field("max_object_age", &self.max_object_age)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// Applies defaults, checks values and reads the credentials; `key` is
    /// the table's key (`outputs[0]`).
    pub fn resolve(
        &self,
        key: &str,
        secrets: Secrets,
        rollup: &Arc<RollupSettings>,
    ) -> Result<S3Output, Invalid> {
        let k = |name: &str| format!("{key}.{name}");
        if !valid_bucket(&self.bucket) {
            return Err(Invalid::new(
                k("bucket"),
                "a bucket name is required (3 to 63 characters: a-z, 0-9, . and -)",
            ));
        }
        let endpoint = match &self.endpoint {
            None => None,
            Some(e) => {
                let parsed = reqwest::Url::parse(e).ok().filter(|u| u.host().is_some());
                match parsed.as_ref().map(reqwest::Url::scheme) {
                    Some("https") => {}
                    Some("http") => {
                        tracing::warn!(output = %self.name, endpoint = %e, "s3 endpoint is plain http: credentials and data travel unencrypted")
                    }
                    _ => {
                        return Err(Invalid::new(
                            k("endpoint"),
                            "must be an http:// or https:// URL with a host",
                        ))
                    }
                }
                // As parsed: a scheme written `HTTP://` is `http://` from here on.
                parsed.map(|u| u.as_str().trim_end_matches('/').to_string())
            }
        };
        let prefix = self.prefix.trim_matches('/');
        if let Err(why) = valid_prefix(prefix) {
            return Err(Invalid::new(k("prefix"), why));
        }
        let region = match (&self.region, &endpoint) {
            (Some(r), _) if !r.trim().is_empty() => r.clone(),
            (_, Some(_)) => "auto".to_string(),
            _ => {
                return Err(Invalid::new(
                    k("region"),
                    "required without an endpoint (AWS)",
                ))
            }
        };
        let (access_key_id, secret_access_key) = self.credentials(key, secrets)?;
        let max_object_bytes = self.max_object_bytes.unwrap_or(MAX_OBJECT_BYTES);
        if max_object_bytes < MIN_OBJECT_BYTES {
            return Err(Invalid::new(k("max_object_bytes"), "must be at least 1024"));
        }
        let max_object_age = self.max_object_age.unwrap_or(MAX_OBJECT_AGE);
        if max_object_age < Duration::from_secs(1) {
            return Err(Invalid::new(k("max_object_age"), "must be at least 1s"));
        }
        Ok(S3Output {
            name: self.name.clone(),
            bucket: self.bucket.clone(),
            prefix: prefix.to_string(),
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            compression: self.compression,
            enrich: self.enrich,
            max_object_bytes,
            max_object_age,
            routing: Routing::resolve(key, self.events, self.rollups, rollup)?,
        })
    }

    /// The key pair from the environment or from the credentials file
    /// (exactly one of the two ways).
    fn credentials(
        &self,
        key: &str,
        secrets: Secrets,
    ) -> Result<(TokenSecret, TokenSecret), Invalid> {
        let k = |name: &str| format!("{key}.{name}");
        let env = (&self.access_key_id_env, &self.secret_access_key_env);
        let pair = match (env, &self.credentials_file) {
            ((Some(id), Some(secret)), None) => {
                if secrets == Secrets::Skip {
                    return Ok((TokenSecret::new(""), TokenSecret::new("")));
                }
                let read = |var: &str, name: &str| {
                    std::env::var(var)
                        .ok()
                        .filter(|v| !v.trim().is_empty())
                        .ok_or_else(|| {
                            Invalid::new(k(name), format!("environment variable {var} is not set"))
                        })
                };
                (
                    read(id, "access_key_id_env")?,
                    read(secret, "secret_access_key_env")?,
                )
            }
            ((None, None), Some(path)) => {
                if secrets == Secrets::Skip {
                    return Ok((TokenSecret::new(""), TokenSecret::new("")));
                }
                read_credentials_file(path).map_err(|m| Invalid::new(k("credentials_file"), m))?
            }
            ((None, None), None) => {
                return Err(Invalid::new(
                    k("access_key_id_env"),
                    "credentials are required: access_key_id_env and secret_access_key_env, or credentials_file",
                ))
            }
            ((Some(_), None), None) | ((None, Some(_)), None) => {
                return Err(Invalid::new(
                    k("secret_access_key_env"),
                    "access_key_id_env and secret_access_key_env go together",
                ))
            }
            _ => {
                return Err(Invalid::new(
                    k("credentials_file"),
                    "give either the two *_env keys or credentials_file, not both",
                ))
            }
        };
        Ok((TokenSecret::new(&pair.0), TokenSecret::new(&pair.1)))
    }
}

/// Longest prefix: keys stay well under S3's 1,024 bytes.
const MAX_PREFIX_BYTES: usize = 512;

/// A prefix is written into keys as it is: characters the client would
/// percent-encode, empty segments (which it would drop) and `.`/`..` would
/// make the key written differ from the key stored and logged. Allowed are
/// the characters S3 calls safe plus `=` and `+,` (its other "special
/// handling" characters, such as space, `:` and `&`, are refused too: lake
/// engines and shells trip on them).
fn valid_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.len() > MAX_PREFIX_BYTES {
        return Err("must be at most 512 bytes");
    }
    if prefix.is_empty() {
        return Ok(());
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.=!'()+,".contains(c);
    for segment in prefix.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err("segments between / must not be empty, . or ..");
        }
        if !segment.chars().all(safe) {
            return Err("may hold only a-z, A-Z, 0-9, / and -_.=!'()+,");
        }
    }
    Ok(())
}

/// S3's bucket naming rule (the part that matters for a path-style URL).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// `aws_access_key_id` and `aws_secret_access_key` of the `[default]`
/// profile (or of lines before any profile) of an AWS credentials file.
fn read_credentials_file(path: &Path) -> Result<(String, String), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (mut id, mut secret) = (None, None);
    let mut in_default = true;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_default = section.trim() == "default";
            continue;
        }
        if !in_default {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => Err(format!(
            "{} has no aws_access_key_id and aws_secret_access_key in [default]",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml: &str) -> Result<S3Output, String> {
        let c: S3Config = toml::from_str(toml).map_err(|e| e.to_string())?;
        c.resolve(
            "outputs[0]",
            Secrets::Read,
            &Arc::new(RollupSettings::default()),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_credentials_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            "[other]\naws_access_key_id = NO\n[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s3cr3t\n",
        )
        .unwrap();
        let o = resolve(&format!(
            "name = \"r2\"\nbucket = \"nal-archive\"\nprefix = \"/cloudflare/nal/\"\nendpoint = \"https://acct.r2.cloudflarestorage.com/\"\ncredentials_file = {:?}\n",
            creds.display().to_string()
        ))
        .unwrap();
        assert_eq!(o.region, "auto");
        assert_eq!(o.prefix, "cloudflare/nal");
        assert_eq!(
            o.endpoint.as_deref(),
            Some("https://acct.r2.cloudflarestorage.com")
        );
        assert_eq!(o.access_key_id.expose(), "AKIDEXAMPLE");
        assert_eq!(o.secret_access_key.expose(), "s3cr3t");
        assert_eq!(o.compression, Compression::Gzip);
        assert!(!o.enrich);
        assert_eq!(
            (o.max_object_bytes, o.max_object_age),
            (MAX_OBJECT_BYTES, MAX_OBJECT_AGE)
        );
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }

    #[test]
    fn errors_name_the_key() {
        std::env::set_var("SLUICE_TEST_S3_ID", "id");
        let creds = "access_key_id_env = \"SLUICE_TEST_S3_ID\"\nsecret_access_key_env = \"SLUICE_TEST_S3_ID\"\n";
        for (toml, needle) in [
            (format!("name=\"s\"\n{creds}"), "outputs[0].bucket"),
            (format!("name=\"s\"\nbucket=\"B\"\n{creds}"), "outputs[0].bucket"),
            (format!("name=\"s\"\nbucket=\"b-1\"\n{creds}"), "outputs[0].region"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nendpoint=\"ftp://x\"\n{creds}"), "outputs[0].endpoint"),
            ("name=\"s\"\nbucket=\"b-1\"\nregion=\"eu-west-1\"\n".to_string(), "outputs[0].access_key_id_env"),
            ("name=\"s\"\nbucket=\"b-1\"\nregion=\"eu-west-1\"\naccess_key_id_env=\"SLUICE_TEST_S3_ID\"\n".to_string(), "outputs[0].secret_access_key_env"),
            ("name=\"s\"\nbucket=\"b-1\"\nregion=\"eu-west-1\"\naccess_key_id_env=\"SLUICE_TEST_S3_NONE\"\nsecret_access_key_env=\"SLUICE_TEST_S3_NONE\"\n".to_string(), "SLUICE_TEST_S3_NONE is not set"),
            ("name=\"s\"\nbucket=\"b-1\"\nregion=\"eu-west-1\"\ncredentials_file=\"/nonexistent/creds\"\n".to_string(), "/nonexistent/creds"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nregion=\"r\"\nmax_object_bytes=10\n{creds}"), "outputs[0].max_object_bytes"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nregion=\"r\"\nevents=\"none\"\n{creds}"), "outputs[0].events"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nregion=\"r\"\nurls=[]\n{creds}"), "urls"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nregion=\"r\"\nprefix=\"a//b\"\n{creds}"), "outputs[0].prefix"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nregion=\"r\"\nprefix=\"a/../b\"\n{creds}"), "outputs[0].prefix"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nregion=\"r\"\nprefix=\"nal~archive\"\n{creds}"), "outputs[0].prefix"),
            (format!("name=\"s\"\nbucket=\"b-1\"\nregion=\"r\"\nprefix=\"{}\"\n{creds}", "a".repeat(513)), "outputs[0].prefix"),
        ] {
            let e = resolve(&toml).unwrap_err();
            assert!(e.contains(needle), "{needle} not in {e}");
        }
        let ok = resolve(&format!(
            "name=\"s\"\nbucket=\"b-1\"\nregion=\"eu-west-1\"\n{creds}"
        ))
        .unwrap();
        assert_eq!(ok.endpoint, None);
        let upper = resolve(&format!(
            "name=\"s\"\nbucket=\"b-1\"\nendpoint=\"HTTP://MinIO:9000/\"\nprefix=\"cloudflare/nal=x/v1.0\"\n{creds}"
        ))
        .unwrap();
        assert_eq!(upper.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(upper.prefix, "cloudflare/nal=x/v1.0");
    }
}
