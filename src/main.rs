//! The `sluice` command line.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use sluice::admin::client::{Node, QueueAccess};
use sluice::admin::Select;
use sluice::app::{self, Endpoints, TokenSource};
use sluice::config::{LogFormat, Settings};
use sluice::loadgen::scenario::{ScenarioOptions, Timestamps};
use sluice::loadgen::{self, Input, LoadgenOptions};
use sluice::queue::{Queue, QueueError, QueueLimits};
use sluice::setting::Secrets;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sluice: a durable Splunk HEC endpoint for Cloudflare Logpush.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the receiver (the default with no subcommand).
    Run(RunArgs),
    /// Check a config file; exits non-zero naming the bad key or file.
    Validate(ConfigArg),
    /// Inspect the queue.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Send Logpush-shaped load to a HEC endpoint.
    Loadgen(LoadgenArgs),
    /// Ask a node's HEC health endpoint, as a load balancer does; exits 0
    /// only on 200 with code 17.
    Health(HealthArgs),
    /// Make the running node read its config again (as SIGHUP does): TLS
    /// certificate and key, tokens, enrichment; exits 1 if it was refused.
    Reload(NodeArgs),
    /// Put the running node in the drain phase (503 code 23 to new requests
    /// and /health) until its outputs have emptied the queue, then it exits;
    /// waits for that and exits 0, or 1 after --timeout (the node keeps draining).
    Drain(DrainArgs),
}

