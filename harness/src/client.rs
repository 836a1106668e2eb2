//! A simulated user of the stack: its own session cookie and token, and the
//! calls of the HTTP contract.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// How a request proves who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    /// The `SESSION` cookie from the last login.
    Session,
    /// The access token from the last login, as `Authorization: Bearer`.
    Bearer,
}

/// One answer, kept whole so steps can look at any part of it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// `X-Instance-Id`: which instance answered.
    pub fn instance(&self) -> Option<&str> {
        self.headers.get("x-instance-id").and_then(|v| v.to_str().ok())
    }

    /// The `error` code of a JSON error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"].as_str().map(str::to_owned)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Self { status, headers, body }
    }
}

/// A user with a cookie jar of one cookie (`SESSION`) and the last token.
#[derive(Debug, Clone)]
pub struct UserClient {
    http: reqwest::Client,
    gateway: String,
    pub username: String,
    pub password: String,
    pub id: Option<String>,
    pub token: Option<String>,
    pub cookie: Option<String>,
}

impl UserClient {
    pub fn new(gateway: &str, username: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client without TLS always builds"),
            gateway: gateway.trim_end_matches('/').to_owned(),
            username: username.to_owned(),
            password: format!("{username}-correct-horse"),
            id: None,
            token: None,
            cookie: None,
        }
    }

    /// The same user, talking to another gateway (cookie and token kept).
    pub fn via(&self, gateway: &str) -> Self {
        let mut other = self.clone();
        other.gateway = gateway.trim_end_matches('/').to_owned();
        other
    }

    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    fn absorb_cookie(&mut self, headers: &HeaderMap) {
        for value in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let Some(pair) = value.split(';').next() else { continue };
            if let Some(v) = pair.strip_prefix("SESSION=") {
                self.cookie = (!v.is_empty()).then(|| format!("SESSION={v}"));
            }
        }
    }

    pub async fn register(&mut self) -> reqwest::Result<Answer> {
        let body = json!({"username": self.username, "password": self.password, "display_name": self.username});
        let answer = self.post_json("/auth/register", &body).await?;
        if answer.status == 201 {
            self.id = answer.json()["id"].as_str().map(str::to_owned);
        }
        Ok(answer)
    }

    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Result<Answer> {
        let url = format!("{}{path}", self.gateway);
        Ok(Answer::read(self.http.post(url).json(body).send().await?).await)
    }

    pub async fn login(&mut self) -> reqwest::Result<Answer> {
        let body = json!({"username": self.username, "password": self.password});
        self.login_with(body).await
    }

    pub async fn login_with(&mut self, body: Value) -> reqwest::Result<Answer> {
        let answer = self.post_json("/auth/login", &body).await?;
        if answer.status == 200 {
            self.token = answer.json()["access_token"].as_str().map(str::to_owned);
            self.absorb_cookie(&answer.headers);
        }
        Ok(answer)
    }

    /// `POST` with the given identity; cookies set by the answer are kept.
    pub async fn post(&mut self, path: &str, auth: Auth) -> reqwest::Result<Answer> {
        let req = self.http.post(format!("{}{path}", self.gateway));
        let answer = Answer::read(self.authorize(req, auth).send().await?).await;
        self.absorb_cookie(&answer.headers);
        if path == "/auth/refresh" && answer.status == 200 {
            self.token = answer.json()["access_token"].as_str().map(str::to_owned);
        }
        Ok(answer)
    }

    pub async fn get(&self, path: &str, auth: Auth) -> reqwest::Result<Answer> {
        self.get_with(path, auth, &[]).await
    }

    /// `GET` with extra headers.
    pub async fn get_with(&self, path: &str, auth: Auth, headers: &[(&str, &str)]) -> reqwest::Result<Answer> {
        let mut req = self.http.get(format!("{}{path}", self.gateway));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Ok(Answer::read(self.authorize(req, auth).send().await?).await)
    }

    /// `GET` with a token of the caller's choosing.
    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Result<Answer> {
        let req = self.http.get(format!("{}{path}", self.gateway)).bearer_auth(token);
        Ok(Answer::read(req.send().await?).await)
    }

    fn authorize(&self, req: reqwest::RequestBuilder, auth: Auth) -> reqwest::RequestBuilder {
        match auth {
            Auth::Anonymous => req,
            Auth::Session => match &self.cookie {
                Some(c) => req.header("cookie", c),
                None => req,
            },
            Auth::Bearer => match &self.token {
                Some(t) => req.bearer_auth(t),
                None => req,
            },
        }
    }
}
