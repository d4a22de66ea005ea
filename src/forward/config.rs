//! `[[outputs]]`: the list of outputs, each a table whose `type` picks the
//! output type; each type's keys live beside its code (`splunk/config.rs`,
//! `file/config.rs`). Resolved once into [`Output`]s.

use super::context::EngineSettings;
use super::file::config::{FileConfig, FileOutput};
use super::s3::config::{S3Config, S3Output};
use super::splunk::config::{SplunkConfig, SplunkOutput};
use crate::rollup::config::RollupSettings;
use crate::setting::{Invalid, Secrets};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

pub use super::batch::Compression;

/// One `[[outputs]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OutputConfig {
    /// Splunk HEC indexers.
    Splunk(Box<SplunkConfig>),
    /// NDJSON archive files.
    File(FileConfig),
    /// NDJSON objects in an S3-compatible bucket.
    S3(S3Config),
}

/// A resolved output.
#[derive(Debug, Clone)]
pub enum Output {
    /// Splunk HEC.
    Splunk(SplunkOutput),
    /// NDJSON files.
    File(FileOutput),
    /// S3-compatible objects.
    S3(S3Output),
}

impl OutputConfig {
    fn name(&self) -> &str {
        match self {
            OutputConfig::Splunk(s) => &s.name,
            OutputConfig::File(f) => &f.name,
            OutputConfig::S3(o) => &o.name,
        }
    }
}

impl Output {
    /// How the engine drives it (`None`: the `s3` output, which has a loop
    /// of its own).
    pub fn engine(&self) -> Option<&EngineSettings> {
        match self {
            Output::Splunk(s) => Some(&s.engine),
            Output::File(f) => Some(&f.engine),
            Output::S3(_) => None,
        }
    }

    /// Which events it takes, and whether rollups.
    pub fn routing(&self) -> &super::routing::Routing {
        match self {
            Output::Splunk(s) => &s.engine.routing,
            Output::File(f) => &f.engine.routing,
            Output::S3(o) => &o.routing,
        }
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        match self {
            Output::Splunk(s) => &s.engine.name,
            Output::File(f) => &f.engine.name,
            Output::S3(o) => &o.name,
        }
    }
}

/// `build_threads` default: one builder per core.
pub fn default_build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `build_threads` as set (above 0), else the default.
pub(super) fn build_threads(key: &str, set: Option<usize>) -> Result<usize, Invalid> {
    match set {
        Some(0) => Err(Invalid::new(key, "must be above 0")),
        Some(n) => Ok(n),
        None => Ok(default_build_threads()),
    }
}

/// A count or size that must be above 0.
pub(super) fn positive<T: PartialEq + Default>(key: &str, v: T) -> Result<T, Invalid> {
    if v == T::default() {
        Err(Invalid::new(key, "must be above 0"))
    } else {
        Ok(v)
    }
}