#[derive(Args)]
struct HealthArgs {
    /// Base URL of the node (HEC's health path is added when it has none).
    #[arg(long, default_value = sluice::health::DEFAULT_URL)]
    url: String,
    /// Verify the server certificate against this CA (default: not verified).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
struct NodeArgs {
    /// The node's config file (its data dir holds the admin socket; default:
    /// embedded defaults).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct DrainArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// How long to wait for the queue to empty.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Args, Default)]
struct RunArgs {
    /// Config file; without it Sluice runs on its embedded defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ConfigArg {
    /// Config file.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Records, events, bytes and oldest age.
    Stats {
        /// Config file (default: embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Events outputs gave up on.
    Dead {
        #[command(subcommand)]
        command: DeadCommand,
    },
    /// Read every record back as outputs do; exits non-zero naming any that
    /// cannot be read.
    Verify {
        /// Config file (default: embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the backlog as NDJSON (Sluice stopped), e.g. before an upgrade.
    Export {
        /// Config file (default: embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Output file (default: standard output).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Append records from an NDJSON export (Sluice stopped).
    Import {
        /// Config file (default: embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Export file.
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Args)]
struct DeadSelect {
    /// Config file (default: embedded defaults).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Only this dead letter (its sequence number).
    #[arg(long)]
    seq: Option<u64>,
    /// Only this output's dead letters.
    #[arg(long)]
    output: Option<String>,
}

#[derive(Subcommand)]
enum DeadCommand {
    /// One line per dead letter: seq, output, record, event, reason.
    List {
        #[command(flatten)]
        select: DeadSelect,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Full dead letters (JSON), including the event.
    Show {
        #[command(flatten)]
        select: DeadSelect,
    },
    /// Queue dead letters again for the output that gave up on them.
    Replay {
        #[command(flatten)]
        select: DeadSelect,
    },
    /// Delete dead letters.
    Purge {
        #[command(flatten)]
        select: DeadSelect,
    },
}

#[derive(Args)]
struct LoadgenArgs {
    /// Base URL of the HEC listener.
    #[arg(long, default_value = "https://127.0.0.1:8088")]
    url: String,
    /// HEC token (or SLUICE_HEC_TOKEN; default: ./data/hec_token).
    #[arg(long, env = "SLUICE_HEC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate to trust (default: ./data/tls/ca.pem when present).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Do not verify the server certificate.
    #[arg(long)]
    insecure: bool,
    /// NDJSON input (repeatable; default: generated `--scenario ddos` traffic).
    #[arg(long)]
    file: Vec<PathBuf>,
    /// Lines per request.
    #[arg(long, default_value_t = 10_000)]
    batch_lines: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Stop after this long (e.g. "30s").
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long)]
    events: Option<u64>,
    /// Use HTTP/1.1 instead of HTTP/2.
    #[arg(long)]
    http1: bool,
    /// Target events per second (default: as fast as the server answers).
    #[arg(long)]
    rate: Option<f64>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Generated traffic, the input when no --file is given: `ddos` is
    /// Magic Transit traffic with SYN floods, DNS reflection, Advanced TCP
    /// Protection and Magic Firewall drops.
    #[arg(long, value_enum, conflicts_with = "file")]
    scenario: Option<ScenarioKind>,
    /// Datetime form of generated samples.
    #[arg(long, value_enum, default_value = "rfc3339", conflicts_with = "file")]
    timestamps: Timestamps,
    /// Generate Cloudflare's legacy field names (IPTtl, TCPMss, …).
    #[arg(long, conflicts_with = "file")]
    legacy_names: bool,
    /// Seed of the generated traffic (the same seed sends the same samples).
    #[arg(long, default_value_t = 1, conflicts_with = "file")]
    seed: u64,
    /// Write the ground truth of the accepted generated samples to this JSON
    /// file (records, counts and estimated totals per system and outcome,
    /// true passed traffic, attacks).
    #[arg(long, conflicts_with = "file")]
    truth: Option<PathBuf>,
    /// gzip level of request bodies (6 is Go's default, which Logpush uses).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    gzip_level: u32,
}

/// Generated traffic kinds.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ScenarioKind {
    /// Magic Transit traffic under attack.
    Ddos,
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = std::env::var("SLUICE_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The one place configuration is read: parsed, checked and resolved once.
/// `run` and `validate` read secrets; the queue commands, which never
/// authenticate, do not need the service's environment.
fn load(config: Option<&Path>, secrets: Secrets) -> Result<Settings> {
    match config {
        Some(p) => Ok(Settings::load(p, secrets)?),
        None => Ok(Settings::embedded()?),
    }
}

fn main() -> Result<()> {
    // Before any thread starts.
    sluice::allocator::tune();
    // The queue holds every event and the data dir the token: whatever
    // creates files (sled included) creates them for this user only.
    sluice::private_fs::restrict_umask();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => {
            let config = load(args.config.as_deref(), Secrets::Read)?;
            init_logging(&config.log.level, config.log.format);
            runtime.block_on(run(config))
        }
        Command::Validate(args) => validate(&args.config),
        Command::Queue { command } => runtime.block_on(queue_command(command)),
        Command::Loadgen(args) => {
            init_logging("warn", LogFormat::Text);
            runtime.block_on(loadgen(args))
        }
        Command::Health(args) => runtime.block_on(health(args)),
        Command::Reload(args) => runtime.block_on(reload(args)),
        Command::Drain(args) => runtime.block_on(drain(args)),
    }
}

async fn run(config: Settings) -> Result<()> {
    // Before anything listens: a signal that arrives while Sluice starts is
    // held and acted on once it runs, never the default action (which would
    // end the process without a drain or a flush).
    let mut signals = Signals::install()?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting");
    let mut running = app::start(config).await?;
    announce(&running.endpoints, &running.token_source);
    signals.serve_until_stopped(&mut running).await;
    running.shutdown().await?;
    Ok(())
}

/// The signals Sluice acts on, registered once.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// Waits for SIGTERM, SIGINT or the end of a drain; SIGHUP and the
    /// admin socket's requests are served meanwhile.
    async fn serve_until_stopped(&mut self, running: &mut app::Running) {
        loop {
            tokio::select! {
                _ = self.int.recv() => return,
                _ = self.term.recv() => return,
                _ = self.hup.recv() => {
                    // Logged and counted inside; the old config stays on error.
                    let _ = running.reload("SIGHUP").await;
                }
                app::NodeRequest::Stop = running.next_request() => return,
            }
        }
    }
}

/// Tells the operator where to point Logpush and how to test, without the token
/// (which is shown only on the start that generated it).
fn announce(ep: &Endpoints, source: &TokenSource) {
    let scheme = if ep.tls { "https" } else { "http" };
    let host = if ep.hec.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if ep.hec.is_ipv6() {
        format!("[{}]", ep.hec.ip())
    } else {
        ep.hec.ip().to_string()
    };
    let base = format!("{scheme}://{host}:{}", ep.hec.port());
    let token_expr = match source {
        TokenSource::File { path, .. } => format!("$(cat {})", path.display()),
        TokenSource::Environment => "$SLUICE_HEC_TOKEN".to_string(),
        TokenSource::Configured => "<your token>".to_string(),
    };
    let ca = match &ep.generated_ca {
        Some(ca) => format!("--cacert {} ", ca.display()),
        None if ep.tls => "--cacert <CA of your certificate> ".to_string(),
        None => String::new(),
    };
    let client = if ep.mtls {
        "--cert <client.pem> --key <client.key> "
    } else {
        ""
    };
    let curl = format!(
        "curl {ca}{client}-H \"Authorization: Splunk {token_expr}\" {base}/services/collector/event -d '{{\"event\":\"hello from curl\"}}'"
    );
    let logpush = format!(
        "splunk://<public name of this host>:{}/services/collector/raw?channel={}&insecure-skip-verify=false&sourcetype=cloudflare:network_analytics&header_Authorization=Splunk%20<token>",
        ep.hec.port(),
        sluice::hec::Channel::random()
    );
    tracing::info!(url = %base, metrics = %format!("http://{}/metrics", ep.metrics), "Sluice is receiving HEC");
    tracing::info!(destination_conf = %logpush, "point Cloudflare Logpush at this (needs a publicly trusted certificate for that name)");
    tracing::info!(command = %curl, "test it");
    if let TokenSource::File {
        path,
        new_secret: Some(secret),
    } = source
    {
        // Shown once, and only to a person at a terminal: a journal or a log
        // file would keep it. Later starts read it from the file.
        if std::io::stderr().is_terminal() {
            eprintln!(
                "\n  Generated HEC token (stored in {}, shown only now): {}\n",
                path.display(),
                secret.expose()
            );
        } else {
            tracing::info!(file = %path.display(), "generated a HEC token; it is in this file (not printed: stderr is not a terminal)");
        }
    }
}

fn validate(path: &Path) -> Result<()> {
    let config = load(Some(path), Secrets::Read)?;
    let s = &config.server;
    if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
        let certs = std::sync::Arc::new(sluice::tls::CertSlot::load(cert, key)?);
        sluice::tls::server_config(certs, s.client_ca.as_deref())?;
    } else if let Some(ca) = &s.client_ca {
        sluice::tls::load_certs(ca)?;
    }
    println!("{}: OK", path.display());
    Ok(())
}

async fn queue_command(command: QueueCommand) -> Result<()> {
    match command {
        QueueCommand::Stats { config, json } => {
            let config = load(config.as_deref(), Secrets::Skip)?;
            let stats = QueueAccess::open(&config)?.stats().await?;
            if json {
                println!("{}", serde_json::to_string(&stats)?);
            } else {
                println!(
                    "records: {}\nevents: {}\nbytes: {}\noldest_age_seconds: {:.1}",
                    stats.records, stats.events, stats.bytes, stats.oldest_age_seconds
                );
            }
        }
        QueueCommand::Dead { command } => dead_command(command).await?,
        QueueCommand::Verify { config, json } => {
            let config = load(config.as_deref(), Secrets::Skip)?;
            let report = QueueAccess::open(&config)?.verify(&config).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for u in &report.unreadable {
                    println!(
                        "record {}: unreadable after {} events: {}",
                        u.record, u.events_read, u.error
                    );
                }
                println!(
                    "checked {} records ({} events): {} unreadable",
                    report.records,
                    report.events,
                    report.unreadable.len()
                );
            }
            if !report.unreadable.is_empty() {
                bail!(
                    "{} unreadable records: outputs will dead-letter them as corrupt",
                    report.unreadable.len()
                );
            }
        }
        QueueCommand::Export { config, file } => {
            let config = load(config.as_deref(), Secrets::Skip)?;
            let QueueAccess::Direct(q) = QueueAccess::open(&config)? else {
                bail!("stop Sluice first: export reads the store directly");
            };
            let n = match &file {
                Some(path) => {
                    let f = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    q.export(&mut std::io::BufWriter::new(f), &path.display().to_string())?
                }
                None => q.export(&mut std::io::stdout().lock(), "standard output")?,
            };
            eprintln!("exported {n} records");
        }
        QueueCommand::Import { config, file } => {
            let config = load(config.as_deref(), Secrets::Skip)?;
            let path = config.queue_path.clone();
            let queue = Queue::open(
                &path,
                QueueLimits {
                    max_bytes: u64::MAX,
                    min_free_bytes: 0,
                    cache_bytes: config.queue.cache_bytes,
                },
            )
            .map_err(|e| match e {
                QueueError::Locked { .. } => {
                    anyhow::anyhow!("stop Sluice first: import writes the store directly")
                }
                e => e.into(),
            })?;
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let n = queue
                .import(&mut std::io::BufReader::new(f), &file.display().to_string())
                .await?;
            eprintln!("imported {n} records into {}", path.display());
        }
    }
    Ok(())
}

async fn dead_command(command: DeadCommand) -> Result<()> {
    let (select, action) = match command {
        DeadCommand::List { select, json } => (select, if json { "json" } else { "list" }),
        DeadCommand::Show { select } => (select, "show"),
        DeadCommand::Replay { select } => (select, "replay"),
        DeadCommand::Purge { select } => (select, "purge"),
    };
    let config = load(select.config.as_deref(), Secrets::Skip)?;
    let access = QueueAccess::open(&config)?;
    let select = Select {
        seq: select.seq,
        output: select.output,
    };
    match action {
        "replay" => println!("replayed {}", access.replay(&config, &select).await?),
        "purge" => println!("purged {}", access.purge(&select).await?),
        _ => {
            let letters = access.dead(&select).await?;
            match action {
                "json" | "show" => println!("{}", serde_json::to_string_pretty(&letters)?),
                _ => {
                    for l in &letters {
                        let d = &l.letter;
                        println!(
                            "{}\t{}\trecord={}\tevent={}\t{}",
                            l.seq, d.output, d.record, d.event_number, d.reason
                        );
                    }
                    eprintln!("{} dead letters", letters.len());
                }
            }
        }
    }
    Ok(())
}

async fn health(args: HealthArgs) -> Result<()> {
    let a = sluice::health::check(&args.url, args.ca.as_deref(), args.timeout).await?;
    let text = a.text.as_deref().unwrap_or("");
    match a.code {
        Some(code) => println!("{}: HTTP {} code {code} {text}", a.url, a.status),
        None => println!("{}: HTTP {}", a.url, a.status),
    }
    if !a.healthy() {
        bail!("unhealthy");
    }
    Ok(())
}

async fn reload(args: NodeArgs) -> Result<()> {
    let config = load(args.config.as_deref(), Secrets::Skip)?;
    let r = Node::of(&config).reload().await?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    if !r.restart_needed.is_empty() {
        eprintln!(
            "not in force until a restart: {}",
            r.restart_needed.join(", ")
        );
    }
    Ok(())
}

async fn drain(args: DrainArgs) -> Result<()> {
    let config = load(args.node.config.as_deref(), Secrets::Skip)?;
    let node = Node::of(&config);
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        // Asked in steps so progress shows and a long timeout needs no
        // long-lived request.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let d = node.drain(left.min(Duration::from_secs(10))).await?;
        if d.empty {
            eprintln!("queue empty; the node is stopping");
            let stop = config.server.shutdown_grace + Duration::from_secs(60);
            if !node.wait_stopped(stop).await {
                bail!("the queue is empty but the node has not stopped within {stop:?}");
            }
            println!("drained and stopped");
            return Ok(());
        }
        eprintln!(
            "draining: {} records ({} events) queued, oldest {:.0}s",
            d.records, d.events, d.oldest_age_seconds
        );
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the queue is not empty after {:?}; the node stays up, draining",
                args.timeout
            );
        }
    }
}

