//! A simulated user of the stack: its own session cookie and token, and the
//! calls of the HTTP contract. How it logs in (paths, field names, where the
//! token is, the cookie's name) is a [`LoginFlow`]: Gantry's by default, any
//! service's that logs in with a JSON body otherwise.

use std::path::Path;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

/// Gantry's registration path.
pub const DEFAULT_REGISTER_PATH: &str = "/auth/register";
/// Gantry's login path.
pub const DEFAULT_LOGIN_PATH: &str = "/auth/login";
/// Gantry's refresh path: a new token comes back from it too.
pub const DEFAULT_REFRESH_PATH: &str = "/auth/refresh";
/// The JSON field login and registration take the user name in.
pub const DEFAULT_USERNAME_FIELD: &str = "username";
/// The JSON field login and registration take the password in.
pub const DEFAULT_PASSWORD_FIELD: &str = "password";
/// Where Gantry's login answer has the access token (an RFC 6901 JSON pointer).
pub const DEFAULT_TOKEN_POINTER: &str = "/access_token";
/// Gantry's session cookie.
pub const DEFAULT_COOKIE_NAME: &str = "SESSION";
/// How long one request may take before the client gives up: a stalled
/// stack fails a step instead of hanging it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a body a failure message quotes.
pub const BODY_EXCERPT: usize = 300;

/// The builder of every client the harness sends to a gateway with: rustls
/// with the system's roots, `GANTRY_CA_CERT`'s CA, and `ca_cert` (a stack's
/// own CA, [`crate::Stack::ca_cert`]), so `https://` gateways work the same
/// as `http://` ones.
///
/// # Panics
/// When `GANTRY_CA_CERT` or `ca_cert` is not a readable PEM certificate: a
/// test's configuration error, said with the variable or file and why.
pub fn http_builder(ca_cert: Option<&Path>) -> reqwest::ClientBuilder {
    gantry_common::tls::client_builder_trusting(ca_cert).unwrap_or_else(|e| panic!("{e}"))
}

/// [`http_builder`] with [`DEFAULT_REQUEST_TIMEOUT`], built.
pub fn http_client(ca_cert: Option<&Path>) -> reqwest::Client {
    http_builder(ca_cert)
        .timeout(DEFAULT_REQUEST_TIMEOUT)
        .build()
        .unwrap_or_else(|e| panic!("building an HTTP client: {e}"))
}

/// How a service logs users in: where to post, which JSON fields carry the
/// name and password, where the token is in the answer and what the session
/// cookie is called. The default is Gantry's auth service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFlow {
    /// Where registration is posted (used only by steps that register).
    pub register_path: String,
    /// Where the name and password are posted to log in.
    pub login_path: String,
    /// A path whose 200 answer carries a new token (at `token_pointer`).
    pub refresh_path: Option<String>,
    /// The JSON field the login and registration bodies carry the user name in.
    pub username_field: String,
    /// The JSON field the login and registration bodies carry the password in.
    pub password_field: String,
    /// RFC 6901 pointer to the token in the login answer; `None` when the
    /// service gives only a cookie.
    pub token_pointer: Option<String>,
    /// The session cookie kept from `Set-Cookie`; `None` when the service
    /// gives only a token.
    pub cookie_name: Option<String>,
}

impl Default for LoginFlow {
    fn default() -> Self {
        Self {
            register_path: DEFAULT_REGISTER_PATH.into(),
            login_path: DEFAULT_LOGIN_PATH.into(),
            refresh_path: Some(DEFAULT_REFRESH_PATH.into()),
            username_field: DEFAULT_USERNAME_FIELD.into(),
            password_field: DEFAULT_PASSWORD_FIELD.into(),
            token_pointer: Some(DEFAULT_TOKEN_POINTER.into()),
            cookie_name: Some(DEFAULT_COOKIE_NAME.into()),
        }
    }
}

impl LoginFlow {
    /// `{"<username_field>": username, "<password_field>": password}`.
    pub fn body(&self, username: &str, password: &str) -> Value {
        let mut body = Map::new();
        body.insert(self.username_field.clone(), username.into());
        body.insert(self.password_field.clone(), password.into());
        Value::Object(body)
    }

    /// The token in a login (or refresh) answer, if the flow has one there.
    pub fn token_in(&self, answer: &Answer) -> Option<String> {
        let pointer = self.token_pointer.as_deref()?;
        answer.json().pointer(pointer)?.as_str().map(str::to_owned)
    }
}

