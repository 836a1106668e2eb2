//! Services of any language under the harness: a Python script from the
//! standard library, started from a `ServiceSpec` as real processes, with
//! each kind of readiness, placeholders filled, faults by name and index,
//! and the errors for a service that never gets ready or cannot start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_harness::run::wait;
use gantry_harness::stack::RegistryKind;
use gantry_harness::stack::file::StackFile;
use gantry_harness::{Check, HarnessError, Infra, Ready, Registration, ServiceSpec, Stack, StackBuilder};

/// A greeter: `GET /health` answers 200 (503 when `SICK` is set), `GET /`
/// answers `<GREETING> from <INSTANCE>`; it says when it listens.
const GREETER: &str = r#"
import http.server, os, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sick = self.path == "/health" and os.environ.get("SICK")
        body = ("sick" if sick else os.environ.get("GREETING", "hello") + " from " + os.environ.get("INSTANCE", "?")).encode()
        self.send_response(503 if sick else 200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), H)
print("greeter listening on", port, flush=True)
server.serve_forever()
"#;

fn script(dir: &Path) -> PathBuf {
    let path = dir.join("greeter.py");
    std::fs::write(&path, GREETER).unwrap();
    path
}

fn greeter(script: &Path) -> ServiceSpec {
    ServiceSpec::command("greeter", "python3", [script.display().to_string(), "{port}".into()])
        .env("INSTANCE", "{id}")
        .registration(Registration::Unregistered)
        .ready(Ready::http("/health"))
}

/// A stack of the given services and a dev registry of its own, served
/// in this test's process (with ACLs on, as a stack's is).
async fn builder() -> StackBuilder {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let token = format!("token-{}", std::process::id());
    let options = gantry_harness::registry::Options {
        acl_token: Some(token.clone()),
        ..Default::default()
    };
    tokio::spawn(gantry_harness::registry::run(listener, options, std::future::pending()));
    // No `gantry` binary is needed: every service here is a script.
    StackBuilder::empty("gantry")
        .infra(Infra::Local)
        .redis(false)
        .registry(RegistryKind::External {
            addr,
            token: Some(token),
        })
}

async fn start(b: StackBuilder) -> Result<Stack, HarnessError> {
    b.start(&mut |_| {}).await
}

async fn get(addr: &str, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.expect("an answer");
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// True while `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// The pids of live processes whose command line contains `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
                && alive(*pid)
        })
        .collect()
}

#[tokio::test]
async fn a_python_service_with_http_readiness_and_placeholders_filled() {
    let dir = tempfile::tempdir().unwrap();
    let spec = greeter(&script(dir.path()))
        .replicas(2)
        .env("GREETING", "hi {name} #{index} at {host}:{port}")
        .workdir("{dir}");
    let stack = start(builder().await.service(spec)).await.unwrap();
    let all = stack.instances("greeter").unwrap();
    assert_eq!(all.len(), 2);
    for (n, instance) in all.iter().enumerate() {
        let n = n + 1;
        assert_eq!(instance.id(), format!("greeter-{n}"));
        let addr = instance.addr();
        let (status, body) = get(&addr, "/").await;
        assert_eq!(status, 200);
        assert_eq!(body, format!("hi greeter #{n} at {addr} from greeter-{n}"));
        assert_eq!(instance.env("INSTANCE"), Some(format!("greeter-{n}").as_str()));
    }
    assert_eq!(stack.services(), ["greeter"]);
    stack.stop(&mut |_| {}).await.unwrap();
}

#[tokio::test]
async fn tcp_and_log_line_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path());
    let tcp = greeter(&script).ready(Ready::Tcp);
    let mut log = greeter(&script).ready(Ready::log_matches(r"listening on \d+").unwrap());
    log.name = "logger".into();
    let stack = start(builder().await.service(tcp).service(log)).await.unwrap();
    for service in ["greeter", "logger"] {
        let addr = stack.instance(service, 1).unwrap().addr();
        assert_eq!(get(&addr, "/health").await.0, 200, "{service} was ready");
    }
    let tail = stack.instance("logger", 1).unwrap().log_tail(5).await;
    assert!(tail.contains("greeter listening on"), "{tail}");
    stack.stop(&mut |_| {}).await.unwrap();
}

