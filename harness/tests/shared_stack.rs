//! A stack shared by a run's scenarios: a lease gives the stack to one at a
//! time, and mending after a scenario starts again what it killed and
//! resumes what it paused, whatever it was.

use std::time::Duration;

use gantry_harness::stack::RegistryKind;
use gantry_harness::steps::SharedStack;
use gantry_harness::{Infra, Ready, Registration, ServiceSpec, StackBuilder};

/// Answers 200 on any path, naming its instance.
const SERVER: &str = r#"
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["INSTANCE"].encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

async fn get(addr: &str) -> Result<String, reqwest::Error> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    client.get(format!("http://{addr}/")).send().await?.text().await
}

#[tokio::test]
async fn mending_starts_again_what_was_killed_and_resumes_what_was_paused() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(gantry_harness::registry::run(
        listener,
        gantry_harness::registry::Options::default(),
        std::future::pending(),
    ));
    let spec = ServiceSpec::command("server", "python3", [script.display().to_string(), "{port}".into()])
        .replicas(3)
        .env("INSTANCE", "{id}")
        .ready(Ready::http("/"))
        .registration(Registration::Unregistered);
    let stack = StackBuilder::empty("gantry")
        .infra(Infra::Local)
        .redis(false)
        .registry(RegistryKind::External { addr, token: None })
        .service(spec)
        .start(&mut |_| {})
        .await
        .unwrap();
    let shared = SharedStack::new(stack);

    let mut lease = shared.lend().await;
    let stack = lease.stack();
    let addrs: Vec<String> = stack.instances("server").unwrap().iter().map(|i| i.addr()).collect();
    stack.instance_mut("server", 1).unwrap().pause().await.unwrap();
    stack.instance_mut("server", 2).unwrap().kill().await.unwrap();
    assert!(get(&addrs[0]).await.is_err(), "paused: no answer");
    assert!(get(&addrs[1]).await.is_err(), "killed: no answer");

    lease.mend().await.unwrap();
    for (n, addr) in addrs.iter().enumerate() {
        let id = format!("server-{}", n + 1);
        assert_eq!(get(addr).await.unwrap_or_else(|e| panic!("{id}: {e}")), id);
    }
    drop(lease);
    // The next scenario gets the same stack, mended.
    let mut next = shared.lend().await;
    assert_eq!(next.stack().instances("server").unwrap().len(), 3);
    drop(next);
    shared.stop().await.unwrap();
}
