//! Creating a profile in the user service, which owns `user:` keys. Auth
//! finds it through the registry and calls it with a short-lived service
//! token; it never writes another service's keys.
//!
//! The service token is typed `service+jwt` and carries the internal
//! audience, so whoever receives it (a real user instance, or anything that
//! managed to register as one) cannot replay it as a user's access token:
//! it is good only on internal routes, for one scope, for a minute.

use std::time::Duration;

use gantry_common::discovery::Discovered;
use gantry_common::http::X_REQUEST_ID;
use gantry_common::jwt::{Claims, Signer, TokenKind, now_secs, random_id, service_audience};
use gantry_common::trace::TRACEPARENT;
use serde::Serialize;

/// The user service's internal endpoint for new profiles.
pub const CREATE_PATH: &str = "/internal/users";
/// The scope a service token needs to create profiles.
pub const WRITE_SCOPE: &str = "users:write";

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("no user service instance is passing in the registry")]
    NoInstance,
    #[error("the user service failed: {0}")]
    Upstream(String),
}

#[derive(Serialize)]
pub struct NewProfile<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
}

pub struct Profiles {
    users: Discovered,
    http: reqwest::Client,
    issuer: String,
    audience: String,
}

impl Profiles {
    pub fn new(users: Discovered, issuer: String, audience: String) -> Self {
        Self {
            users,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client without TLS always builds"),
            issuer,
            audience,
        }
    }

    fn service_token(&self, signer: &Signer) -> String {
        let now = now_secs();
        signer.sign_as(
            TokenKind::Service,
            &Claims {
                sub: "service:auth".into(),
                iss: self.issuer.clone(),
                aud: service_audience(&self.audience),
                exp: now + 60,
                iat: now,
                nbf: Some(now),
                jti: random_id(16),
                username: None,
                scope: Some(WRITE_SCOPE.into()),
            },
        )
    }

    /// Creates the profile on the first instance that accepts it, trying the
    /// next one when an instance cannot be reached.
    pub async fn create(&self, signer: &Signer, profile: &NewProfile<'_>) -> Result<(), ProfileError> {
        let urls = self.users.base_urls();
        if urls.is_empty() {
            return Err(ProfileError::NoInstance);
        }
        let token = self.service_token(signer);
        // The request being answered goes on with its id and its trace, so
        // the user service's log line for this call can be found from auth's.
        let (request_id, traceparent) = gantry_common::http::outgoing_ids();
        let mut last = ProfileError::NoInstance;
        for base in urls.iter().take(3) {
            let sent = self
                .http
                .post(format!("{base}{CREATE_PATH}"))
                .bearer_auth(&token)
                .header(&X_REQUEST_ID, request_id.clone())
                .header(&TRACEPARENT, traceparent.clone())
                .json(profile)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    return Err(ProfileError::Upstream(format!("{status}: {body}")));
                }
                Err(e) => last = ProfileError::Upstream(e.to_string()),
            }
        }
        Err(last)
    }
}