/// How a request proves who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Neither cookie nor token: a caller who never logged in.
    Anonymous,
    /// The session cookie (`SESSION` in Gantry) from the last login.
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
    /// `<name>=<value>` (`SESSION=<id>` in Gantry), as sent in `Cookie`.
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
    /// The cookie's name, e.g. `SESSION`.
    pub name: String,
    /// Its value, trimmed; empty when the server clears the cookie.
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

/// What a request was, so a failure can say what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The request's method.
    pub method: reqwest::Method,
    /// The whole URL it went to.
    pub url: String,
    /// The `X-Request-Id` the request carried, if any (the gateway's own
    /// comes back in the answer's headers).
    pub request_id: Option<String>,
    /// The trace-id of the `traceparent` it carried ([`Answer::send`] gives
    /// every request one), to find it in every hop's log.
    pub trace_id: Option<String>,
}

/// One answer, kept whole so steps can look at any part of it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// Every header of the answer.
    pub headers: HeaderMap,
    /// The whole body as text ("" when it could not be read).
    pub body: String,
    /// The request it answers, when it was sent through [`Answer::send`].
    pub sent: Option<Sent>,
}

impl Answer {
    /// The body parsed as JSON; `Null` when it is not JSON, so a pointer
    /// into it finds nothing instead of failing.
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

    /// The value of header `name` (the first, when repeated); `None` when
    /// absent or not visible ASCII.
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
        Self {
            status,
            headers,
            body,
            sent: None,
        }
    }

    /// Sends `req` and reads the whole answer, remembering what was sent.
    pub async fn send(req: reqwest::RequestBuilder) -> reqwest::Result<Self> {
        let (client, request) = req.build_split();
        let mut request = request?;
        // A trace of its own, so the failure message can name a trace-id
        // that every service's log line for this request carries.
        let trace = match gantry_common::trace::TraceParent::from_headers(request.headers()) {
            Some(given) => given,
            None => {
                let new = gantry_common::trace::TraceParent::new_root();
                request
                    .headers_mut()
                    .insert(gantry_common::trace::TRACEPARENT.clone(), new.to_header());
                new
            }
        };
        let sent = Sent {
            method: request.method().clone(),
            url: request.url().to_string(),
            request_id: request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            trace_id: Some(trace.trace_id_hex()),
        };
        let mut answer = Self::read(client.execute(request).await?).await;
        answer.sent = Some(sent);
        Ok(answer)
    }

    /// What was sent and what came back, for a failure message: method,
    /// URL and request id, then status and the start of the body.
    pub fn describe(&self) -> String {
        let request_id = self
            .sent
            .as_ref()
            .and_then(|s| s.request_id.as_deref())
            .or_else(|| self.header("x-request-id"));
        let request = match &self.sent {
            Some(sent) => format!("{} {}", sent.method, sent.url),
            None => "a request".to_owned(),
        };
        let trace_id = self.sent.as_ref().and_then(|s| s.trace_id.as_deref());
        let id = match (request_id, trace_id) {
            (Some(id), Some(trace)) => format!(" (X-Request-Id {id}, trace-id {trace})"),
            (Some(id), None) => format!(" (X-Request-Id {id})"),
            (None, Some(trace)) => format!(" (trace-id {trace})"),
            (None, None) => String::new(),
        };
        format!("{request}{id} was answered {}: {}", self.status, self.excerpt())
    }

    /// The start of the body, at most [`BODY_EXCERPT`] bytes (cut at a
    /// character boundary), `<empty body>` when there is none.
    pub fn excerpt(&self) -> String {
        excerpt(&self.body)
    }
}

/// The start of `body` for a message, at most [`BODY_EXCERPT`] bytes.
pub fn excerpt(body: &str) -> String {
    if body.is_empty() {
        return "<empty body>".to_owned();
    }
    if body.len() <= BODY_EXCERPT {
        return body.to_owned();
    }
    let mut end = BODY_EXCERPT;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &body[..end], body.len())
}

