//! The gateway's own endpoints. On the public listener only liveness,
//! readiness (status only) and the API description; on the admin listener
//! (`GANTRY_ADMIN_LISTEN`) what operators need: `/metrics` and the detailed
//! `/readyz`. Both iterate the services of the configuration in force.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use gantry_common::error::ApiError;
use http::{Method, Request, Response, StatusCode};

use crate::proxy::{Body, Gateway};
use crate::upstream::Ejection;

impl Gateway {
    /// The public listener's own endpoints, or `None` for a request to route.
    /// Checked before routing, so a catch-all route cannot hide them.
    pub(crate) fn public_endpoint(&self, method: &Method, path: &str) -> Option<Response<Body>> {
        if method != Method::GET {
            return None;
        }
        Some(match path {
            "/healthz" => self.own_body(StatusCode::OK, "application/json", r#"{"status":"ok"}"#.into()),
            // Status only: what is missing is for operators (admin listener).
            "/readyz" => {
                let (status, body) = if self.readiness().0 {
                    (StatusCode::OK, r#"{"status":"ready"}"#)
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not_ready"}"#)
                };
                self.own_body(status, "application/json", body.into())
            }
            "/openapi.json" => self.own_body(StatusCode::OK, "application/json", crate::openapi::DOCUMENT.into()),
            _ => return None,
        })
    }

    /// Answers a request to the admin listener: operator endpoints only.
    pub fn handle_admin<B>(&self, req: &Request<B>) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => {
                self.own_body(StatusCode::OK, "application/json", r#"{"status":"ok"}"#.into())
            }
            (&Method::GET, "/readyz") => {
                let (ready, body) = self.readiness();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                self.own_body(status, "application/json", body)
            }
            (&Method::GET, "/metrics") => {
                self.own_body(StatusCode::OK, "text/plain; version=0.0.4", self.render_metrics())
            }
            (&Method::GET, "/openapi.json") => self.own_body(
                StatusCode::OK,
                "application/json",
                crate::openapi::ADMIN_DOCUMENT.into(),
            ),
            _ => self.own_response(&ApiError::not_found("no such admin endpoint")),
        }
    }

    /// Whether the gateway is ready, and the detailed JSON body saying why
    /// not: every configured service answered by the registry with a
    /// passing instance, Redis reachable, and token keys when a route
    /// verifies callers.
    pub(crate) fn readiness(&self) -> (bool, String) {
        let routing = self.routing.load();
        let mut problems = Vec::new();
        let mut counts = serde_json::Map::new();
        for service in &routing.services {
            let name = &*service.name;
            let snap = service.upstream.snapshot.load();
            counts.insert(name.into(), snap.endpoints.len().into());
            if !snap.received {
                problems.push(format!("no registry answer yet for {name}"));
            } else if snap.endpoints.is_empty() {
                problems.push(format!("no passing instance of {name}"));
            }
        }
        let redis = self.redis_ok.load(Ordering::Relaxed);
        if !redis {
            problems.push("redis unreachable".to_owned());
        }
        let keys = self.identity.keys().current().len();
        if keys == 0 && routing.needs_identity {
            problems.push("no token verification keys yet (JWKS not fetched)".to_owned());
        }
        let ready = problems.is_empty();
        let body = serde_json::json!({
            "status": if ready { "ready" } else { "not_ready" },
            "instances": counts,
            "redis": if redis { "ok" } else { "unreachable" },
            "verification_keys": keys,
            "routes": routing.table.len(),
            "problems": problems,
        });
        (ready, body.to_string())
    }

    fn render_metrics(&self) -> String {
        let routing = self.routing.load();
        let mut out = String::with_capacity(4096);
        self.metrics.render_requests(&routing, &mut out);
        let series = [
            (
                "gantry_gateway_upstream_retries_total",
                "Retries on another instance.",
                0,
            ),
            (
                "gantry_gateway_upstream_retry_overflow_total",
                "Retries not made because the retry budget was spent.",
                1,
            ),
            (
                "gantry_gateway_upstream_ejections_overflow_total",
                "Ejections refused because max_ejection_percent of the instances were out.",
                2,
            ),
            (
                "gantry_gateway_upstream_failures_total",
                "Failed upstream attempts (errors, and answers that were retried).",
                3,
            ),
            (
                "gantry_gateway_upstream_connects_total",
                "Upstream connections opened (idle ones are reused).",
                4,
            ),
        ];
        for (name, help, which) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for s in &routing.services {
                let u = &s.upstream;
                let v = [
                    &u.retries,
                    &u.retry_overflow,
                    &u.ejections_overflow,
                    &u.failures,
                    &u.connects,
                ][which]
                    .load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{service=\"{}\"}} {v}", s.name);
            }
        }
        let name = "gantry_gateway_upstream_retries_in_flight_max";
        let _ = writeln!(
            out,
            "# HELP {name} The most retries in flight at once, against the retry budget.\n# TYPE {name} gauge"
        );
        for s in &routing.services {
            let v = s.upstream.retrying_peak.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{service=\"{}\"}} {v}", s.name);
        }
        let name = "gantry_gateway_upstream_ejections_total";
        let _ = writeln!(
            out,
            "# HELP {name} Instances ejected by outlier detection, by detector.\n# TYPE {name} counter"
        );
        for s in &routing.services {
            for why in Ejection::ALL {
                let v = s.upstream.ejections[why as usize].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{service=\"{}\",detector=\"{}\"}} {v}", s.name, why.name());
            }
        }
        out.push_str("# HELP gantry_gateway_upstream_requests_total Attempts sent to each current instance.\n");
        out.push_str("# TYPE gantry_gateway_upstream_requests_total counter\n");
        for s in &routing.services {
            for e in &s.upstream.snapshot.load().endpoints {
                let _ = writeln!(
                    out,
                    "gantry_gateway_upstream_requests_total{{service=\"{}\",instance=\"{}\"}} {}",
                    s.name,
                    e.id,
                    e.requests.load(Ordering::Relaxed)
                );
            }
        }
        let stats = &self.identity.stats;
        let sum = |read: fn(&crate::identity::IdentityStats) -> &std::sync::atomic::AtomicU64| -> u64 {
            stats.all().map(|s| read(s).load(Ordering::Relaxed)).sum()
        };
        let identity: [(&str, u64); 7] = [
            ("gantry_gateway_token_cache_hits_total", sum(|s| &s.token_hits)),
            ("gantry_gateway_token_cache_misses_total", sum(|s| &s.token_misses)),
            ("gantry_gateway_session_cache_hits_total", sum(|s| &s.session_hits)),
            ("gantry_gateway_session_lookups_total", sum(|s| &s.session_lookups)),
            ("gantry_gateway_revocations_total", sum(|s| &s.revocations)),
            (
                "gantry_gateway_denylist_unanswered_total",
                sum(|s| &s.denylist_unanswered),
            ),
            ("gantry_gateway_revocation_feed_lost_total", sum(|s| &s.feed_lost)),
        ];
        for (name, v) in identity {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP gantry_gateway_config_reloads_total Reloads of the routes file, by result.\n\
             # TYPE gantry_gateway_config_reloads_total counter\n\
             gantry_gateway_config_reloads_total{{result=\"ok\"}} {}\n\
             gantry_gateway_config_reloads_total{{result=\"error\"}} {}",
            self.reloads.ok.load(Ordering::Relaxed),
            self.reloads.error.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP gantry_gateway_connections_open Client connections open.\n\
             # TYPE gantry_gateway_connections_open gauge\n\
             gantry_gateway_connections_open {}\n\
             # HELP gantry_gateway_connections_refused_total Client connections refused at the connection cap.\n\
             # TYPE gantry_gateway_connections_refused_total counter\n\
             gantry_gateway_connections_refused_total {}",
            self.connections.open(),
            self.connections.refused()
        );
        out
    }
}