async fn loadgen(args: LoadgenArgs) -> Result<()> {
    let token = match args.token {
        Some(t) => t,
        None => std::fs::read_to_string("data/hec_token")
            .map(|t| t.trim().to_string())
            .context("no --token given and data/hec_token is not readable")?,
    };
    let ca = args.ca.or_else(|| {
        let p = PathBuf::from("data/tls/ca.pem");
        (!args.insecure && p.is_file()).then_some(p)
    });
    // Without --file the only scenario there is: an installed binary has
    // no sample files beside it.
    let input = if args.file.is_empty() {
        let ScenarioKind::Ddos = args.scenario.unwrap_or(ScenarioKind::Ddos);
        Input::Scenario(ScenarioOptions {
            timestamps: args.timestamps,
            legacy_names: args.legacy_names,
            seed: args.seed,
        })
    } else {
        Input::Files(args.file)
    };
    let duration = match (args.duration, args.events) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    let report = loadgen::run(
        LoadgenOptions {
            url: args.url,
            token,
            ca,
            insecure: args.insecure,
            input,
            batch_lines: args.batch_lines,
            concurrency: args.concurrency,
            duration,
            events: args.events,
            http1: args.http1,
            rate: args.rate,
            gzip_level: args.gzip_level,
        },
        |line| eprintln!("{line}"),
    )
    .await?;
    if let (Some(path), Some(truth)) = (&args.truth, &report.truth) {
        let text = serde_json::to_string_pretty(truth)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write the ground truth to {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "requests: {} (accepted {})\nevents: sent {} accepted {}\ncodes: {:?}\nhttp: {}\nelapsed: {:.2}s\nevents/s: {:.0}\ndecoded MB/s: {:.1}\nlatency p50: {:.1} ms  p99: {:.1} ms",
            report.requests,
            report.accepted_requests,
            report.events_sent,
            report.events_accepted,
            report.codes,
            report.http_version,
            report.elapsed_seconds,
            report.events_per_second,
            report.decoded_mb_per_second,
            report.p50_ms,
            report.p99_ms
        );
    }
    Ok(())
}