/// A user with a cookie jar of one cookie (the flow's session cookie) and
/// the last token.
#[derive(Debug, Clone)]
pub struct UserClient {
    http: reqwest::Client,
    gateway: String,
    flow: LoginFlow,
    /// The name it registers and logs in with.
    pub username: String,
    /// The password it registers and logs in with.
    pub password: String,
    /// The user id registration answered with, once registered.
    pub id: Option<String>,
    /// The access token from the last login or refresh, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// The session cookie as `<name>=<value>`, sent in `Cookie`; `None`
    /// before a login and after the server clears it.
    pub cookie: Option<String>,
    /// The last `Set-Cookie` for the session cookie this client was given
    /// (by login, refresh or logout), whole, attributes and all.
    pub session_set_cookie: Option<SetCookie>,
}

impl UserClient {
    /// A user of Gantry's login flow, with a password made from its name.
    pub fn new(gateway: &str, username: &str) -> Self {
        Self::with_flow(
            gateway,
            username,
            &format!("{username}-correct-horse"),
            LoginFlow::default(),
        )
    }

    /// A user who logs in as `flow` says.
    pub fn with_flow(gateway: &str, username: &str, password: &str, flow: LoginFlow) -> Self {
        Self {
            http: http_client(None),
            gateway: gateway.trim_end_matches('/').to_owned(),
            flow,
            username: username.to_owned(),
            password: password.to_owned(),
            id: None,
            token: None,
            cookie: None,
            session_set_cookie: None,
        }
    }

    /// The same user, trusting `ca_cert` too: for a stack with its own CA
    /// ([`crate::Stack::ca_cert`]); `None` changes nothing.
    pub fn trusting(mut self, ca_cert: Option<&Path>) -> Self {
        if ca_cert.is_some() {
            self.http = http_client(ca_cert);
        }
        self
    }

    /// The same user, talking to another gateway (cookie and token kept).
    pub fn via(&self, gateway: &str) -> Self {
        let mut other = self.clone();
        other.gateway = gateway.trim_end_matches('/').to_owned();
        other
    }

    /// The gateway URL its paths go after (no trailing `/`).
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// How it logs in.
    pub fn flow(&self) -> &LoginFlow {
        &self.flow
    }

