//! The dev registry in a container runs the HTTP and TCP checks the harness
//! registers against services listening on the host's 127.0.0.1, though it
//! is on the stack's network, not the host's: it reaches them through the
//! harness's relays (`host.docker.internal`). And a service run as an image
//! is its container: a kill stops the container, and nothing of the stack
//! is left once it stops.

use std::time::Duration;

use gantry_harness::run::containers::{self, ContainerState};
use gantry_harness::{Check, Infra, Ready, Registration, ServiceSpec, StackBuilder};

/// The tests of this file one at a time: the second checks nothing of this
/// process is left, which the first's stack would be while it runs.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _turn = ONE_AT_A_TIME.lock().await;
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

/// Containers and networks carrying this process's label.
fn left_behind(kind: &str) -> Vec<String> {
    let filter = format!("label=gantry.stack={}", std::process::id());
    let args: &[&str] = match kind {
        "container" => &["ps", "-aq", "--filter", &filter],
        _ => &["network", "ls", "-q", "--filter", &filter],
    };
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_image_instance_is_its_container_and_the_stack_leaves_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let image = std::env::var("GANTRY_REGISTRY_IMAGE").unwrap_or_else(|_| "gantry/registry:latest".into());
    if let Some(why) = containers::unavailable_because(&[&image]).await {
        eprintln!("SKIPPED: no container can run here: {why}");
        return;
    }
    // Any HTTP server in an image will do: the dev registry's.
    let served = ServiceSpec::image("served", &image, 8500)
        .env("GANTRY_LISTEN", "{host}:{port}")
        .env("GANTRY_REGISTRY_ACL_TOKEN", "a-token-of-the-test")
        .ready(Ready::http("/v1/status/leader"))
        .replicas(2);
    // SAFETY: set before this test starts any thread that reads the environment.
    unsafe { std::env::set_var("GANTRY_REGISTRY_IMAGE", &image) };
    let mut stack = StackBuilder::empty("gantry")
        .infra(Infra::Containers)
        .redis(false)
        .service(served)
        .start(&mut |_| {})
        .await
        .expect("two containers of the image");
    let answers = |addr: String| async move {
        let url = format!("http://{addr}/v1/status/leader");
        reqwest::get(url).await.map(|r| r.status().as_u16()).ok()
    };
    let first = stack.instance("served", 1).unwrap().addr();
    assert_eq!(answers(first.clone()).await, Some(200));

    let instance = stack.instance_mut("served", 1).unwrap();
    instance.kill().await.expect("killed");
    let container = instance.container().expect("an image's instance is a container");
    assert_eq!(
        container.state().await.unwrap(),
        ContainerState::Stopped,
        "Docker says it is stopped"
    );
    assert_eq!(answers(first.clone()).await, None, "nothing answers where it did");
    let second = stack.instance("served", 2).unwrap().addr();
    assert_eq!(answers(second).await, Some(200), "its replica still answers");

    let instance = stack.instance_mut("served", 1).unwrap();
    instance.start_again().await.expect("started again");
    instance.wait_ready().await.expect("ready again");
    assert_eq!(answers(first).await, Some(200), "back on its port");

    stack.stop(&mut |_| {}).await.unwrap();
    assert_eq!(left_behind("container"), Vec::<String>::new(), "no container left");
    assert_eq!(left_behind("network"), Vec::<String>::new(), "no network left");
}

/// Readiness from an image's own HEALTHCHECK, on an image that has none:
/// the start fails saying so, not after a silent wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_readiness_on_an_image_without_one_says_so() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let image = std::env::var("GANTRY_REGISTRY_IMAGE").unwrap_or_else(|_| "gantry/registry:latest".into());
    if let Some(why) = containers::unavailable_because(&[&image]).await {
        eprintln!("SKIPPED: no container can run here: {why}");
        return;
    }
    // SAFETY: set before this test starts any thread that reads the environment.
    unsafe { std::env::set_var("GANTRY_REGISTRY_IMAGE", &image) };
    let served = ServiceSpec::image("served", &image, 8500)
        .env("GANTRY_LISTEN", "{host}:{port}")
        .ready(Ready::Healthcheck)
        .ready_timeout(Duration::from_secs(2));
    let e = StackBuilder::empty("gantry")
        .infra(Infra::Containers)
        .redis(false)
        .service(served)
        .start(&mut |_| {})
        .await
        .expect_err("never ready");
    let e = e.to_string();
    assert!(
        e.contains("HEALTHCHECK") && e.contains("the image has no HEALTHCHECK"),
        "{e}"
    );
    assert_eq!(left_behind("container"), Vec::<String>::new(), "no container left");
    assert_eq!(left_behind("network"), Vec::<String>::new(), "no network left");
}
