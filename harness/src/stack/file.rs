//! `stack.toml`: a stack described in a file, in the same terms as
//! [`ServiceSpec`], for `gantry up --config stack.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gantry_common::component::Component;
use gantry_common::file::{self, FileDuration, FileError};
use serde::Deserialize;

use super::builder::{GatewaySpec, StackBuilder};
use super::infra::{Infra, RegistryKind};
use super::spec::{Check, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT, DEFAULT_DEREGISTER_AFTER, Ready};
use super::spec::{READY_TIMEOUT, Registration, Run, ServiceSpec};

/// Why a stack file could not be used: which file, where, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum StackFileError {
    /// Unreadable, not TOML, or not a stack file's shape: the front end every
    /// Gantry file shares (`file:line:column`).
    #[error(transparent)]
    File(#[from] FileError),
    /// [`StackFile::with_program`] named a service the file does not run
    /// as a command: a typo, or an image or one of Gantry's own.
    #[error("{path}: there is no service {service:?} to run with {program}: expected one of {known}")]
    NoService {
        /// The stack file.
        path: PathBuf,
        /// The service that was named.
        service: String,
        /// The program it was to run.
        program: PathBuf,
        /// The services whose program can be replaced.
        known: String,
    },
    /// An environment variable that overrides the file has a value it
    /// cannot take, e.g. an unknown provider in [`INFRA_VAR`].
    #[error("{variable}={value:?}: {message}")]
    Env {
        /// The variable's name.
        variable: &'static str,
        /// The value it has.
        value: String,
        /// Why it cannot be used and what is expected.
        message: String,
    },
}

/// The variable that, when set, overrides a stack file's `[infra] provider`
/// (`auto`, `local` or `containers`), as it chooses for Gantry's own suite:
/// one CI job can run the same file on local processes and on containers.
pub const INFRA_VAR: &str = "GANTRY_INFRA";

/// A stack file. Every table and key is optional but `[[service]]`'s
/// `name` and one of `command`, `image` or `gantry`; unknown keys are errors.
/// Durations are written as `500ms`, `10s`, `5m`. Relative paths (a
/// command with a `/`, `workdir`, `routes`) are resolved against the file's
/// directory, which is also a service's working directory unless `workdir`
/// says otherwise. Values in `command`, `env` and `workdir` may use the
/// placeholders of [`ServiceSpec`] (`{port}`, `{id}`, `{registry}` …).
///
/// ```toml
/// [infra]
/// provider = "local"         # auto (default) | local | containers
/// redis = true               # default true
/// registry = "dev"           # consul-if-installed (default) | dev
/// fault_links = true         # default false: a fault proxy link in every hop
///                            # (see gantry_harness::faults), for fault steps
///
/// [[service]]                # started in the order written
/// name = "greeter"
/// command = ["python3", "greeter.py", "--port", "{port}"]
/// # image = "greeter:1"; port = 8080     (a container; port inside it)
/// # volumes = ["fixtures:/data:ro"]      (an image's bind mounts, relative to this file)
/// # args = ["serve", "--port", "8080"]   (an image's command instead of its own)
/// # gantry = "auth"                      (Gantry's own auth or user service)
/// replicas = 2               # default 1
/// workdir = "services"       # default: this file's directory
/// env = { GREETING = "hello from {id}" }
/// ready = { http = "/health" }   # or { tcp = true }, { healthcheck = true } (an image's
///                                # own HEALTHCHECK), { log = "listening" },
///                                # { log_regex = "listening on \\d+" }, { passing = true }
/// ready_timeout = "20s"      # default 30s
/// register = { by = "harness", check = { http = "/health", interval = "1s", timeout = "1s" },
///              deregister_after = "30s", tags = ["v1"], meta = { team = "a" } }
/// # register = { by = "self" } (default) | { by = "none" }; check = { tcp = true }
///
/// [gateway]                  # Gantry's gateway, started after every service
/// count = 1                  # default 1; 0 for none
/// port = 8000                # gateway 1's port; default a free one
/// routes = "routes.toml"     # passed as GANTRY_GATEWAY_CONFIG
/// env = { GANTRY_LB = "p2c" }
/// ready_timeout = "30s"
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StackFile {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Where Redis and the registry come from (`[infra] provider`).
    pub infra: Infra,
    /// Whether the stack runs Redis (`[infra] redis`).
    pub redis: bool,
    /// Which registry a local stack runs (`[infra] registry`).
    pub registry: RegistryKind,
    /// Whether every hop goes through a fault proxy link.
    pub fault_links: bool,
    /// The `[[service]]` tables, in the order they start.
    pub services: Vec<FileService>,
    /// The `[gateway]` table.
    pub gateway: GatewaySpec,
}

