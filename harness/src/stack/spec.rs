//! What a service of a stack is, described rather than hard-coded: how to
//! run it, how many, with what environment, how it is known to be ready and
//! how it gets into the registry. Gantry's own services are specs too
//! ([`ServiceSpec::gantry`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::placeholders;
use super::role::Role;
use crate::error::HarnessError;

/// How long an instance may take to become ready unless its spec says otherwise.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the registry runs a harness-registered check unless told otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long one run of a harness-registered check may take unless told otherwise.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a harness-registered instance may stay critical before the
/// registry removes it, unless told otherwise (what Gantry's services use).
pub const DEFAULT_DEREGISTER_AFTER: Duration = Duration::from_secs(30);

/// How an instance is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// Any executable or script: `program` with `args` (placeholders filled).
    Command {
        /// The executable: a path, or a name looked up on `PATH`.
        program: PathBuf,
        /// Its arguments, placeholders filled per instance.
        args: Vec<String>,
    },
    /// A container image (through testcontainers) running `args` (its own
    /// command when empty; placeholders filled). `port` is the port the
    /// service listens on inside the container, published on a free
    /// loopback port of the host; on the stack's network it is known by its
    /// service's name and its instance's.
    Image {
        /// The image and its tag, e.g. `redis:7.4.2` (`latest` when untagged).
        image: String,
        /// The port the service listens on inside the container.
        port: u16,
        /// The container's command; the image's own when empty.
        args: Vec<String>,
        /// Folders or files of the host it sees (bind mounts).
        mounts: Vec<Mount>,
    },
}

/// A path of the host a container sees (a bind mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The folder or file on the host (a stack file's relative path is
    /// resolved against the file's folder).
    pub host: PathBuf,
    /// Where the container sees it.
    pub inside: String,
    /// Whether the container may only read it.
    pub read_only: bool,
}

impl Mount {
    /// `host:inside`, with `:ro` for read-only (`:rw`, the default, to say
    /// so), as `docker run -v` writes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = || format!("{text:?}: expected \"host-path:/path/inside[:ro|:rw]\"");
        let mut parts = text.split(':');
        let (Some(host), Some(inside)) = (parts.next(), parts.next()) else {
            return Err(expected());
        };
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(_) => return Err(expected()),
        };
        if host.is_empty() || !inside.starts_with('/') || parts.next().is_some() {
            return Err(expected());
        }
        Ok(Self {
            host: PathBuf::from(host),
            inside: inside.to_owned(),
            read_only,
        })
    }
}

/// How a log line is recognised.
#[derive(Debug, Clone)]
pub enum LogMatch {
    /// The line contains this text.
    Contains(String),
    /// The line matches this regular expression somewhere.
    Matches(regex::Regex),
}

impl LogMatch {
    /// Whether `text` (one line) is such a line.
    pub fn is_in(&self, text: &str) -> bool {
        match self {
            LogMatch::Contains(s) => text.contains(s.as_str()),
            LogMatch::Matches(re) => re.is_match(text),
        }
    }
}

impl std::fmt::Display for LogMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogMatch::Contains(s) => write!(f, "a log line containing {s:?}"),
            LogMatch::Matches(re) => write!(f, "a log line matching /{}/", re.as_str()),
        }
    }
}

impl PartialEq for LogMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (LogMatch::Contains(a), LogMatch::Contains(b)) => a == b,
            (LogMatch::Matches(a), LogMatch::Matches(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// How the harness knows an instance is ready to take traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Ready {
    /// `GET path` answers 2xx (on the admin port when the spec has one).
    Http {
        /// The path to GET, e.g. `/readyz`.
        path: String,
    },
    /// Its port accepts a TCP connection.
    Tcp,
    /// Its container's own `HEALTHCHECK` (the image's, as Docker runs it)
    /// reports healthy: for an image that says itself when it is ready.
    Healthcheck,
    /// Its output (since this start) has such a line.
    LogLine(LogMatch),
    /// The registry lists it as passing.
    Passing,
    /// Redis answers `PING` with `PONG` to a client with this password.
    RedisPing {
        /// Redis's `requirepass`.
        password: String,
    },
    /// A Consul API (Consul, or Gantry's dev registry) names its leader:
    /// Consul answers `""` until it has elected one.
    RegistryLeader,
}

impl Ready {
    /// `GET path` answers 2xx.
    pub fn http(path: impl Into<String>) -> Self {
        Ready::Http { path: path.into() }
    }

    /// A log line containing `text`.
    pub fn log_contains(text: impl Into<String>) -> Self {
        Ready::LogLine(LogMatch::Contains(text.into()))
    }

    /// A log line matching the regular expression `pattern`.
    pub fn log_matches(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Ready::LogLine(LogMatch::Matches(regex::Regex::new(pattern)?)))
    }
}

