//! The request a step describes: a method and a path (or URL), then clauses
//! in any order: ` as "alice"`, ` by bearer`/` by session`,
//! ` with header "Name: value"`, ` with headers:` (a table of name and
//! value), ` with JSON {…}`, ` with JSON:` or ` with body:` (the step's
//! doc string). Parsed apart from sending, so a mistake in a feature gets a
//! clear message before anything is sent.

use cucumber::gherkin;
use serde_json::Value;

use crate::drive::client::Auth;

/// A request a step asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The HTTP method, as the step writes it (`GET`, `POST`, …).
    pub method: reqwest::Method,
    /// A path (sent to the gateway) or a whole `http://` URL.
    pub target: String,
    /// The named user it is sent as.
    pub user: Option<String>,
    /// How the user proves who they are, when the step says.
    pub auth: Option<Auth>,
    /// Headers (name, value) from `with header` and `with headers:`, in order.
    pub headers: Vec<(String, String)>,
    /// What is sent as the body.
    pub body: Body,
}

/// The body of a step's request.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body: the step has no `with JSON` or `with body:`.
    None,
    /// Sent with `Content-Type: application/json`.
    Json(Value),
    /// Sent as it is, with whatever `Content-Type` the headers give.
    Raw(String),
}

/// What is wrong with a step's request, said so the feature can be fixed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The method the step names cannot be an HTTP method (not a token).
    #[error("{0:?} is not an HTTP method")]
    Method(String),
    /// The text from here on is not a clause the step knows (a typo, or a
    /// missing quote).
    #[error(
        "expected ` as \"name\"`, ` by bearer|session`, ` with header \"Name: value\"`, ` with headers:`, ` with JSON …` or ` with body:` at {0:?}"
    )]
    Clause(String),
    /// A header, from `with header` or a table row, is not `Name: value`.
    #[error("the header {0:?} is not `Name: value`")]
    Header(String),
    /// The body given with `with JSON` does not parse as JSON.
    #[error("the JSON body is not JSON: {source}; it starts at {text:?}")]
    Json {
        /// The start of the text that was given.
        text: String,
        /// Where and why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A clause that refers to the step's table or doc string (`with
    /// headers:`, `with JSON:`, `with body:`), on a step that has none: the
    /// clause, and what is missing.
    #[error("the step says `{0}` but has no {1}")]
    Missing(&'static str, &'static str),
}

impl Call {
    /// `method target` followed by `clauses`, with the step's doc string or
    /// table where a clause refers to it.
    pub fn parse(method: &str, target: &str, clauses: &str, step: &gherkin::Step) -> Result<Self, CallError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| CallError::Method(method.into()))?;
        let mut call = Call {
            method,
            target: target.to_owned(),
            user: None,
            auth: None,
            headers: Vec::new(),
            body: Body::None,
        };
        let mut rest = clauses;
        while !rest.is_empty() {
            rest = call.clause(rest, step)?;
        }
        Ok(call)
    }

    /// Takes one clause off the front of `text`, returning what follows.
    fn clause<'t>(&mut self, text: &'t str, step: &gherkin::Step) -> Result<&'t str, CallError> {
        if let Some(rest) = text.strip_prefix(" as \"") {
            let (name, rest) = quoted(rest).ok_or_else(|| CallError::Clause(text.into()))?;
            self.user = Some(name.to_owned());
            return Ok(rest);
        }
        if let Some(rest) = text.strip_prefix(" by bearer") {
            self.auth = Some(Auth::Bearer);
            return Ok(rest);
        }
        if let Some(rest) = text.strip_prefix(" by session") {
            self.auth = Some(Auth::Session);
            return Ok(rest);
        }
        if let Some(rest) = text.strip_prefix(" with header \"") {
            let (header, rest) = quoted(rest).ok_or_else(|| CallError::Clause(text.into()))?;
            let (name, value) = header.split_once(':').ok_or_else(|| CallError::Header(header.into()))?;
            self.headers.push((name.trim().to_owned(), value.trim().to_owned()));
            return Ok(rest);
        }
        if let Some(rest) = text.strip_prefix(" with headers:") {
            let table = step
                .table
                .as_ref()
                .ok_or(CallError::Missing("with headers:", "table"))?;
            for row in &table.rows {
                match row.as_slice() {
                    [name, value] => self.headers.push((name.trim().to_owned(), value.trim().to_owned())),
                    other => return Err(CallError::Header(other.join(" | "))),
                }
            }
            return Ok(rest);
        }
        if let Some(rest) = text.strip_prefix(" with JSON:") {
            let doc = step
                .docstring
                .as_ref()
                .ok_or(CallError::Missing("with JSON:", "doc string"))?;
            let json = serde_json::from_str(doc).map_err(|source| CallError::Json {
                text: doc.chars().take(60).collect(),
                source,
            })?;
            self.body = Body::Json(json);
            return Ok(rest);
        }
        if let Some(rest) = text.strip_prefix(" with body:") {
            let doc = step
                .docstring
                .as_ref()
                .ok_or(CallError::Missing("with body:", "doc string"))?;
            self.body = Body::Raw(doc.clone());
            return Ok(rest);
        }
        if let Some(rest) = text.strip_prefix(" with JSON ") {
            // One JSON value, then possibly more clauses.
            let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
            let json = match values.next() {
                Some(Ok(json)) => json,
                Some(Err(source)) => {
                    return Err(CallError::Json {
                        text: rest.chars().take(60).collect(),
                        source,
                    });
                }
                None => return Err(CallError::Clause(text.into())),
            };
            self.body = Body::Json(json);
            return Ok(&rest[values.byte_offset()..]);
        }
        Err(CallError::Clause(text.into()))
    }
}