/// A service of a stack file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileService {
    /// The service as the file describes it, relative paths resolved.
    pub spec: ServiceSpec,
    /// Run as `gantry serve <component>` with the stack's `gantry` binary.
    pub gantry: bool,
}

impl StackFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, StackFileError> {
        Self::parse(&file::read(path)?, path)
    }

    /// Parses `text`, read from `path` (for messages and relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, StackFileError> {
        let raw: RawFile = file::parse(text, path)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Absolute: a relative program is looked up from the service's
        // working directory, which is not where `gantry up` runs.
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        let base = base.as_path();
        let resolve = |p: &Path| if p.is_absolute() { p.to_owned() } else { base.join(p) };
        let services = raw
            .service
            .into_iter()
            .map(|s| {
                let mut s = s.0;
                if let Run::Command { program, .. } = &mut s.spec.run
                    && program.components().count() > 1
                {
                    *program = resolve(program);
                }
                s.spec.workdir = Some(s.spec.workdir.as_deref().map_or_else(|| base.to_owned(), resolve));
                if let Run::Image { mounts, .. } = &mut s.spec.run {
                    for m in mounts {
                        m.host = resolve(&m.host);
                    }
                }
                s
            })
            .collect();
        let g = raw.gateway;
        let gateway = GatewaySpec {
            count: g.count.unwrap_or(1),
            port: g.port,
            routes: g.routes.as_deref().map(resolve),
            env: g.env.into_iter().collect(),
            instance_env: Vec::new(),
            ready_timeout: g.ready_timeout.map_or(READY_TIMEOUT, |d| d.0),
        };
        Ok(Self {
            path: path.to_owned(),
            infra: raw.infra.provider.map_or(Infra::Auto, |p| p.0),
            redis: raw.infra.redis.unwrap_or(true),
            registry: raw.infra.registry.unwrap_or_default().into(),
            fault_links: raw.infra.fault_links.unwrap_or(false),
            services,
            gateway,
        })
    }

    /// Runs `service` with `program` instead of the file's (same arguments,
    /// environment and the rest): how a test runs the binary cargo built for
    /// it, `env!("CARGO_BIN_EXE_<name>")`, while the file names the one a
    /// person runs by hand.
    pub fn with_program(mut self, service: &str, program: impl Into<PathBuf>) -> Result<Self, StackFileError> {
        let program = program.into();
        // Gantry's own services run the stack's `gantry`, whatever is set here.
        let found = self.services.iter_mut().find(|s| s.spec.name == service && !s.gantry);
        match found.map(|s| &mut s.spec.run) {
            Some(Run::Command { program: p, .. }) => {
                *p = program;
                Ok(self)
            }
            _ => {
                let known: Vec<&str> = self
                    .services
                    .iter()
                    .filter(|s| matches!(s.spec.run, Run::Command { .. }) && !s.gantry)
                    .map(|s| s.spec.name.as_str())
                    .collect();
                Err(StackFileError::NoService {
                    path: self.path.clone(),
                    service: service.to_owned(),
                    program,
                    known: if known.is_empty() {
                        "none: the file has no service with a command".to_owned()
                    } else {
                        known.join(", ")
                    },
                })
            }
        }
    }

    /// With `[infra] provider` replaced by [`INFRA_VAR`] when it is set.
    pub fn infra_from_env(self) -> Result<Self, StackFileError> {
        self.infra_from(std::env::var(INFRA_VAR).ok())
    }

    fn infra_from(mut self, value: Option<String>) -> Result<Self, StackFileError> {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.infra = value.parse().map_err(|message| StackFileError::Env {
                variable: INFRA_VAR,
                value,
                message,
            })?;
        }
        Ok(self)
    }

    /// The builder for this stack, with `binary` as the `gantry` executable.
    pub fn builder(&self, binary: impl Into<PathBuf>) -> StackBuilder {
        let binary = binary.into();
        let mut b = StackBuilder::empty(&binary)
            .infra(self.infra)
            .redis(self.redis)
            .registry(self.registry.clone())
            .fault_links(self.fault_links)
            .gateway(self.gateway.clone());
        for s in &self.services {
            let mut spec = s.spec.clone();
            if s.gantry
                && let Run::Command { program, .. } = &mut spec.run
            {
                program.clone_from(&binary);
            }
            b = b.service(spec);
        }
        b
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    infra: RawInfra,
    #[serde(default)]
    service: Vec<ServiceEntry>,
    #[serde(default)]
    gateway: RawGateway,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInfra {
    provider: Option<Provider>,
    redis: Option<bool>,
    registry: Option<RawRegistry>,
    fault_links: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum RawRegistry {
    #[default]
    ConsulIfInstalled,
    Dev,
}

impl From<RawRegistry> for RegistryKind {
    fn from(r: RawRegistry) -> Self {
        match r {
            RawRegistry::ConsulIfInstalled => RegistryKind::ConsulIfInstalled,
            RawRegistry::Dev => RegistryKind::Dev,
        }
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Provider(Infra);

impl TryFrom<String> for Provider {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(Provider)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    count: Option<usize>,
    port: Option<u16>,
    routes: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    ready_timeout: Option<FileDuration>,
}

#[derive(Deserialize)]
#[serde(try_from = "RawService")]
struct ServiceEntry(FileService);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    command: Option<Vec<String>>,
    image: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    volumes: Vec<String>,
    args: Option<Vec<String>>,
    gantry: Option<Component>,
    replicas: Option<usize>,
    workdir: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    ready: Option<RawReady>,
    ready_timeout: Option<FileDuration>,
    register: Option<RawRegister>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    http: Option<String>,
    tcp: Option<bool>,
    healthcheck: Option<bool>,
    log: Option<String>,
    log_regex: Option<String>,
    passing: Option<bool>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum By {
    #[serde(rename = "self")]
    Itself,
    Harness,
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegister {
    by: By,
    check: Option<RawCheck>,
    deregister_after: Option<FileDuration>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    http: Option<String>,
    tcp: Option<bool>,
    interval: Option<FileDuration>,
    timeout: Option<FileDuration>,
}

impl TryFrom<RawService> for ServiceEntry {
    type Error = String;
    fn try_from(r: RawService) -> Result<Self, String> {
        let name = r.name.clone();
        let within = |e: String| format!("service {name:?}: {e}");
        let (mut spec, gantry) = match (r.command, r.image, r.gantry) {
            (Some(command), None, None) => {
                let Some((program, args)) = command.split_first() else {
                    return Err(within("command is empty: expected [program, args…]".into()));
                };
                (ServiceSpec::command(&r.name, program, args.to_vec()), false)
            }
            (None, Some(image), None) => {
                let port = r.port.ok_or_else(|| {
                    within("image needs port: the port the service listens on inside its container".into())
                })?;
                (ServiceSpec::image(&r.name, image, port), false)
            }
            (None, None, Some(component)) => {
                if !component.is_service() {
                    return Err(within(format!(
                        "gantry = \"{component}\" is not a service: expected \"auth\" or \"user\" (the gateway is [gateway]; the registry is the stack's own; fault proxy links are [infra] fault_links)"
                    )));
                }
                let mut spec = ServiceSpec::gantry("gantry", component.name());
                spec.name.clone_from(&r.name);
                (spec, true)
            }
            (None, None, None) => {
                return Err(within(
                    "missing command: expected one of command, image or gantry".into(),
                ));
            }
            _ => return Err(within("expected only one of command, image or gantry".into())),
        };
        if r.port.is_some() && !matches!(spec.run, Run::Image { .. }) {
            spec.port = r.port;
        }
        match &mut spec.run {
            Run::Image { mounts, args, .. } => {
                if let Some(given) = r.args {
                    *args = given;
                }
                for v in &r.volumes {
                    mounts.push(crate::stack::spec::Mount::parse(v).map_err(|e| within(format!("volumes: {e}")))?);
                }
            }
            Run::Command { .. } if !r.volumes.is_empty() => {
                return Err(within(
                    "volumes are for an image: a command sees the host's files already".into(),
                ));
            }
            Run::Command { .. } if r.args.is_some() => {
                return Err(within("args are an image's command: a command's are in command".into()));
            }
            Run::Command { .. } => {}
        }
        if let Some(n) = r.replicas {
            spec.replicas = n;
        }
        spec.workdir = r.workdir;
        spec.env.extend(r.env);
        if let Some(ready) = r.ready {
            spec.ready = ready.into_ready().map_err(within)?;
        }
        if let Some(t) = r.ready_timeout {
            spec.ready_timeout = t.0;
        }
        if let Some(reg) = r.register {
            spec.registration = reg.into_registration().map_err(within)?;
        }
        spec.validate(true).map_err(|e| e.to_string())?;
        Ok(ServiceEntry(FileService { spec, gantry }))
    }
}

impl RawReady {
    fn into_ready(self) -> Result<Ready, String> {
        let mut found = Vec::new();
        if let Some(path) = self.http {
            found.push(Ready::http(path));
        }
        if self.tcp == Some(true) {
            found.push(Ready::Tcp);
        }
        if self.healthcheck == Some(true) {
            found.push(Ready::Healthcheck);
        }
        if let Some(text) = self.log {
            found.push(Ready::log_contains(text));
        }
        if let Some(pattern) = self.log_regex {
            found.push(Ready::log_matches(&pattern).map_err(|e| format!("ready.log_regex: {e}"))?);
        }
        if self.passing == Some(true) {
            found.push(Ready::Passing);
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            _ => Err("ready: expected exactly one of http, tcp, healthcheck, log, log_regex or passing".into()),
        }
    }
}

impl RawRegister {
    fn into_registration(self) -> Result<Registration, String> {
        match (self.by, self.check) {
            (By::Itself, None) => Ok(Registration::SelfRegisters),
            (By::None, None) => Ok(Registration::Unregistered),
            (By::Itself | By::None, Some(_)) => {
                Err("register.check is only for by = \"harness\" (a service registering itself brings its own)".into())
            }
            (By::Harness, None) => {
                Err("register: by = \"harness\" needs check = { http = \"/path\" } or { tcp = true }".into())
            }
            (By::Harness, Some(c)) => {
                let interval = c.interval.map_or(DEFAULT_CHECK_INTERVAL, |d| d.0);
                let timeout = c.timeout.map_or(DEFAULT_CHECK_TIMEOUT, |d| d.0);
                let check = match (c.http, c.tcp) {
                    (Some(path), None | Some(false)) => Check::Http {
                        path,
                        interval,
                        timeout,
                    },
                    (None, Some(true)) => Check::Tcp { interval, timeout },
                    _ => return Err("register.check: expected exactly one of http = \"/path\" or tcp = true".into()),
                };
                Ok(Registration::ByHarness {
                    check,
                    deregister_after: self.deregister_after.map_or(DEFAULT_DEREGISTER_AFTER, |d| d.0),
                    tags: self.tags,
                    meta: self.meta,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[service]]
name = "auth"
gantry = "auth"

[[service]]
name = "notes"
command = ["../../target/debug/notes", "--port", "{port}"]
"#;

    #[test]
    fn a_test_runs_its_own_build_of_a_service() {
        let file = StackFile::parse(FILE, Path::new("team/stack.toml")).unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            file.services[1].spec.run,
            Run::Command {
                program: here.join("team/../../target/debug/notes"),
                args: vec!["--port".into(), "{port}".into()]
            },
            "a relative program is resolved against the file's directory, made absolute"
        );
        let file = file.with_program("notes", "/built/notes").unwrap();
        assert_eq!(
            file.services[1].spec.run,
            Run::Command {
                program: "/built/notes".into(),
                args: vec!["--port".into(), "{port}".into()]
            }
        );
        for wrong in ["nots", "auth"] {
            let e = file.clone().with_program(wrong, "/built/x").unwrap_err().to_string();
            assert!(
                e.starts_with("team/stack.toml: there is no service") && e.contains("expected one of notes"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_images_volumes_are_resolved_against_the_file_and_a_commands_are_refused() {
        let text = "[[service]]\nname = \"web\"\nimage = \"web:1\"\nport = 8080\nvolumes = [\"fixtures:/data:ro\"]\nargs = [\"serve\", \"{id}\"]\nready = { healthcheck = true }\n";
        let file = StackFile::parse(text, Path::new("/team/stack.toml")).unwrap();
        let spec = &file.services[0].spec;
        assert_eq!(spec.ready, Ready::Healthcheck);
        let Run::Image { mounts, args, .. } = &spec.run else {
            panic!("an image")
        };
        assert_eq!(args, &["serve", "{id}"]);
        assert_eq!(mounts[0].host, Path::new("/team/fixtures"));
        assert!(mounts[0].read_only);
        let text = "[[service]]\nname = \"web\"\ncommand = [\"web\"]\nvolumes = [\"a:/b\"]\n";
        let e = StackFile::parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(e.contains("volumes are for an image"), "{e}");
        let text = "[[service]]\nname = \"web\"\nimage = \"web:1\"\nport = 1\nvolumes = [\"a\"]\n";
        let e = StackFile::parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(e.contains("volumes: \"a\": expected"), "{e}");
    }

    #[test]
    fn gantry_names_a_component_that_is_a_service() {
        let text = "[[service]]\nname = \"front\"\ngantry = \"gateway\"\n";
        let e = StackFile::parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(
            e.contains("gantry = \"gateway\" is not a service") && e.contains("[gateway]"),
            "{e}"
        );
        let text = "[[service]]\nname = \"front\"\ngantry = \"nginx\"\n";
        let e = StackFile::parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(e.contains("nginx") && e.contains("auth"), "{e}");
        let text = "[[service]]\nname = \"auth\"\ngantry = \"auth\"\n";
        assert!(StackFile::parse(text, Path::new("s.toml")).is_ok());
    }

    #[test]
    fn gantry_infra_overrides_the_provider_and_a_bad_value_is_named() {
        let file = StackFile::parse("[infra]\nprovider = \"local\"\n", Path::new("s.toml")).unwrap();
        assert_eq!(file.clone().infra_from(None).unwrap().infra, Infra::Local);
        assert_eq!(
            file.clone().infra_from(Some(String::new())).unwrap().infra,
            Infra::Local
        );
        let set = file.clone().infra_from(Some("containers".into())).unwrap();
        assert_eq!(set.infra, Infra::Containers);
        let e = file.infra_from(Some("cloud".into())).unwrap_err().to_string();
        assert!(
            e.starts_with("GANTRY_INFRA=\"cloud\"") && e.contains("expected auto, local or containers"),
            "{e}"
        );
    }
}