#[tokio::test]
async fn killing_one_instance_by_name_and_index_kills_only_that_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = start(builder().await.service(greeter(&script(dir.path())).replicas(3)))
        .await
        .unwrap();
    let pids: Vec<u32> = (1..=3)
        .map(|n| stack.instance("greeter", n).unwrap().pid().unwrap())
        .collect();
    stack.instance_mut("greeter", 2).unwrap().kill().await.unwrap();
    assert!(!alive(pids[1]), "greeter-2 is gone");
    assert!(alive(pids[0]) && alive(pids[2]), "the others live on");
    assert_eq!(stack.instance("greeter", 2).unwrap().pid(), None);

    // Back on the same port, and one more replica.
    let addr = stack.instance("greeter", 2).unwrap().addr();
    let instance = stack.instance_mut("greeter", 2).unwrap();
    instance.start_again().await.unwrap();
    instance.wait_ready().await.unwrap();
    assert_eq!(get(&addr, "/").await.1, "hello from greeter-2");
    assert_eq!(stack.add_instance("greeter").await.unwrap(), "greeter-4");
    let restarted = stack.instance_mut("greeter", 4).unwrap().restart().await;
    assert!(restarted.is_ok(), "{restarted:?}");

    let e = stack.instance_mut("greeter", 7).unwrap_err().to_string();
    assert!(e.contains("greeter-7") && e.contains("greeter ×4"), "{e}");
    let e = stack.instance("nope", 1).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("greeter ×4"), "{e}");
    stack.stop(&mut |_| {}).await.unwrap();
}

#[tokio::test]
async fn a_service_that_never_gets_ready_is_named_and_nothing_is_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path());
    // A marker in every command line, to find what this test started.
    let marker = format!("never-ready-{}", std::process::id());
    let mut good = greeter(&script).replicas(2);
    good.run = gantry_harness::Run::Command {
        program: "python3".into(),
        args: vec![script.display().to_string(), "{port}".into(), marker.clone()],
    };
    let mut sick = good.clone().env("SICK", "1").ready_timeout(Duration::from_secs(2));
    sick.name = "sick".into();
    let started = std::time::Instant::now();
    let e = start(builder().await.service(good).service(sick)).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, HarnessError::NeverReady(_)), "{text}");
    for part in [
        "sick-1",
        "service sick",
        "GET /health",
        "answered 503",
        "greeter listening on",
    ] {
        assert!(text.contains(part), "{part:?} in: {text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "within its readiness timeout"
    );
    // Both greeters were ready and the sick one started: all are gone.
    assert_eq!(pids_with(&marker), Vec::<u32>::new(), "{text}");
}

#[tokio::test]
async fn a_command_that_does_not_exist_is_a_clear_error() {
    let spec = ServiceSpec::command("ghost", "/nonexistent/ghost-service", ["{port}"]);
    let e = start(builder().await.service(spec)).await.unwrap_err().to_string();
    assert!(e.contains("ghost-1") && e.contains("/nonexistent/ghost-service"), "{e}");
    assert!(e.contains("No such file"), "{e}");
}

#[tokio::test]
async fn a_self_registering_service_is_ready_when_passing() {
    // A service that registers itself with a TTL check and passes it, as
    // Gantry's own do, written in Python against Consul's HTTP API.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("selfreg.py");
    std::fs::write(
        &path,
        r#"
import json, os, sys, time, urllib.request
reg, token, sid = os.environ["REG"], os.environ["TOKEN"], os.environ["ID"]
def put(path, body=None):
    req = urllib.request.Request(reg + path, data=json.dumps(body).encode() if body else b"", method="PUT")
    req.add_header("X-Consul-Token", token)
    urllib.request.urlopen(req).read()
put("/v1/agent/service/register", {"ID": sid, "Name": "selfreg", "Address": "127.0.0.1", "Port": int(sys.argv[1]),
    "Check": {"CheckID": "service:" + sid, "TTL": "10s"}})
while True:
    put("/v1/agent/check/pass/service:" + sid)
    time.sleep(1)
"#,
    )
    .unwrap();
    let spec = ServiceSpec::command("selfreg", "python3", [path.display().to_string(), "{port}".into()])
        .env("REG", "{registry}")
        .env("TOKEN", "{registry_token}")
        .env("ID", "{id}")
        .ready(Ready::Passing);
    let stack = start(builder().await.service(spec)).await.unwrap();
    let found = stack
        .registry()
        .health_service("selfreg", true, None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        found.value.iter().map(|i| i.service.id.as_str()).collect::<Vec<_>>(),
        ["selfreg-1"]
    );
    stack.stop(&mut |_| {}).await.unwrap();
}

