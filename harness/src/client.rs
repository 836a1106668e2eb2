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

/// What a client holds that proves who it is, copied: what a thief who
/// stole the cookie and the token has, to replay after the owner logged out
/// or refreshed. The owner's client keeps behaving like a browser (it drops
/// a cookie the server clears); a copy keeps the old values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `SESSION=<id>`, as sent in `Cookie`.
    pub cookie: Option<String>,
    /// The access token, as sent in `Authorization: Bearer`.
    pub token: Option<String>,
}

impl Credentials {
    /// True when it holds what `auth` presents (always for anonymous).
    pub fn holds(&self, auth: Auth) -> bool {
        match auth {
            Auth::Anonymous => true,
            Auth::Session => self.cookie.is_some(),
            Auth::Bearer => self.token.is_some(),
        }
    }
}

/// `req` presenting `cookie` (session) or `token` (bearer), never both;
/// unchanged when anonymous or when it lacks what `auth` presents.
fn present(
    req: reqwest::RequestBuilder,
    auth: Auth,
    cookie: Option<&str>,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match (auth, cookie, token) {
        (Auth::Session, Some(c), _) => req.header("cookie", c),
        (Auth::Bearer, _, Some(t)) => req.bearer_auth(t),
        _ => req,
    }
}

/// One `Set-Cookie` header: the cookie's name and value, and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// `(name, value)` in order; a flag such as `HttpOnly` has no value.
    pub attributes: Vec<(String, Option<String>)>,
}

impl SetCookie {
    /// Parses a `Set-Cookie` value (RFC 6265 §5.2); `None` without `name=`.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.split(';');
        let (name, value) = parts.next()?.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let attributes = parts
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
                None => (a.to_owned(), None),
            })
            .collect();
        Some(Self {
            name: name.to_owned(),
            value: value.trim().to_owned(),
            attributes,
        })
    }

    /// Whether attribute `name` is present, with or without a value
    /// (attribute names are case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.attributes.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The value of attribute `name` (the last one, as a browser takes it).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }
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

    /// Every `Set-Cookie` of the answer for cookie `name`, in order.
    pub fn set_cookies(&self, name: &str) -> Vec<SetCookie> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(SetCookie::parse)
            .filter(|c| c.name == name)
            .collect()
    }

    /// Reads a whole answer: status, headers and body as text.
    pub async fn read(resp: reqwest::Response) -> Self {
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
    /// The last `Set-Cookie` for `SESSION` this client was given (by login,
    /// refresh or logout), whole, attributes and all.
    pub session_set_cookie: Option<SetCookie>,
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
            session_set_cookie: None,
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

    /// A copy of the cookie and token this client holds now.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            cookie: self.cookie.clone(),
            token: self.token.clone(),
        }
    }

    /// As a browser does: a `SESSION` cookie set with a value is kept, one
    /// set empty (logout's `SESSION=; Max-Age=0`) is dropped.
    fn absorb_cookie(&mut self, headers: &HeaderMap) {
        for value in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let Some(cookie) = SetCookie::parse(value).filter(|c| c.name == "SESSION") else {
                continue;
            };
            let expired = cookie.attribute("Max-Age").is_some_and(|a| a.trim() == "0");
            self.cookie = (!cookie.value.is_empty() && !expired).then(|| format!("SESSION={}", cookie.value));
            self.session_set_cookie = Some(cookie);
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

    /// `method path` presenting `creds` as `auth` says (the cookie alone, or
    /// the token alone), whatever this client holds now; nothing of the
    /// answer is kept. A replay of copied credentials, e.g. after a logout
    /// made this client drop its cookie.
    pub async fn replay(
        &self,
        method: reqwest::Method,
        path: &str,
        creds: &Credentials,
        auth: Auth,
    ) -> reqwest::Result<Answer> {
        let req = self.http.request(method, format!("{}{path}", self.gateway));
        let req = present(req, auth, creds.cookie.as_deref(), creds.token.as_deref());
        Ok(Answer::read(req.send().await?).await)
    }

    fn authorize(&self, req: reqwest::RequestBuilder, auth: Auth) -> reqwest::RequestBuilder {
        present(req, auth, self.cookie.as_deref(), self.token.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::{Auth, Credentials, SetCookie, UserClient};
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn set_cookie_attributes_are_read_case_insensitively() {
        let c = SetCookie::parse("SESSION=abc; Path=/; HttpOnly; samesite=Lax; Max-Age=90; Secure").unwrap();
        assert_eq!((c.name.as_str(), c.value.as_str()), ("SESSION", "abc"));
        assert!(c.has("httponly") && c.has("Secure") && c.has("SameSite"));
        assert_eq!(c.attribute("SameSite"), Some("Lax"));
        assert_eq!(c.attribute("max-age"), Some("90"));
        assert_eq!(c.attribute("HttpOnly"), None, "a flag has no value");
        assert!(!c.has("Domain"));
        assert_eq!(SetCookie::parse("no-equals-sign"), None);
        assert_eq!(SetCookie::parse("SESSION=; Max-Age=0").unwrap().value, "");
    }

    #[test]
    fn a_cleared_cookie_is_dropped_but_a_copy_keeps_it() {
        let mut user = UserClient::new("http://127.0.0.1:1", "u");
        let mut headers = HeaderMap::new();
        headers.insert("set-cookie", HeaderValue::from_static("SESSION=abc; Path=/; HttpOnly"));
        user.absorb_cookie(&headers);
        assert_eq!(user.cookie.as_deref(), Some("SESSION=abc"));
        let copy = user.credentials();
        headers.insert("set-cookie", HeaderValue::from_static("SESSION=; Path=/; Max-Age=0"));
        user.absorb_cookie(&headers);
        assert_eq!(user.cookie, None);
        assert_eq!(
            user.session_set_cookie.as_ref().and_then(|c| c.attribute("Max-Age")),
            Some("0")
        );
        assert!(copy.holds(Auth::Session) && !copy.holds(Auth::Bearer));
        assert_eq!(
            copy,
            Credentials {
                cookie: Some("SESSION=abc".into()),
                token: None
            }
        );
    }
}
