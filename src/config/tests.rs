//! Unit tests of configuration parsing, checks and resolution.

use super::*;

#[test]
fn empty_config_is_the_embedded_default() {
    let c = Settings::parse("").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8088");
    assert_eq!(c.queue_path, PathBuf::from("data/queue"));
    assert_eq!(c.outputs.len(), 1);
    assert!(c.enricher.is_some());
    assert!(c.server.tls);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(5));
}

#[test]
fn unknown_keys_are_named() {
    let e = Config::parse("[server]\nlisten_addr = \"0.0.0.0:1\"\n").unwrap_err();
    assert!(e.to_string().contains("listen_addr"), "{e}");
    let e = Config::parse("[[tokens]]\nname=\"a\"\ntoken=\"t\"\nack=\"sometimes\"\n").unwrap_err();
    assert!(e.to_string().contains("sometimes"), "{e}");
}

#[test]
fn token_rules() {
    let e = Settings::parse("[[tokens]]\nname=\"a\"\n").unwrap_err();
    assert!(e.to_string().contains("tokens[0].token"), "{e}");
    let e = Settings::parse(
        "[[tokens]]\nname=\"a\"\ntoken=\"x\"\n[[tokens]]\nname=\"a\"\ntoken=\"y\"\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("tokens[1].name"), "{e}");
    let e = Settings::parse("[[tokens]]\nname=\"a\"\ntoken_env=\"SLUICE_TEST_UNSET_VAR_1\"\n")
        .unwrap_err();
    assert!(e.to_string().contains("SLUICE_TEST_UNSET_VAR_1"), "{e}");
    let e = Settings::parse(
        "[[tokens]]\nname=\"a\"\ntoken=\"x\"\nindex=\"main\"\nallowed_indexes=[\"cf\"]\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("tokens[0].index"), "{e}");
}

#[test]
fn debug_never_shows_tokens() {
    let c = Config::parse("[[tokens]]\nname=\"a\"\ntoken=\"s3cret-token\"\n").unwrap();
    assert!(!format!("{c:?}").contains("s3cret"));
    let s = Settings::resolve(c, Secrets::Read).unwrap();
    assert!(!format!("{:?}", s.tokens).contains("s3cret"));
    assert!(s.tokens[0].secret.matches("s3cret-token"));
}

#[test]
fn missing_config_file_is_named() {
    let e = Settings::load(Path::new("/nonexistent/sluice.toml"), Secrets::Read)
        .err()
        .unwrap();
    assert!(e.to_string().contains("/nonexistent/sluice.toml"), "{e}");
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sluice.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = Config::parse(&text).unwrap();
    c.check().unwrap();
    assert!(!c.tokens.is_empty());
    assert!(c.tokens.iter().any(|t| t.ack == AckMode::Durable));
    assert_eq!(c.enrich.trim, crate::enrich::config::TrimMode::Empty);
    assert_eq!(c.enrich.indexed().len(), 5);
    assert_eq!(
        c.tokens[0].final_pass_system.as_deref(),
        Some("magic-firewall")
    );
    let rollup = std::sync::Arc::new(crate::rollup::config::RollupSettings::default());
    let outputs = resolve_outputs(&c.outputs, &c.data_dir, Secrets::Skip, &rollup).unwrap();
    assert_eq!(outputs.len(), 3);
    assert!(matches!(&outputs[2], crate::forward::config::Output::S3(o) if o.region == "auto"));
    assert_eq!(outputs[0].engine().unwrap().build_threads, 2);
    let assets = c.enrich.assets.as_ref().unwrap();
    let table = crate::enrich::assets::AssetTable::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(assets),
    )
    .unwrap();
    assert!(table
        .tags("203.0.113.53")
        .any(|(k, v)| k == "asset_service" && v == "dns"));
}

/// The example documents the admin-side keys commented out; uncommented
/// they must parse and pass the checks (so the documentation cannot rot).
#[test]
fn example_commented_admin_keys_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sluice.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut server = String::from("[server]\n");
    let mut in_array = false;
    for line in text.lines() {
        let Some(l) = line.strip_prefix("# ") else {
            in_array = false;
            continue;
        };
        let starts = [
            "metrics_user =",
            "metrics_password =",
            "metrics_tls =",
            "allow_cidrs = [",
        ];
        if starts.iter().any(|k| l.starts_with(k)) {
            in_array = l.ends_with('[');
            server.push_str(l);
            server.push('\n');
        } else if in_array {
            server.push_str(l);
            server.push('\n');
            in_array = !l.starts_with(']');
        }
    }
    let c = Config::parse(&server).unwrap();
    c.check().unwrap();
    assert_eq!(c.server.metrics_user.as_deref(), Some("prometheus"));
    assert!(c.server.metrics_tls);
    assert_eq!(c.server.allow_cidrs.len(), 22, "{server}");
}

#[test]
fn admin_key_pairs_are_checked() {
    let e = |t: &str| Settings::parse(t).err().unwrap().to_string();
    assert!(e("[server]\nmetrics_user = \"p\"\n").contains("server.metrics_password"));
    assert!(e("[server]\nmetrics_password = \"x\"\n").contains("server.metrics_user"));
    assert!(e("[server]\nmetrics_client_ca = \"ca.pem\"\n").contains("server.metrics_client_ca"));
    assert!(e("[server]\ntls = false\nmetrics_tls = true\n").contains("server.metrics_tls"));
    assert!(e("[server]\nallow_cidrs = [\"10.0.0.0/33\"]\n").contains("line 2"));
    let both =
        "[server]\nmetrics_user = \"p\"\nmetrics_password = \"x\"\nmetrics_password_env = \"Y\"\n";
    assert!(e(both).contains("server.metrics_password_env"));
}

#[test]
fn enrich_errors_name_the_key() {
    let e = Settings::parse("[enrich]\ntrim = \"all\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("trim") || e.contains("all"), "{e}");
    let e = Settings::parse("[enrich]\nassets = \"/nonexistent/assets.csv\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("enrich.assets") && e.contains("/nonexistent/assets.csv"),
        "{e}"
    );
    let e =
        Settings::parse("[[tokens]]\nname = \"a\"\ntoken = \"x\"\nfinal_pass_system = \"mfw\"\n")
            .err()
            .unwrap()
            .to_string();
    assert!(e.contains("tokens[0].final_pass_system"), "{e}");
}

#[test]
fn a_syntax_error_never_quotes_the_line_it_is_on() {
    for text in [
        "[[tokens]]\nname = \"a\"\ntokn = \"s3cret-value\"\n",
        "[[tokens]]\nname = \"a\"\ntoken = s3cret-value\n",
        "[server]\nmetrics_user = \"p\"\nmetrics_password = s3cret-value\n",
    ] {
        let e = Settings::parse(text).err().unwrap().to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }
}