/// The check the registry runs for an instance the harness registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `GET http://host:port{path}`, 2xx passing.
    Http {
        /// The path the registry GETs, e.g. `/healthz`.
        path: String,
        /// How often the registry runs the check.
        interval: Duration,
        /// How long one run may take before it counts as failing.
        timeout: Duration,
    },
    /// A TCP connection to `host:port`.
    Tcp {
        /// How often the registry runs the check.
        interval: Duration,
        /// How long one connection attempt may take before it counts as failing.
        timeout: Duration,
    },
}

impl Check {
    /// An HTTP check on `path` with the default interval and timeout.
    pub fn http(path: impl Into<String>) -> Self {
        Check::Http {
            path: path.into(),
            interval: DEFAULT_CHECK_INTERVAL,
            timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }

    /// A TCP check with the default interval and timeout.
    pub fn tcp() -> Self {
        Check::Tcp {
            interval: DEFAULT_CHECK_INTERVAL,
            timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }
}

/// How an instance gets into the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// It registers itself (Consul-native, as Gantry's services do) and
    /// deregisters on SIGTERM.
    SelfRegisters,
    /// The harness registers each instance (service name, instance id,
    /// address, port, tags, meta) with `check`, as an orchestrator would, and
    /// deregisters it when the instance is removed for good. Killing or
    /// stopping it does not: the check notices, as in a real deployment.
    ByHarness {
        /// The check the registry runs on the instance.
        check: Check,
        /// How long it may stay critical before the registry removes it
        /// (`DeregisterCriticalServiceAfter`).
        deregister_after: Duration,
        /// The tags it is registered with.
        tags: Vec<String>,
        /// The meta (key and value) it is registered with.
        meta: BTreeMap<String, String>,
    },
    /// Not in the registry at all (a gateway, a stand-in dependency).
    Unregistered,
}

impl Registration {
    /// Registered by the harness with `check`, the default
    /// `DeregisterCriticalServiceAfter`, no tags and no meta.
    pub fn by_harness(check: Check) -> Self {
        Registration::ByHarness {
            check,
            deregister_after: DEFAULT_DEREGISTER_AFTER,
            tags: Vec::new(),
            meta: BTreeMap::new(),
        }
    }
}

/// One service of a stack: how to run it and how to know it is up.
///
/// Environment values, arguments and the working directory may use
/// placeholders, filled per instance: `{port}`, `{admin_port}`, `{host}`,
/// `{id}` (e.g. `greeter-2`), `{index}` (2), `{name}` (`greeter`),
/// `{registry}` (`http://host:port`), `{registry_token}`, `{redis}` (the
/// `REDIS_URL`), `{dir}` (the stack's log and state directory),
/// `{url:<service>}` / `{addr:<service>}` of a service started before, and
/// `{file:<name>}`, where one of its [`ServiceSpec::files`] is.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The service's name in the registry, and the stem of its instance ids.
    pub name: String,
    /// How each instance is run: a command or a container image.
    pub run: Run,
    /// How many instances start with the stack.
    pub replicas: usize,
    /// Environment (key, value) of every instance, placeholders filled; it
    /// wins over what the stack gives every instance.
    pub env: Vec<(String, String)>,
    /// Extra environment for instance `n` (1-based) only.
    pub instance_env: Vec<(usize, String, String)>,
    /// The working directory of a command; the harness's own when `None`.
    pub workdir: Option<PathBuf>,
    /// How the harness knows an instance is ready for traffic.
    pub ready: Ready,
    /// How an instance gets into the registry.
    pub registration: Registration,
    /// How long an instance may take to become ready before its start fails.
    pub ready_timeout: Duration,
    /// Instance 1's port; the others (and instance 1 when `None`) get free ones.
    pub port: Option<u16>,
    /// A second free port per instance (`{admin_port}`), for an operator
    /// listener; [`Ready::Http`] is probed there.
    pub admin_port: bool,
    /// For an image: a UDP port its program listens on inside the
    /// container, published on the host at the instance's `{admin_port}`
    /// (the registry's DNS). Needs [`ServiceSpec::with_admin_port`].
    pub publish_udp: Option<u16>,
    /// Given the stack's Gantry settings (signing key, check TTL, Redis and
    /// registry variables): only Gantry's own components read them.
    pub gantry_env: bool,
    /// Files (name, contents) written before an instance starts, readable
    /// by this user only (0600): secrets that must not be on a command line
    /// every user can see (`ps`). `{file:<name>}` is where one is: in the
    /// stack's directory for a command, copied into an image's container.
    pub files: Vec<(String, String)>,
}