/// Resolves every output; with none configured, the embedded default is a
/// file output under the data dir, so Sluice still does the whole job.
pub fn resolve_outputs(
    configs: &[OutputConfig],
    data_dir: &Path,
    secrets: Secrets,
    rollup: &Arc<RollupSettings>,
) -> Result<Vec<Output>, Invalid> {
    if configs.is_empty() {
        let archive = FileConfig::embedded_default().resolve("outputs[0]", data_dir, rollup)?;
        return Ok(vec![Output::File(archive)]);
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let key = format!("outputs[{i}]");
        if c.name().trim().is_empty() {
            return Err(Invalid::new(format!("{key}.name"), "must not be empty"));
        }
        if !names.insert(c.name()) {
            return Err(Invalid::new(
                format!("{key}.name"),
                format!("duplicate name {:?}", c.name()),
            ));
        }
        out.push(match c {
            OutputConfig::Splunk(s) => Output::Splunk(s.resolve(&key, secrets, rollup)?),
            OutputConfig::File(f) => Output::File(f.resolve(&key, data_dir, rollup)?),
            OutputConfig::S3(o) => {
                let o = o.resolve(&key, secrets, rollup)?;
                // Keys name the node and the records, not the output: two
                // outputs writing one place would overwrite each other.
                let same = out.iter().find_map(|e| match e {
                    Output::S3(e)
                        if (&e.endpoint, &e.bucket, &e.prefix)
                            == (&o.endpoint, &o.bucket, &o.prefix) =>
                    {
                        Some(e.name.clone())
                    }
                    _ => None,
                });
                if let Some(other) = same {
                    return Err(Invalid::new(
                        format!("{key}.prefix"),
                        format!("output {other:?} writes to the same bucket and prefix; their objects' keys would collide"),
                    ));
                }
                Output::S3(o)
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Deserialize)]
    struct Outputs {
        #[serde(default)]
        outputs: Vec<OutputConfig>,
    }

    fn outputs(toml: &str) -> Result<Vec<Output>, String> {
        let c: Outputs = toml::from_str(toml).map_err(|e| e.to_string())?;
        resolve_outputs(
            &c.outputs,
            Path::new("data"),
            Secrets::Read,
            &Arc::new(RollupSettings::default()),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn default_is_a_file_archive() {
        let o = outputs("").unwrap();
        assert!(matches!(&o[..], [Output::File(f)] if f.path == Path::new("data/archive")));
        assert_eq!(o[0].name(), "archive");
    }

    #[test]
    fn splunk_defaults_and_durations() {
        let o = outputs(
            "[[outputs]]\nname=\"splunk\"\ntype=\"splunk\"\nurls=[\"https://idx1:8088/\"]\ntoken=\"t\"\nlinger=\"1s\"\nbuild_threads=3\n",
        )
        .unwrap();
        let Output::Splunk(s) = &o[0] else {
            panic!("splunk")
        };
        assert_eq!(s.urls, vec!["https://idx1:8088".to_string()]);
        let e = &s.engine;
        assert_eq!(e.linger, Duration::from_secs(1));
        assert_eq!(e.ack_timeout, Duration::from_secs(300));
        assert_eq!(
            (
                e.limits.max_events,
                e.limits.max_compressed_bytes,
                e.concurrency,
                e.build_threads
            ),
            (10_000, 1_000_000, 4, 3)
        );
        assert!(s.use_ack);
        assert!(!format!("{s:?}").contains("\"t\""));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\ntoken=\"t\"\n", "outputs[0].urls"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"idx1:8088\"]\ntoken=\"t\"\n", "outputs[0].urls[0]"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"https://i\"]\n", "outputs[0].token"),
            ("[[outputs]]\nname=\"f\"\ntype=\"file\"\nurls=[\"https://i\"]\n", "urls"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"https://i\"]\ntoken=\"t\"\npath=\"x\"\n", "path"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"https://i\"]\ntoken=\"t\"\nlinger=\"soon\"\n", "soon"),
            ("[[outputs]]\nname=\"s\"\ntype=\"kafka\"\n", "kafka"),
            ("[[outputs]]\nname=\"a\"\ntype=\"file\"\n[[outputs]]\nname=\"a\"\ntype=\"file\"\n", "outputs[1].name"),
            ("[[outputs]]\nname=\"a\"\ntype=\"file\"\nbuild_threads=0\n", "outputs[0].build_threads"),
        ];
        for (toml, needle) in cases {
            let e = outputs(toml).unwrap_err();
            assert!(e.contains(needle), "{needle} not in {e}");
        }
    }

    #[test]
    fn two_s3_outputs_may_not_write_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = id\naws_secret_access_key = secret\n",
        )
        .unwrap();
        let s3 = |name: &str, prefix: &str| {
            format!(
                "[[outputs]]\nname=\"{name}\"\ntype=\"s3\"\nbucket=\"b-1\"\nendpoint=\"https://r2.example\"\nprefix=\"{prefix}\"\ncredentials_file={:?}\n",
                creds.display().to_string()
            )
        };
        let e = outputs(&format!("{}{}", s3("all", "nal/"), s3("drops", "/nal"))).unwrap_err();
        assert!(
            e.contains("outputs[1].prefix") && e.contains("\"all\""),
            "{e}"
        );
        assert_eq!(
            outputs(&format!(
                "{}{}",
                s3("all", "nal/all"),
                s3("drops", "nal/drops")
            ))
            .unwrap()
            .len(),
            2
        );
    }
}
