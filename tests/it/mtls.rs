//! Client-certificate verification (`client_ca`) on the HEC listener.

use crate::support::process::{post, post_answer};
use crate::support::*;

/// A client certificate signed by the server's generated CA, as PEM (cert + key).
fn client_identity(tls_dir: &std::path::Path) -> Vec<u8> {
    let (cert, key) = client_cert_signed_by(&tls_dir.join("ca.pem"), "client.example");
    format!("{cert}{key}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_when_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("tls/ca.pem");
    let extra = format!("client_ca = \"{}\"", ca.display());
    let mut server = TestServer::start_with(dir.path(), &extra, "").await;

    // Without a certificate the handshake fails: no HEC answer at all.
    let anonymous = server.http2();
    let url = server.url(EVENT);
    let err = post(&anonymous, &url, TOKEN, br#"{"event":"no cert"}"#, false).await;
    assert!(
        err.is_err(),
        "request without a client certificate must fail"
    );

    let pem = std::fs::read(&server.ca).unwrap();
    for http2 in [false, true] {
        let builder = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .identity(
                reqwest::Identity::from_pem(&client_identity(&dir.path().join("tls"))).unwrap(),
            );
        let client = if http2 { builder } else { builder.http1_only() }
            .build()
            .unwrap();
        let got = post_answer(&client, &url, TOKEN, br#"{"event":"with cert"}"#, false).await;
        assert_eq!(got, (200, success()));
    }
    assert_eq!(server.queue_stats().events, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus-ca.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let text = config_text(
        dir.path(),
        &format!("client_ca = \"{}\"", bogus.display()),
        "",
    );
    let config = sluice::config::Settings::parse(&text).unwrap();
    let err = match sluice::app::start(config).await {
        Ok(_) => panic!("a bogus client CA must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("bogus-ca.pem"), "{err}");
}