impl ServiceSpec {
    /// A service run as `program args…`, one replica, ready when its port
    /// accepts connections, registered by itself.
    pub fn command<I, S>(name: impl Into<String>, program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_run(
            name,
            Run::Command {
                program: program.into(),
                args: args.into_iter().map(Into::into).collect(),
            },
        )
    }

    /// A service run from a container `image` listening on `port` inside it.
    pub fn image(name: impl Into<String>, image: impl Into<String>, port: u16) -> Self {
        Self::with_run(
            name,
            Run::Image {
                image: image.into(),
                port,
                args: Vec::new(),
                mounts: Vec::new(),
            },
        )
    }

    fn with_run(name: impl Into<String>, run: Run) -> Self {
        Self {
            name: name.into(),
            run,
            replicas: 1,
            env: Vec::new(),
            instance_env: Vec::new(),
            workdir: None,
            ready: Ready::Tcp,
            registration: Registration::SelfRegisters,
            ready_timeout: READY_TIMEOUT,
            port: None,
            admin_port: false,
            publish_udp: None,
            gantry_env: false,
            files: Vec::new(),
        }
    }

    /// One of Gantry's own components (`auth`, `user`), run as
    /// `gantry serve <component>`: registers itself, ready when passing.
    pub fn gantry(binary: impl Into<PathBuf>, component: &str) -> Self {
        let mut spec = Self::command(component, binary, ["serve", component]);
        spec.env = [("GANTRY_LISTEN", "{host}:{port}"), ("GANTRY_INSTANCE_ID", "{id}")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec();
        spec.ready = Ready::Passing;
        spec.gantry_env = true;
        spec
    }

    /// Runs the image with `args` as its command instead of its own
    /// (placeholders filled per instance); for an image only.
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        if let Run::Image { args: command, .. } = &mut self.run {
            *command = args.into_iter().map(Into::into).collect();
        }
        self
    }

    /// Lets the container see `host` at `inside` (read-only when
    /// `read_only`); for an image only.
    pub fn mount(mut self, host: impl Into<PathBuf>, inside: impl Into<String>, read_only: bool) -> Self {
        if let Run::Image { mounts, .. } = &mut self.run {
            mounts.push(Mount {
                host: host.into(),
                inside: inside.into(),
                read_only,
            });
        }
        self
    }

    /// Runs `n` instances.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// Adds an environment variable of every instance (placeholders filled).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds an environment variable of instance `n` (1-based) only.
    pub fn instance_env(mut self, n: usize, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.instance_env.push((n, key.into(), value.into()));
        self
    }

    /// Runs the command in `dir` (placeholders filled).
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// How the harness knows an instance is ready (a port that accepts
    /// connections unless told).
    pub fn ready(mut self, ready: Ready) -> Self {
        self.ready = ready;
        self
    }

    /// How an instance gets into the registry (it registers itself unless told).
    pub fn registration(mut self, registration: Registration) -> Self {
        self.registration = registration;
        self
    }

    /// How long an instance may take to become ready ([`READY_TIMEOUT`] unless told).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Instance 1's port (the others get free ones).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Gives each instance a second free port for an operator listener
    /// (`{admin_port}`), where [`Ready::Http`] is probed.
    pub fn with_admin_port(mut self) -> Self {
        self.admin_port = true;
        self
    }

    /// Publishes the image's UDP port `inside` on the host at the
    /// instance's second port (`{admin_port}`, which this turns on).
    pub fn publish_udp(mut self, inside: u16) -> Self {
        self.admin_port = true;
        self.publish_udp = Some(inside);
        self
    }

