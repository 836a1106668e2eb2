//! ACLs, as Consul enforces them with `acl.enabled = true`,
//! `acl.default_policy = "deny"` and one management token
//! (`acl.tokens.initial_management`).
//!
//! | request carries | reads (`GET`) | writes (`PUT`, `POST`, `DELETE`) |
//! |---|---|---|
//! | the management token | everything | allowed |
//! | no token (Consul's anonymous token) | `200` with the results filtered out, and `X-Consul-Results-Filtered-By-ACLs: true` | `403 Permission denied: …` |
//! | any other token | `403 ACL not found` | `403 ACL not found` |
//!
//! The token is read, as Consul reads it, from `?token=` first, then the
//! `X-Consul-Token` header, then `Authorization: Bearer`. `/v1/status/*`
//! needs no token (Consul's status endpoints require no ACL). Without a
//! configured token ACLs are off and anyone who can reach the port may write:
//! the registry then logs a warning.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The accessor id of Consul's anonymous token, named in its denials.
pub const ANONYMOUS_ACCESSOR_ID: &str = "00000000-0000-0000-0000-000000000002";
/// The header Consul sets when ACLs removed entries from a result.
pub const FILTERED_HEADER: &str = "X-Consul-Results-Filtered-By-ACLs";

/// What the request's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// ACLs are off: everything is allowed.
    Open,
    /// The management token.
    Management,
    /// No token with ACLs on: reads are filtered to nothing, writes refused.
    Anonymous,
}

impl Access {
    pub fn can_read(self) -> bool {
        !matches!(self, Access::Anonymous)
    }
}

/// The registry's ACL configuration.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    management: Option<String>,
}

impl Acl {
    /// ACLs on with `token` as the only (management) token; off when `None`.
    pub fn new(token: Option<String>) -> Self {
        Self {
            management: token.filter(|t| !t.is_empty()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.management.is_some()
    }

    /// What `presented` allows; `None` for a token the registry does not
    /// know (Consul answers those 403 "ACL not found").
    fn resolve(&self, presented: Option<&str>) -> Option<Access> {
        let Some(management) = &self.management else {
            return Some(Access::Open);
        };
        match presented.filter(|t| !t.is_empty()) {
            None => Some(Access::Anonymous),
            Some(t) if constant_time_eq(t.as_bytes(), management.as_bytes()) => Some(Access::Management),
            Some(_) => None,
        }
    }
}

/// The token a request presents: `?token=`, then `X-Consul-Token`, then
/// `Authorization: Bearer`, in Consul's order of precedence.
pub fn presented_token(req: &Request) -> Option<String> {
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| percent_decode(v))
    });
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    from_query
        .filter(|t| !t.is_empty())
        .or_else(|| header("X-Consul-Token").filter(|t| !t.is_empty()).map(str::to_owned))
        .or_else(|| {
            header(header::AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(|t| t.trim().to_owned())
        })
}

/// Axum middleware: resolves the token, refuses what it does not allow, and
/// hands the [`Access`] to the handlers (which filter reads).
pub async fn enforce(State(acl): State<Arc<Acl>>, mut req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/v1/status/") {
        return next.run(req).await;
    }
    let Some(access) = acl.resolve(presented_token(&req).as_deref()) else {
        return (StatusCode::FORBIDDEN, "ACL not found").into_response();
    };
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if !read && access == Access::Anonymous {
        let permission = if req.uri().path().starts_with("/v1/kv/") {
            "key:write"
        } else {
            "service:write"
        };
        return (
            StatusCode::FORBIDDEN,
            format!(
                "Permission denied: token with AccessorID '{ANONYMOUS_ACCESSOR_ID}' lacks permission '{permission}'"
            ),
        )
            .into_response();
    }
    req.extensions_mut().insert(access);
    next.run(req).await
}

/// Equal bytes, compared in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `%XX` and `+` decoding for a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_token_is_read_from_query_header_or_bearer_in_consuls_order() {
        assert_eq!(presented_token(&request("/v1/x", &[])), None);
        assert_eq!(
            presented_token(&request("/v1/x", &[("X-Consul-Token", "h")])).as_deref(),
            Some("h")
        );
        assert_eq!(
            presented_token(&request("/v1/x", &[("Authorization", "Bearer b")])).as_deref(),
            Some("b")
        );
        assert_eq!(
            presented_token(&request(
                "/v1/x?a=1&token=q%2Dq",
                &[("X-Consul-Token", "h"), ("Authorization", "Bearer b")]
            ))
            .as_deref(),
            Some("q-q"),
            "the query parameter wins, as in Consul"
        );
        assert_eq!(
            presented_token(&request(
                "/v1/x",
                &[("X-Consul-Token", "h"), ("Authorization", "Bearer b")]
            ))
            .as_deref(),
            Some("h")
        );
        assert_eq!(
            presented_token(&request("/v1/x", &[("Authorization", "Basic Zm9vOmJhcg==")])),
            None
        );
    }

    #[test]
    fn tokens_resolve_as_consul_resolves_them() {
        let off = Acl::new(None);
        assert_eq!(off.resolve(None), Some(Access::Open));
        assert_eq!(off.resolve(Some("anything")), Some(Access::Open));

        let on = Acl::new(Some("s3cret".into()));
        assert_eq!(on.resolve(None), Some(Access::Anonymous));
        assert_eq!(on.resolve(Some("")), Some(Access::Anonymous));
        assert_eq!(on.resolve(Some("s3cret")), Some(Access::Management));
        assert_eq!(on.resolve(Some("s3cre")), None);
        assert_eq!(on.resolve(Some("s3creT")), None);
    }

    #[test]
    fn percent_decoding_handles_escapes_and_leaves_bad_ones() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
