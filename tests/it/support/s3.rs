//! A real S3 API for the `s3` output's tests: moto in server mode (PyPI's
//! `moto[server]`, which `.ci/run` installs), behind a TCP proxy the test
//! can make refuse or stall connections, so the bucket can be "down" or an
//! upload hang without losing moto's in-memory objects.

use super::skipped;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

/// The bucket every test uses.
pub const BUCKET: &str = "nal-archive";

/// moto's S3, on loopback.
pub struct Moto {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto with [`BUCKET`] created; `None` (test skipped) where
    /// moto is not installed, unless `SLUICE_REQUIRE_MOTO` is set.
    pub async fn start(test: &str) -> Option<Moto> {
        let present = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            if std::env::var_os("SLUICE_REQUIRE_MOTO").is_some() {
                panic!("moto is not installed, and SLUICE_REQUIRE_MOTO is set");
            }
            skipped(
                test,
                "moto[server] is not installed (pip install 'moto[server]')",
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let moto = Moto { child, addr };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let made = http
                .put(format!("http://{addr}/{BUCKET}"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if made {
                return Some(moto);
            }
            assert!(Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every object under `prefix`: key and bytes, by key.
    pub async fn objects(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let store = AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(format!("http://{}", self.addr))
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        let p = object_store::path::Path::from(prefix);
        let mut list = store.list(Some(&p));
        let mut out = Vec::new();
        use futures_util::StreamExt;
        while let Some(meta) = list.next().await {
            let meta = meta.unwrap();
            let bytes = store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            out.push((meta.location.to_string(), bytes.to_vec()));
        }
        out.sort();
        out
    }
}

/// The lines of an object, gzip (any number of members) or not.
pub fn object_lines(key: &str, bytes: &[u8]) -> Vec<String> {
    let text = if key.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut s)
            .expect("gzip object");
        s
    } else {
        String::from_utf8(bytes.to_vec()).expect("utf-8 object")
    };
    text.lines().map(str::to_string).collect()
}

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass traffic.
    Flow,
    /// Close connections at once (the bucket is down).
    Refuse,
    /// Hold traffic without answering (an upload hangs).
    Stall,
}

/// A TCP proxy in front of moto. A change of mode also cuts the
/// connections open through it, so pooled connections see it too.
pub struct Proxy {
    /// Where Sluice connects.
    pub addr: SocketAddr,
    mode: tokio::sync::watch::Sender<Mode>,
}

impl Proxy {
    /// Proxies to `target`, passing traffic.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, watch) = tokio::sync::watch::channel(Mode::Flow);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let now = *watch.borrow_and_update();
                    match now {
                        Mode::Refuse => drop(inbound),
                        // Hold the connection, reading nothing, until the mode changes.
                        Mode::Stall => {
                            let _ = watch.changed().await;
                        }
                        Mode::Flow => {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                tokio::select! {
                                    _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                                    _ = watch.changed() => {}
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy { addr, mode }
    }

    /// Changes what happens to connections from now on.
    pub fn set(&self, mode: Mode) {
        let _ = self.mode.send(mode);
    }
}

/// An `[[outputs]]` table of type `s3` writing to `endpoint` (credentials
/// from `SLUICE_TEST_S3_KEY`, which the tests set), with `extra` keys.
pub fn s3_output(name: &str, endpoint: SocketAddr, prefix: &str, extra: &str) -> String {
    std::env::set_var("SLUICE_TEST_S3_KEY", "test");
    format!(
        r#"
[[outputs]]
name = "{name}"
type = "s3"
bucket = "{BUCKET}"
prefix = "{prefix}"
endpoint = "http://{endpoint}"
access_key_id_env = "SLUICE_TEST_S3_KEY"
secret_access_key_env = "SLUICE_TEST_S3_KEY"
{extra}
"#
    )
}
