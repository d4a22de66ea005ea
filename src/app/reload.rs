//! Hot reload (SIGHUP, `sluice reload`): the configuration is read and
//! resolved again exactly as at start, and what can change live is put in
//! force together — the HEC certificate and key, the tokens, enrichment
//! (its asset table included). Everything is read and checked before
//! anything is swapped, so a bad new configuration changes nothing.
//! Settings that shape listeners, the queue or outputs keep their running
//! values and are reported as needing a restart (the queue is durable, so a
//! restart loses nothing).

use super::default_token_config;
use crate::admin::Reloaded;
use crate::bootstrap::{self, BootstrapError};
use crate::config::{ConfigError, Settings, Token};
use crate::enrich::EnricherSlot;
use crate::forward::context::TokenMetas;
use crate::ingest::allow::AllowList;
use crate::ingest::IngestState;
use crate::rollup::config::FinalPass;
use crate::setting::Secrets;
use crate::tls::{CertPair, CertSlot, TlsError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A reload was refused; the configuration in force stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is unreadable, unparsable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The default token or the generated TLS files could not be read (a
    /// reload reads them; only a start creates them).
    #[error(transparent)]
    Generated(#[from] BootstrapError),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The reload's thread failed.
    #[error("reload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The HEC listener's certificate: where it is read from, and the slot
/// the listener takes it from.
pub(super) struct TlsFiles {
    pub(super) slot: Arc<CertSlot>,
}

/// Everything a reload touches, captured at start.
pub(super) struct Reloader {
    pub(super) path: Option<PathBuf>,
    /// The data dir in force (a restart-only key): where the default token
    /// and generated certificate are read from.
    pub(super) data_dir: PathBuf,
    /// One reload at a time (SIGHUP and `sluice reload` may meet).
    pub(super) running: Mutex<()>,
    pub(super) tls: Option<TlsFiles>,
    /// The file's restart-only settings as they were at start.
    pub(super) fixed: Option<toml::Table>,
    /// The tokens in force (to say what a reload changed).
    pub(super) tokens: Mutex<Vec<Token>>,
    pub(super) state: Arc<IngestState>,
    pub(super) token_metas: Arc<TokenMetas>,
    pub(super) enricher: Arc<EnricherSlot>,
    /// `server.ack_max_total` in force (a restart-only key).
    pub(super) ack_max_total: usize,
    /// The final pass systems rollups count with, when an output takes
    /// rollups: they stay as at start (a resend rebuilds the same rollups).
    pub(super) rollup_final_pass: Option<FinalPass>,
}

impl Reloader {
    /// Reads everything, then swaps it in; blocking (file reads).
    pub(super) fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let (settings, fixed) = match &self.path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let settings = Settings::from_file_text(path, &text, Secrets::Read)?;
                (settings, Some(fixed_part(&text)))
            }
            None => (Settings::embedded()?, None),
        };
        let tokens = if settings.tokens.is_empty() {
            vec![Token {
                config: default_token_config(),
                secret: bootstrap::existing_default_token(&self.data_dir)?.secret,
            }]
        } else {
            settings.tokens.clone()
        };
        let mut restart_needed = match (&self.fixed, &fixed) {
            (Some(old), Some(new)) => changed_keys(old, new),
            _ => Vec::new(),
        };
        if let Some(running) = &self.rollup_final_pass {
            if settings.rollup.final_pass != *running {
                // Enrichment takes the new systems now; rollups at the restart.
                restart_needed.push("enrich.final_pass_system (for rollups)".into());
            }
        }
        let s = &settings.server;
        let pair = match (&self.tls, s.tls) {
            (Some(_), true) => Some(match (&s.tls_cert, &s.tls_key) {
                (Some(cert), Some(key)) => CertPair::load(cert, key)?,
                _ => {
                    let g = bootstrap::existing_tls(&self.data_dir)?;
                    CertPair::load(&g.cert, &g.key)?
                }
            }),
            (None, false) | (Some(_), false) | (None, true) => None,
        };
        if self.tls.is_some() != settings.server.tls
            && !restart_needed.iter().any(|k| k == "server.tls")
        {
            restart_needed.push("server.tls".into());
        }

        // Nothing below fails: the new configuration goes in whole.
        let mut report = Reloaded {
            tokens: tokens.len(),
            restart_needed,
            enrichment: settings.enricher.is_some(),
            asset_networks: settings
                .enricher
                .as_ref()
                .map_or(0, crate::enrich::Enricher::asset_networks),
            ..Reloaded::default()
        };
        if let (Some(files), Some(pair)) = (&self.tls, pair) {
            let expiry = pair.expiry;
            files.slot.put(pair);
            self.state
                .metrics
                .tls_cert_expiry
                .with_label_values(&["hec"])
                .set(expiry);
            report.tls_reloaded = true;
            report.tls_cert_expiry = Some(expiry);
        }
        self.enricher.replace(settings.enricher);
        report.allow_cidrs = settings.server.allow_cidrs.len();
        self.state.allow.store(Arc::new(AllowList::new(
            settings.server.allow_cidrs.clone(),
        )));
        // Queued records name their token: a token removed now keeps its
        // metadata until a restart, so its backlog still goes where it went.
        let mut metas = (*self.token_metas.current()).clone();
        metas.extend(super::token_metas(&tokens));
        self.token_metas.replace(metas);
        let configs: Vec<_> = tokens.iter().map(|t| t.config.clone()).collect();
        self.state
            .acks
            .set_budgets(crate::ingest::acks::budgets(&configs, self.ack_max_total));
        let mut running = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        token_changes(&running, &tokens, &mut report);
        self.state.replace_tokens(tokens.clone());
        *running = tokens;
        Ok(report)
    }
}