/// The registry runs the HTTP and TCP checks the harness registered, as a
/// Consul agent does.
#[tokio::test]
async fn harness_registered_instances_pass_by_their_check_and_leave_on_remove() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path());
    let http = greeter(&script)
        .replicas(2)
        .registration(Registration::by_harness(Check::http("/health")));
    let mut tcp = greeter(&script).registration(Registration::by_harness(Check::tcp()));
    tcp.name = "tcp-greeter".into();
    let mut stack = start(builder().await.service(http).service(tcp)).await.unwrap();
    let registry = stack.registry();
    let passing = |name: &'static str| {
        let registry = registry.clone();
        async move {
            let found = registry.health_service(name, true, None, Duration::ZERO).await.unwrap();
            let mut ids: Vec<String> = found.value.into_iter().map(|i| i.service.id).collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(passing("greeter").await, ["greeter-1", "greeter-2"]);
    assert_eq!(passing("tcp-greeter").await, ["tcp-greeter-1"]);
    // Killed: still registered, and its check turns critical.
    stack.instance_mut("greeter", 2).unwrap().kill().await.unwrap();
    wait::until("greeter-2 to fail its check", Duration::from_secs(10), None, || {
        let p = passing("greeter");
        async move { Ok(p.await == ["greeter-1"]) }
    })
    .await
    .unwrap();
    // Removed: gone from the registry.
    stack.instance_mut("greeter", 2).unwrap().remove().await.unwrap();
    let all = registry
        .health_service("greeter", false, None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        all.value.iter().map(|i| i.service.id.as_str()).collect::<Vec<_>>(),
        ["greeter-1"]
    );
    stack.stop(&mut |_| {}).await.unwrap();
}

/// A check that never passes: the error names the check and its output.
#[tokio::test]
async fn a_check_that_never_passes_names_the_check_and_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let spec = greeter(&script(dir.path()))
        .ready(Ready::Tcp)
        .env("SICK", "1")
        .ready_timeout(Duration::from_secs(3))
        .registration(Registration::by_harness(Check::http("/health")));
    let e = start(builder().await.service(spec)).await.unwrap_err().to_string();
    assert!(e.contains("check \"service:greeter-1\" is critical"), "{e}");
}

#[test]
fn the_stack_file_describes_services_in_spec_terms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.toml");
    let text = r#"
[infra]
provider = "local"
redis = false
registry = "dev"

[[service]]
name = "greeter"
command = ["python3", "greeter.py", "{port}"]
replicas = 2
env = { GREETING = "hi from {id}" }
ready = { http = "/health" }
ready_timeout = "5s"
register = { by = "harness", check = { tcp = true, interval = "2s" }, tags = ["v1"] }

[[service]]
name = "auth"
gantry = "auth"

[gateway]
count = 2
routes = "routes.toml"
"#;
    let file = StackFile::parse(text, &path).unwrap();
    assert_eq!(file.infra, Infra::Local);
    assert!(!file.redis);
    let g = &file.services[0].spec;
    assert_eq!(g.replicas, 2);
    assert_eq!(g.ready, Ready::http("/health"));
    assert_eq!(g.ready_timeout, Duration::from_secs(5));
    assert_eq!(g.workdir.as_deref(), Some(dir.path()), "relative to the file");
    match &g.registration {
        Registration::ByHarness { check, tags, .. } => {
            assert_eq!(
                check,
                &Check::Tcp {
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_secs(1)
                }
            );
            assert_eq!(tags, &["v1"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(file.services[1].gantry);
    assert_eq!(file.gateway.count, 2);
    assert_eq!(file.gateway.routes, Some(dir.path().join("routes.toml")));
    let specs = file.builder("/bin/gantry").specs();
    assert_eq!(specs.len(), 3, "greeter, auth, the gateways");
    assert_eq!(
        specs[1].1.run,
        gantry_harness::Run::Command {
            program: "/bin/gantry".into(),
            args: vec!["serve".into(), "auth".into()]
        }
    );
}

#[test]
fn a_bad_stack_file_names_the_file_the_line_and_what_was_expected() {
    let path = Path::new("teams/stack.toml");
    let cases = [
        (
            "[[service]]\nname = \"a\"\ncommand = [\"x\"]\nreplicaz = 2\n",
            4,
            "unknown field `replicaz`",
        ),
        (
            "[[service]]\nname = \"a\"\ncommand = [\"x\"]\nready_timeout = \"soon\"\n",
            4,
            "expected one above zero such as \"500ms\"",
        ),
        ("\n[[service]]\nname = \"a\"\nreplicas = 2\n", 2, "missing command"),
        (
            "[[service]]\nname = \"a\"\ncommand = [\"x\", \"{prot}\"]\n",
            1,
            "unknown placeholder {prot}",
        ),
        (
            "[[service]]\nname = \"a\"\ncommand = [\"x\"]\nready = { http = \"/h\", tcp = true }\n",
            1,
            "exactly one of http, tcp",
        ),
        (
            "[infra]\nprovider = \"cloud\"\n",
            2,
            "expected auto, local or containers",
        ),
    ];
    for (text, line, expected) in cases {
        let e = StackFile::parse(text, path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("teams/stack.toml:{line}:")),
            "line {line} in: {e}"
        );
        assert!(e.contains(expected), "{expected:?} in: {e}");
    }
}

#[test]
fn the_example_stack_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("stack.example.toml");
    let file = StackFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!file.services.is_empty());
}
