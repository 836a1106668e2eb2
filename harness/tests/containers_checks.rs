//! The dev registry in a container runs the HTTP and TCP checks the harness
//! registers against services listening on the host's 127.0.0.1: it runs on
//! the host's network (a container's own loopback is not the host's).

use std::time::Duration;

use gantry_harness::run::containers;
use gantry_harness::{Check, Infra, Ready, Registration, ServiceSpec, StackBuilder};

/// A service that answers 200 on `/health`, on the host's loopback only.
const HEALTHY: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening", flush=True)
server.serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containerised_registry_checks_services_on_the_hosts_loopback() {
    // The locally built dev registry image unless the environment names one.
    let registry_image = std::env::var("GANTRY_REGISTRY_IMAGE").unwrap_or_else(|_| "gantry/registry:latest".into());
    // SAFETY: set before this test starts any thread that reads the environment.
    unsafe { std::env::set_var("GANTRY_REGISTRY_IMAGE", &registry_image) };
    // No Redis here: only the registry's image must be present.
    if let Some(why) = containers::unavailable_because(&[&registry_image]).await {
        eprintln!("SKIPPED: the dev registry cannot run in a container here: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("healthy.py");
    std::fs::write(&script, HEALTHY).unwrap();
    let http = ServiceSpec::command("healthy", "python3", [script.display().to_string(), "{port}".into()])
        .ready(Ready::http("/health"))
        .registration(Registration::by_harness(Check::http("/health")));
    let tcp = ServiceSpec::command(
        "healthy-tcp",
        "python3",
        [script.display().to_string(), "{port}".into()],
    )
    .ready(Ready::http("/health"))
    .registration(Registration::by_harness(Check::tcp()));
    // Started means passing: a harness-registered instance is ready only
    // once the registry's own check of it passes.
    let stack = StackBuilder::empty("gantry")
        .infra(Infra::Containers)
        .redis(false)
        .service(http)
        .service(tcp)
        .start(&mut |_| {})
        .await
        .expect("the instances pass the containerised registry's checks");
    let registry = stack.registry();
    for service in ["healthy", "healthy-tcp"] {
        let passing = registry
            .health_service(service, true, None, Duration::ZERO)
            .await
            .unwrap();
        let ids: Vec<&str> = passing.value.iter().map(|i| i.service.id.as_str()).collect();
        assert_eq!(ids, [format!("{service}-1")], "{service} passes");
    }
    assert!(
        stack.registry_addr().starts_with("127.0.0.1:"),
        "the registry listens on the host's loopback: {}",
        stack.registry_addr()
    );
    stack.stop(&mut |_| {}).await.unwrap();
}