/// Keys a reload applies; everything else in the file needs a restart.
const LIVE_SERVER_KEYS: &[&str] = &["tls_cert", "tls_key", "allow_cidrs"];
const LIVE_SECTIONS: &[&str] = &["tokens", "enrich"];

/// The file's restart-only settings (as written: an unparsable file is
/// refused by `Settings::load` before this matters, so it is empty here).
pub(super) fn fixed_part(text: &str) -> toml::Table {
    let mut table: toml::Table = toml::from_str(text).unwrap_or_default();
    for s in LIVE_SECTIONS {
        table.remove(*s);
    }
    if let Some(toml::Value::Table(server)) = table.get_mut("server") {
        for k in LIVE_SERVER_KEYS {
            server.remove(*k);
        }
    }
    table
}

/// Restart-only keys that differ: `server.<key>` one by one, other sections whole.
fn changed_keys(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let sections: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for section in sections {
        let (a, b) = (old.get(section), new.get(section));
        if a == b {
            continue;
        }
        match (a, b) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) if section == "server" => {
                let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for k in names {
                    if a.get(k) != b.get(k) {
                        keys.push(format!("server.{k}"));
                    }
                }
            }
            _ => keys.push(section.clone()),
        }
    }
    keys
}

/// Fills in which tokens were added, removed or changed (names only).
fn token_changes(old: &[Token], new: &[Token], report: &mut Reloaded) {
    for t in new {
        match old.iter().find(|o| o.config.name == t.config.name) {
            None => report.tokens_added.push(t.config.name.clone()),
            Some(o) => {
                // Debug of a token's settings redacts its value; compare that apart.
                let same = format!("{:?}", o.config) == format!("{:?}", t.config)
                    && o.secret.matches(t.secret.expose());
                if !same {
                    report.tokens_changed.push(t.config.name.clone());
                }
            }
        }
    }
    for o in old {
        if !new.iter().any(|t| t.config.name == o.config.name) {
            report.tokens_removed.push(o.config.name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(text: &str) -> toml::Table {
        fixed_part(text)
    }

    #[test]
    fn live_keys_are_not_restart_keys() {
        let old = fixed(
            "data_dir = \"d\"\n[server]\nlisten = \"127.0.0.1:1\"\ntls_cert = \"a\"\ntls_key = \"b\"\n[[tokens]]\nname = \"x\"\n",
        );
        let new = fixed(
            "data_dir = \"d\"\n[server]\nlisten = \"127.0.0.1:1\"\ntls_cert = \"c\"\ntls_key = \"d\"\n[[tokens]]\nname = \"y\"\n[enrich]\ntrim = \"none\"\n",
        );
        assert_eq!(changed_keys(&old, &new), Vec::<String>::new());
    }

    #[test]
    fn restart_keys_are_named() {
        let old = fixed(
            "[server]\nlisten = \"127.0.0.1:1\"\n[[outputs]]\ntype = \"file\"\nname = \"a\"\n",
        );
        let new = fixed(
            "[server]\nlisten = \"127.0.0.1:2\"\nclient_ca = \"ca.pem\"\n[queue]\nmax_bytes = 5\n[[outputs]]\ntype = \"file\"\nname = \"b\"\n",
        );
        assert_eq!(
            changed_keys(&old, &new),
            vec!["outputs", "queue", "server.client_ca", "server.listen"]
        );
    }

    fn token(name: &str, value: &str, disabled: bool) -> Token {
        let mut config: crate::config::TokenConfig =
            toml::from_str(&format!("name = \"{name}\"\ndisabled = {disabled}\n")).unwrap();
        config.token = Some(crate::hec::TokenSecret::new(value));
        Token {
            config,
            secret: crate::hec::TokenSecret::new(value),
        }
    }

    #[test]
    fn token_changes_by_name() {
        let old = [
            token("a", "1", false),
            token("b", "2", false),
            token("c", "3", false),
        ];
        let new = [
            token("a", "1", false),
            token("b", "2", true),
            token("c", "9", false),
            token("d", "4", false),
        ];
        let mut r = Reloaded::default();
        token_changes(&old, &new, &mut r);
        assert_eq!(r.tokens_added, ["d"]);
        assert_eq!(r.tokens_changed, ["b", "c"]);
        assert!(r.tokens_removed.is_empty());
        let mut r = Reloaded::default();
        token_changes(&new, &old[..1], &mut r);
        assert_eq!(r.tokens_removed, ["b", "c", "d"]);
    }
}