    /// A private file (see [`ServiceSpec::files`]).
    pub fn file(mut self, name: impl Into<String>, contents: impl Into<String>) -> Self {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// Whether the spec names the gateway anywhere (`{gateway}`,
    /// `{url:gateway}`): it starts after the gateways.
    pub fn names_gateway(&self) -> bool {
        self.texts().iter().any(|(_, text)| placeholders::names_gateway(text))
    }

    /// The texts placeholders are filled in: environment, arguments, the
    /// working directory.
    pub(crate) fn texts(&self) -> Vec<(String, &str)> {
        let mut texts: Vec<(String, &str)> = self.env.iter().map(|(k, v)| (format!("env {k}"), v.as_str())).collect();
        texts.extend(
            self.instance_env
                .iter()
                .map(|(n, k, v)| (format!("env {k} of instance {n}"), v.as_str())),
        );
        let args = match &self.run {
            Run::Command { args, .. } | Run::Image { args, .. } => args,
        };
        texts.extend(args.iter().map(|a| ("an argument".to_owned(), a.as_str())));
        if let Some(w) = self.workdir.as_ref().and_then(|w| w.to_str()) {
            texts.push(("the working directory".into(), w));
        }
        texts
    }

    /// Everything that can be wrong with a spec before anything is started:
    /// a bad name, no replicas, an unknown placeholder, readiness the
    /// registration cannot give.
    pub fn validate(&self, has_redis: bool) -> Result<(), HarnessError> {
        let bad = |problem: String| HarnessError::BadSpec {
            service: self.name.clone(),
            problem,
        };
        if !gantry_common::name::is_service_name(&self.name) {
            return Err(bad(format!(
                "{:?} is not a service name: expected {}",
                self.name,
                gantry_common::name::SERVICE_NAME_RULE
            )));
        }
        if self.replicas == 0 {
            return Err(bad("replicas is 0: expected at least 1".into()));
        }
        if self.ready == Ready::Passing && self.registration == Registration::Unregistered {
            return Err(bad(
                "ready when passing in the registry, but it is not registered: expected another readiness or a registration"
                    .into(),
            ));
        }
        if self.ready == Ready::Healthcheck && !matches!(self.run, Run::Image { .. }) {
            return Err(bad(
                "ready when its container's HEALTHCHECK says healthy, but it is not an image: expected another readiness"
                    .into(),
            ));
        }
        // A stack file's relative paths are made absolute after this first
        // check; the start checks again.
        if let Run::Image { mounts, .. } = &self.run
            && let Some(m) = mounts.iter().find(|m| m.host.is_absolute() && !m.host.exists())
        {
            return Err(bad(format!(
                "mounts {}, which does not exist: expected a folder or file of the host",
                m.host.display()
            )));
        }
        let texts = self.texts();
        for (place, text) in texts {
            for name in placeholders::names_in(text) {
                if !placeholders::is_known(name) {
                    return Err(bad(format!(
                        "unknown placeholder {{{name}}} in {place}: expected one of {}",
                        placeholders::expected()
                    )));
                }
                if name == "redis" && !has_redis {
                    return Err(bad(format!("{{redis}} in {place}, but the stack has no Redis")));
                }
                if let Some(file) = name.strip_prefix("file:")
                    && !self.files.iter().any(|(f, _)| f == file)
                {
                    return Err(bad(format!("{{{name}}} in {place}, but the spec has no file {file:?}")));
                }
                if name == "admin_port" && !self.admin_port {
                    return Err(bad(format!(
                        "{{admin_port}} in {place}, but the spec asks for no admin port"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Checks that every `{url:…}` and `{addr:…}` in `specs` (in start order)
/// names a service started before the one that uses it, so a typo or a
/// wrong order is an error before anything starts, not an unfilled value
/// a service trips over later.
pub fn check_references(specs: &[(Role, ServiceSpec)]) -> Result<(), HarnessError> {
    let mut before: Vec<&str> = Vec::new();
    for (_, spec) in specs {
        for (_, text) in spec.texts() {
            for name in placeholders::names_in(text) {
                if name == placeholders::GATEWAY && !before.contains(&placeholders::GATEWAY) {
                    return Err(HarnessError::BadSpec {
                        service: spec.name.clone(),
                        problem: "{gateway} names the stack's gateway, and this stack has none (or the gateway itself names it)".into(),
                    });
                }
                let Some((kind, service)) = name.split_once(':') else {
                    continue;
                };
                if !placeholders::REFERENCES.contains(&kind) || before.contains(&service) {
                    continue;
                }
                let known = if before.is_empty() {
                    "none is started before it".to_owned()
                } else {
                    format!("expected one started before it: {}", before.join(", "))
                };
                return Err(HarnessError::BadSpec {
                    service: spec.name.clone(),
                    problem: format!(
                        "{{{name}}} names no service started before it ({known}); services start in the order given"
                    ),
                });
            }
        }
        before.push(&spec.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_to_a_service_not_started_before_is_refused_by_name() {
        let auth = ServiceSpec::command("auth", "auth", Vec::<String>::new());
        let notes = ServiceSpec::command("notes", "notes", Vec::<String>::new())
            .env("JWKS_URL", "{url:auth}/auth/.well-known/jwks.json");
        let role = |s: &ServiceSpec| Role::Service(s.name.clone());
        let in_order = [(role(&auth), auth.clone()), (role(&notes), notes.clone())];
        assert!(check_references(&in_order).is_ok());
        let e = check_references(&[(role(&notes), notes), (role(&auth), auth.clone())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("service notes") && e.contains("{url:auth}") && e.contains("none is started before"),
            "{e}"
        );
        let typo = ServiceSpec::command("notes", "notes", ["--jwks", "{url:auht}"]);
        let e = check_references(&[(role(&auth), auth), (role(&typo), typo)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("{url:auht}") && e.contains("before it: auth"), "{e}");
    }

    #[test]
    fn a_name_the_gateway_takes_the_harness_takes_too() {
        let api = ServiceSpec::command("api.v2", "api", Vec::<String>::new());
        assert!(api.validate(false).is_ok());
        let web = ServiceSpec::command("web", "web", ["--api", "{url:api.v2}"]);
        assert!(web.validate(false).is_ok());
        let role = |s: &ServiceSpec| Role::Service(s.name.clone());
        assert!(check_references(&[(role(&api), api.clone()), (role(&web), web)]).is_ok());
        let dots = ServiceSpec::command("..", "x", Vec::<String>::new());
        assert!(
            dots.validate(false)
                .unwrap_err()
                .to_string()
                .contains("not a service name")
        );
    }

    #[test]
    fn a_file_placeholder_names_a_file_of_the_spec() {
        let spec = ServiceSpec::command("redis", "redis-server", ["{file:redis.conf}"]);
        let e = spec.validate(true).unwrap_err().to_string();
        assert!(e.contains("no file \"redis.conf\""), "{e}");
        assert!(spec.file("redis.conf", "requirepass x\n").validate(true).is_ok());
    }

    #[test]
    fn a_spec_with_an_unknown_placeholder_is_refused_by_name() {
        let spec = ServiceSpec::command("greeter", "python3", ["-c", "x", "{prot}"]);
        let e = spec.validate(true).unwrap_err().to_string();
        assert!(
            e.contains("greeter") && e.contains("{prot}") && e.contains("{port}"),
            "{e}"
        );
    }

    #[test]
    fn redis_placeholder_needs_redis_and_passing_needs_a_registration() {
        let spec = ServiceSpec::command("a", "x", Vec::<String>::new()).env("R", "{redis}");
        assert!(spec.validate(true).is_ok());
        assert!(spec.validate(false).unwrap_err().to_string().contains("no Redis"));
        let spec = ServiceSpec::command("a", "x", Vec::<String>::new())
            .ready(Ready::Passing)
            .registration(Registration::Unregistered);
        assert!(spec.validate(true).unwrap_err().to_string().contains("not registered"));
        let spec = ServiceSpec::command("a b", "x", Vec::<String>::new());
        assert!(
            spec.validate(true)
                .unwrap_err()
                .to_string()
                .contains("not a service name")
        );
    }

    #[test]
    fn a_mount_is_written_as_docker_run_writes_it() {
        let m = Mount::parse("fixtures:/data:ro").unwrap();
        assert_eq!(
            (m.host.to_str(), m.inside.as_str(), m.read_only),
            (Some("fixtures"), "/data", true)
        );
        assert!(!Mount::parse("/srv/x:/x").unwrap().read_only);
        assert!(!Mount::parse("/srv/x:/x:rw").unwrap().read_only);
        for bad in ["fixtures", "fixtures:data", ":/data", "a:/b:rx", "a:/b:ro:z"] {
            let e = Mount::parse(bad).unwrap_err();
            assert!(e.contains("expected \"host-path:/path/inside[:ro|:rw]\""), "{bad}: {e}");
        }
        let spec = ServiceSpec::image("web", "web:1", 8080).mount("/no/such/folder/here", "/data", true);
        let e = spec.validate(false).unwrap_err().to_string();
        assert!(e.contains("mounts /no/such/folder/here, which does not exist"), "{e}");
        let e = ServiceSpec::command("web", "web", ["x"])
            .ready(Ready::Healthcheck)
            .validate(false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HEALTHCHECK") && e.contains("not an image"), "{e}");
    }
}
