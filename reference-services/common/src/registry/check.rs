//! Registering an instance on someone else's behalf, as an orchestrator
//! (Nomad, Kubernetes' consul-sync) does: with a check the registry runs
//! itself (HTTP or TCP) instead of a TTL the service heartbeats.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RegistryClient, RegistryError, ServiceRecord};
use crate::config;

/// How the registry learns whether an instance is healthy: Consul's three
/// kinds of agent check that a registration can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckDefinition {
    /// The service passes the check itself at least every `ttl`.
    Ttl { ttl: Duration },
    /// The registry sends `GET url` every `interval`; 2xx is passing,
    /// 429 warning, anything else (or no answer within `timeout`) critical.
    Http {
        url: String,
        interval: Duration,
        timeout: Duration,
    },
    /// The registry connects to `addr` (`host:port`) every `interval`.
    Tcp {
        addr: String,
        interval: Duration,
        timeout: Duration,
    },
}

/// What `PUT /v1/agent/service/register` tells the agent: the instance and
/// the check that tells the registry whether it is healthy. A service
/// registering itself carries a TTL check it heartbeats
/// ([`crate::registration::Registration`]); an orchestrator registering it
/// carries an HTTP or TCP check the registry runs.
#[derive(Debug, Clone)]
pub struct AgentRegistration {
    pub service: ServiceRecord,
    pub check: CheckDefinition,
    /// The registry removes the instance once its check has been critical this long.
    pub deregister_critical_after: Duration,
}

impl AgentRegistration {
    /// The instance with a TTL check it must pass more often than `ttl`.
    pub fn with_ttl(service: ServiceRecord, ttl: Duration, deregister_critical_after: Duration) -> Self {
        Self {
            service,
            check: CheckDefinition::Ttl { ttl },
            deregister_critical_after,
        }
    }

    /// The TTL of the check, when the service passes it itself.
    pub fn ttl(&self) -> Option<Duration> {
        match self.check {
            CheckDefinition::Ttl { ttl } => Some(ttl),
            _ => None,
        }
    }

    /// The check's id, as Consul names a service's own check.
    pub fn check_id(&self) -> String {
        self.service.check_id()
    }

    /// The JSON body of `PUT /v1/agent/service/register`, in Consul's shape.
    pub fn body(&self) -> serde_json::Value {
        let d = config::format_duration;
        let svc = &self.service;
        let mut check = serde_json::json!({
            "CheckID": self.check_id(),
            "DeregisterCriticalServiceAfter": d(self.deregister_critical_after),
        });
        let fields = match &self.check {
            CheckDefinition::Ttl { ttl } => serde_json::json!({ "Name": format!("{} TTL", svc.name), "TTL": d(*ttl) }),
            CheckDefinition::Http { url, interval, timeout } => serde_json::json!({
                "Name": format!("{} HTTP", svc.name), "HTTP": url, "Interval": d(*interval), "Timeout": d(*timeout),
            }),
            CheckDefinition::Tcp {
                addr,
                interval,
                timeout,
            } => serde_json::json!({
                "Name": format!("{} TCP", svc.name), "TCP": addr, "Interval": d(*interval), "Timeout": d(*timeout),
            }),
        };
        if let (Some(check), serde_json::Value::Object(fields)) = (check.as_object_mut(), fields) {
            check.extend(fields);
        }
        serde_json::json!({
            "ID": svc.id,
            "Name": svc.name,
            "Address": svc.address,
            "Port": svc.port,
            "Tags": svc.tags,
            "Meta": svc.meta,
            "Check": check,
        })
    }
}

/// One check of one instance, as `/v1/health/service/<name>` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckState {
    #[serde(rename = "CheckID")]
    pub check_id: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
    /// What the check last saw (an HTTP answer, a connection error, a TTL note).
    #[serde(default)]
    pub output: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    #[serde(default)]
    checks: Vec<CheckState>,
}

impl RegistryClient {
    /// Registers (or re-registers) `reg` with its check, replacing any
    /// checks it had. An HTTP or TCP check starts critical until it first passes.
    pub async fn register_agent(&self, reg: &AgentRegistration) -> Result<(), RegistryError> {
        let req = self
            .request(
                reqwest::Method::PUT,
                "/v1/agent/service/register?replace-existing-checks=true",
            )
            .timeout(super::DEFAULT_CALL_TIMEOUT)
            .json(&reg.body());
        self.send("service register", req).await.map(drop)
    }

    /// Every check of every instance of `service` (the node's checks included),
    /// with their output: what to show when an instance does not pass.
    pub async fn service_checks(&self, service: &str) -> Result<Vec<CheckState>, RegistryError> {
        let req = self
            .request(reqwest::Method::GET, &format!("/v1/health/service/{service}"))
            .timeout(super::DEFAULT_CALL_TIMEOUT);
        let resp = self.send("health query", req).await?;
        let entries: Vec<Entry> = resp.json().await.map_err(|source| RegistryError::Decode {
            what: "health query".into(),
            source,
        })?;
        Ok(entries.into_iter().flat_map(|e| e.checks).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn reg(check: CheckDefinition) -> AgentRegistration {
        AgentRegistration {
            service: ServiceRecord {
                id: "greeter-1".into(),
                name: "greeter".into(),
                address: "127.0.0.1".into(),
                port: 9000,
                tags: vec!["v1".into()],
                meta: BTreeMap::from([("team".into(), "a".into())]),
            },
            check,
            deregister_critical_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn http_check_has_consuls_shape() {
        let body = reg(CheckDefinition::Http {
            url: "http://127.0.0.1:9000/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        })
        .body();
        assert_eq!(body["ID"], "greeter-1");
        assert_eq!(body["Port"], 9000);
        assert_eq!(body["Meta"]["team"], "a");
        let check = &body["Check"];
        assert_eq!(check["CheckID"], "service:greeter-1");
        assert_eq!(check["HTTP"], "http://127.0.0.1:9000/health");
        assert_eq!(check["Interval"], "1s");
        assert_eq!(check["Timeout"], "500ms");
        assert_eq!(check["DeregisterCriticalServiceAfter"], "30s");
        assert!(check.get("TCP").is_none() && check.get("TTL").is_none(), "{check}");
    }

    #[test]
    fn tcp_and_ttl_checks_have_consuls_shape() {
        let tcp = reg(CheckDefinition::Tcp {
            addr: "127.0.0.1:9000".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
        })
        .body();
        assert_eq!(tcp["Check"]["TCP"], "127.0.0.1:9000");
        assert_eq!(tcp["Check"]["Interval"], "2s");
        let ttl = reg(CheckDefinition::Ttl {
            ttl: Duration::from_secs(5),
        })
        .body();
        assert_eq!(ttl["Check"]["TTL"], "5s");
        assert!(ttl["Check"].get("HTTP").is_none());
    }
}
