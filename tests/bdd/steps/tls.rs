//! HTTPS through a gateway that terminates TLS itself, with a CA and a
//! certificate the harness generates for the scenario's stack; and the
//! external mode (`GANTRY_GATEWAY_URL=https://…` with `GANTRY_CA_CERT`)
//! run against such a stack.

use std::time::Duration;

use cucumber::{given, then};
use gantry_harness::drive::raw::read_to_close;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::stack::start_fresh;
use crate::target;
use crate::world::GantryWorld;

/// Time a check may take before the step fails (only "eventually" is
/// asserted, never how fast).
const SLACK: Duration = Duration::from_secs(15);

#[given("a fresh stack whose gateway terminates TLS with a certificate the test generates")]
async fn a_tls_stack(w: &mut GantryWorld) {
    start_fresh(w, target::builder().users(1).gateway_tls()).await;
    let gateway = w.gateway();
    assert!(gateway.starts_with("https://localhost:"), "an https URL: {gateway}");
    assert!(w.target().ca_cert.is_some(), "the stack's CA is known");
}

/// The gateway's public port, from its URL.
fn port(w: &GantryWorld) -> u16 {
    let gateway = w.gateway();
    let port = gateway.rsplit(':').next().and_then(|p| p.parse().ok());
    port.unwrap_or_else(|| panic!("no port in {gateway}"))
}

/// A browser or curl pointed at `http://` on the TLS port gets a plain
/// answer saying what to do, as nginx's 497 does, rather than a reset.
#[then(
    regex = r#"^a plain-HTTP request to the gateway's TLS port is answered 400 "([\w-]+)" and its connection closed$"#
)]
async fn plain_http_is_answered(w: &mut GantryWorld, reason: String) {
    let mut s = TcpStream::connect(("127.0.0.1", port(w))).await.expect("connecting");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("sending");
    let sent = tokio::time::timeout(SLACK, read_to_close(&mut s))
        .await
        .expect("the gateway closes the connection instead of waiting");
    assert!(sent.starts_with("HTTP/1.1 400"), "a 400 over plain text: {sent:?}");
    assert!(sent.contains(&format!("\"{reason}\"")), "the reason {reason}: {sent:?}");
}

#[then("a client that does not trust the stack's CA fails the TLS handshake, and one that does gets through")]
async fn untrusting_client_fails(w: &mut GantryWorld) {
    let url = format!("{}/healthz", w.gateway());
    // The system's roots and GANTRY_CA_CERT, but not the stack's own CA.
    let untrusting = gantry_harness::drive::client::http_client(None);
    let e = untrusting
        .get(&url)
        .send()
        .await
        .expect_err("a certificate from an unknown CA");
    assert!(e.is_connect(), "a handshake failure, not an HTTP one: {e:?}");
    let trusting = w.target().http_builder().build().expect("an HTTP client");
    let answer = trusting
        .get(&url)
        .send()
        .await
        .expect("the same request, trusting the CA");
    assert_eq!(answer.status(), 200);
}

/// Scenarios that need nothing but the gateway's public port, run by the
/// suite's own binary in external mode against this scenario's stack.
const EXTERNAL_SCENARIOS: &str = "^(The session cookie is kept from scripts and other sites, and logout clears it|Login gives a token and a session, and both reach /users/me)$";

#[then("the suite in external mode, given the gateway's https URL and GANTRY_CA_CERT, passes scenarios through it")]
async fn external_mode_over_https(w: &mut GantryWorld) {
    let ca = w.target().ca_cert.clone().expect("the stack's CA");
    let reports = w.stack().log_dir().join("external-reports");
    let exe = std::env::current_exe().expect("the suite's own binary");
    // The suite's binary, as CI runs it against a deployment: only the
    // gateway's URL and the CA are given, so only scenarios that need
    // nothing else run (this one needs a fresh stack: skipped there).
    let child = tokio::process::Command::new(exe)
        .args(["--name", EXTERNAL_SCENARIOS])
        .env("GANTRY_INFRA", "external")
        .env("GANTRY_GATEWAY_URL", w.gateway())
        .env("GANTRY_CA_CERT", &ca)
        .env("GANTRY_REPORTS", &reports)
        .env_remove("GANTRY_GATEWAY_ADMIN_URL")
        .env_remove("REDIS_URL")
        .env_remove("GANTRY_JWT_SIGNING_KEY")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("the external run finishes")
        .expect("running the suite's binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the external run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("2 scenarios (2 passed)"),
        "both scenarios ran and passed:\n{stdout}"
    );
}
