//! nginx as a plain reverse proxy, for benchmarks that put the gateway side
//! by side with it: keep-alive on both legs, no access log, nothing else.

use std::path::Path;
use std::time::Duration;

use crate::error::HarnessError;
use crate::run::ports::free_port;
use crate::run::process::{Process, Spec};
use crate::run::wait;
use crate::stack::which;

/// A running nginx proxying every path to one upstream.
#[derive(Debug)]
pub struct Nginx {
    process: Process,
    url: String,
}

impl Nginx {
    /// Starts nginx from PATH in front of `upstream` (`host:port`), writing
    /// its configuration and logs under `dir`. `None` when nginx is not installed.
    pub async fn start(upstream: &str, dir: &Path) -> Result<Option<Self>, HarnessError> {
        let Some(program) =
            which("nginx").or_else(|| Some("/usr/sbin/nginx".into()).filter(|p: &std::path::PathBuf| p.is_file()))
        else {
            return Ok(None);
        };
        let port = free_port().map_err(|e| HarnessError::Io("finding a free port".into(), e))?;
        let dir = dir.join("nginx");
        std::fs::create_dir_all(&dir).map_err(|e| HarnessError::Io("creating nginx's directory".into(), e))?;
        let d = dir.display();
        let conf = format!(
            r#"worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream backend {{
        server {upstream};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| HarnessError::Io("writing nginx.conf".into(), e))?;
        let spec = Spec {
            name: "nginx".into(),
            program,
            args: vec!["-p".into(), d.to_string(), "-c".into(), conf_path.display().to_string()],
            env: vec![],
            log: dir.join("stderr.log"),
        };
        let mut process = Process::start(spec)?;
        let addr = format!("127.0.0.1:{port}");
        wait::until("nginx to listen", Duration::from_secs(10), Some(&mut process), || {
            let addr = addr.clone();
            async move { Ok(tokio::net::TcpStream::connect(&addr).await.is_ok()) }
        })
        .await?;
        Ok(Some(Self {
            process,
            url: format!("http://{addr}"),
        }))
    }

    /// Its URL: plain HTTP on a free loopback port.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The master's pid, which is also its workers' process group.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGTERM, then SIGKILL if it does not stop in time.
    pub async fn stop(mut self) -> Result<(), HarnessError> {
        self.process.stop().await
    }
}