    /// A copy of the cookie and token this client holds now.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            cookie: self.cookie.clone(),
            token: self.token.clone(),
        }
    }

    /// As a browser does: the session cookie set with a value is kept, one
    /// set empty (logout's `SESSION=; Max-Age=0`) is dropped.
    pub fn absorb_cookie(&mut self, headers: &HeaderMap) {
        let Some(name) = self.flow.cookie_name.clone() else {
            return;
        };
        for value in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let Some(cookie) = SetCookie::parse(value).filter(|c| c.name == name) else {
                continue;
            };
            let expired = cookie.attribute("Max-Age").is_some_and(|a| a.trim() == "0");
            self.cookie = (!cookie.value.is_empty() && !expired).then(|| format!("{name}={}", cookie.value));
            self.session_set_cookie = Some(cookie);
        }
    }

    /// Registers at the flow's registration path; the answer's `id`, if
    /// any, is kept.
    pub async fn register(&mut self) -> reqwest::Result<Answer> {
        let path = self.flow.register_path.clone();
        let body = self.flow.body(&self.username, &self.password);
        let answer = self.post_json(&path, &body).await?;
        if (200..300).contains(&answer.status) {
            self.id = answer.json()["id"].as_str().map(str::to_owned);
        }
        Ok(answer)
    }

    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Result<Answer> {
        let url = format!("{}{path}", self.gateway);
        Answer::send(self.http.post(url).json(body)).await
    }

    /// Logs in with its name and password; on 200 keeps the token and cookie.
    pub async fn login(&mut self) -> reqwest::Result<Answer> {
        let body = self.flow.body(&self.username, &self.password);
        self.login_with(body).await
    }

    /// Logs in with `body` as it is; on 200 keeps the token and cookie.
    pub async fn login_with(&mut self, body: Value) -> reqwest::Result<Answer> {
        let path = self.flow.login_path.clone();
        let answer = self.post_json(&path, &body).await?;
        if answer.status == 200 {
            self.token = self.flow.token_in(&answer);
            self.absorb_cookie(&answer.headers);
        }
        Ok(answer)
    }

    /// `POST` with the given identity; cookies set by the answer are kept.
    pub async fn post(&mut self, path: &str, auth: Auth) -> reqwest::Result<Answer> {
        let url = format!("{}{path}", self.gateway);
        self.call(self.http.post(url), auth).await
    }

    /// `req` (built by the caller, any method and URL) presenting `auth`.
    /// Like a browser, keeps the session cookie an answer sets or clears;
    /// a 200 from the refresh path gives the new token.
    pub async fn call(&mut self, req: reqwest::RequestBuilder, auth: Auth) -> reqwest::Result<Answer> {
        let answer = Answer::send(self.authorize(req, auth)).await?;
        self.absorb_cookie(&answer.headers);
        let refreshed = answer.sent.as_ref().is_some_and(|sent| {
            self.flow
                .refresh_path
                .as_deref()
                .is_some_and(|p| sent.url.strip_prefix(self.gateway.as_str()) == Some(p))
        });
        if refreshed && answer.status == 200 {
            self.token = self.flow.token_in(&answer);
        }
        Ok(answer)
    }

    /// A request builder on this client's HTTP client (its timeout and
    /// connection pool): `url` as given, or after the gateway when it is a path.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.gateway)
        } else {
            url.to_owned()
        };
        self.http.request(method, url)
    }

    /// `GET path` on the gateway, presenting `auth`; nothing of the answer is kept.
    pub async fn get(&self, path: &str, auth: Auth) -> reqwest::Result<Answer> {
        self.get_with(path, auth, &[]).await
    }

    /// `GET` with extra headers.
    pub async fn get_with(&self, path: &str, auth: Auth, headers: &[(&str, &str)]) -> reqwest::Result<Answer> {
        let mut req = self.http.get(format!("{}{path}", self.gateway));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Answer::send(self.authorize(req, auth)).await
    }

    /// `GET` with a token of the caller's choosing.
    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Result<Answer> {
        let req = self.http.get(format!("{}{path}", self.gateway)).bearer_auth(token);
        Answer::send(req).await
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
        Answer::send(req).await
    }

    fn authorize(&self, req: reqwest::RequestBuilder, auth: Auth) -> reqwest::RequestBuilder {
        present(req, auth, self.cookie.as_deref(), self.token.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::{Answer, Auth, Credentials, LoginFlow, SetCookie, UserClient};
    use reqwest::header::{HeaderMap, HeaderValue};
    use serde_json::json;

    fn answer(body: &str) -> Answer {
        Answer {
            status: 200,
            headers: HeaderMap::new(),
            body: body.to_owned(),
            sent: None,
        }
    }

    #[test]
    fn another_login_flow_names_its_own_fields_token_and_cookie() {
        let flow = LoginFlow {
            username_field: "email".into(),
            password_field: "secret".into(),
            token_pointer: Some("/data/jwt".into()),
            cookie_name: Some("sid".into()),
            ..LoginFlow::default()
        };
        assert_eq!(flow.body("a@b", "pw"), json!({"email": "a@b", "secret": "pw"}));
        assert_eq!(
            flow.token_in(&answer(r#"{"data":{"jwt":"t1"}}"#)).as_deref(),
            Some("t1")
        );
        assert_eq!(flow.token_in(&answer(r#"{"access_token":"t1"}"#)), None);
        let mut user = UserClient::with_flow("http://127.0.0.1:1", "a@b", "pw", flow);
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", HeaderValue::from_static("SESSION=not-ours; Path=/"));
        headers.append("set-cookie", HeaderValue::from_static("sid=ours; Path=/"));
        user.absorb_cookie(&headers);
        assert_eq!(user.cookie.as_deref(), Some("sid=ours"));
        assert_eq!(
            LoginFlow::default()
                .token_in(&answer(r#"{"access_token":"t2"}"#))
                .as_deref(),
            Some("t2")
        );
    }

    #[test]
    fn a_failure_description_names_the_request_and_quotes_the_answer() {
        let mut a = answer(&"é".repeat(400));
        a.status = 502;
        a.sent = Some(super::Sent {
            method: reqwest::Method::POST,
            url: "http://127.0.0.1:1/notes".into(),
            request_id: Some("r-1".into()),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        });
        let said = a.describe();
        assert!(
            said.starts_with(
                "POST http://127.0.0.1:1/notes (X-Request-Id r-1, trace-id 4bf92f3577b34da6a3ce929d0e0e4736) was answered 502: éé"
            ),
            "{said}"
        );
        assert!(said.ends_with("… (800 bytes)"), "{said}");
        assert_eq!(answer("").excerpt(), "<empty body>");
    }

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