/// `name"rest` → `(name, rest)`.
fn quoted(text: &str) -> Option<(&str, &str)> {
    text.split_once('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(docstring: Option<&str>, table: Option<Vec<Vec<&str>>>) -> gherkin::Step {
        gherkin::Step {
            keyword: "When ".into(),
            ty: gherkin::StepType::When,
            value: String::new(),
            docstring: docstring.map(str::to_owned),
            table: table.map(|rows| gherkin::Table {
                rows: rows
                    .into_iter()
                    .map(|r| r.into_iter().map(str::to_owned).collect())
                    .collect(),
                span: Default::default(),
                position: Default::default(),
            }),
            span: Default::default(),
            position: Default::default(),
        }
    }

    #[test]
    fn clauses_come_in_any_order_and_json_may_be_followed_by_more() {
        let call = Call::parse(
            "POST",
            "/notes",
            r#" with JSON {"note": "a \" b", "n": [1, 2]} as "alice" with header "X-Foo: bar: baz" by session"#,
            &step(None, None),
        )
        .unwrap();
        assert_eq!(call.method, reqwest::Method::POST);
        assert_eq!(call.user.as_deref(), Some("alice"));
        assert_eq!(call.auth, Some(Auth::Session));
        assert_eq!(call.headers, [("X-Foo".to_owned(), "bar: baz".to_owned())]);
        assert_eq!(call.body, Body::Json(json!({"note": "a \" b", "n": [1, 2]})));
    }

    #[test]
    fn doc_strings_and_tables_give_bodies_and_headers() {
        let s = step(Some("{\"a\": 1}"), None);
        let call = Call::parse("PUT", "/x", " as \"bob\" with JSON:", &s).unwrap();
        assert_eq!(call.body, Body::Json(json!({"a": 1})));
        let call = Call::parse("POST", "/x", " with body:", &s).unwrap();
        assert_eq!(call.body, Body::Raw("{\"a\": 1}".into()));
        let t = step(None, Some(vec![vec!["X-A", "1"], vec!["X-B", "2"]]));
        let call = Call::parse("GET", "/x", " with headers:", &t).unwrap();
        assert_eq!(call.headers.len(), 2);
    }

    #[test]
    fn mistakes_in_a_feature_are_named() {
        let s = step(None, None);
        let e = Call::parse("GET", "/x", " with JSON {oops}", &s).unwrap_err();
        assert!(e.to_string().contains("is not JSON"), "{e}");
        let e = Call::parse("GET", "/x", " please", &s).unwrap_err();
        assert!(e.to_string().contains("\" please\""), "{e}");
        let e = Call::parse("GET", "/x", " with header \"no colon\"", &s).unwrap_err();
        assert!(matches!(e, CallError::Header(_)), "{e}");
        let e = Call::parse("POST", "/x", " with JSON:", &s).unwrap_err();
        assert!(e.to_string().contains("no doc string"), "{e}");
        assert!(Call::parse("G(T", "/x", "", &s).is_err());
    }
}
