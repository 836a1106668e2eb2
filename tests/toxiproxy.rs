//! Toxiproxy's own Python client (`toxiproxy-python`, from PyPI) drives the
//! fault proxy over its HTTP API, unchanged: proxies created, listed,
//! disabled and enabled; latency, reset_peer and bandwidth toxics added,
//! read back and removed; errors where Toxiproxy gives them. The script is
//! `tests/toxiproxy/client.py`; what it left behind is checked from Rust.

use gantry_harness::drive::echo::Echo;
use gantry_harness::faults::{FaultProxy, Kind, Stream, api};

#[tokio::test]
async fn toxiproxys_python_client_drives_the_fault_proxy() {
    let proxy = FaultProxy::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(api::serve(listener, proxy.clone(), async {
        let _ = stopped.await;
    }));
    let echo = Echo::start("echo-toxiproxy").await.unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/toxiproxy/client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(api_port.to_string())
        .arg(echo.addr().to_string())
        .output()
        .await
        .expect("running python3 (a prerequisite: see the README)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if out.status.code() == Some(3) {
        panic!("Toxiproxy's Python client is not installed: python3 -m pip install toxiproxy-python\n{stderr}");
    }
    assert!(out.status.success(), "the client saw a difference:\n{stdout}\n{stderr}");
    assert!(stdout.ends_with("done\n"), "{stdout}");

    // What the client left is what the Rust side sees.
    let link = proxy.get("echo").await.expect("the client's proxy");
    assert_eq!(link.upstream, echo.addr().to_string());
    let [thin] = link.toxics.as_slice() else {
        panic!("one toxic left: {:?}", link.toxics)
    };
    assert_eq!(
        (thin.name.as_str(), thin.stream, thin.toxicity),
        ("thin", Stream::Upstream, 0.5)
    );
    assert_eq!(thin.kind, Kind::Bandwidth { rate: 100 });

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
