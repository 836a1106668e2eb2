//! Route: the first stage. Which route a request is on, from its host,
//! path and method, with no allocation.

use http::request::Parts;

use crate::routes::Lookup;
use crate::snapshot::Routing;

/// The route a request, normalised by [`super::normalize`], is on in
/// `routing`, or why there is none.
pub fn find<'a>(routing: &'a Routing, req: &Parts) -> Lookup<'a> {
    routing.table.find(host(req), req.uri.path(), &req.method)
}

/// The host a request is for: the absolute-form URI's authority if it has
/// one (RFC 9112 §3.2.2: it wins over `Host`), else the `Host` header.
fn host(req: &Parts) -> Option<&str> {
    match req.uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => req.headers.get(http::header::HOST)?.to_str().ok(),
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn parts(req: Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn the_absolute_form_authority_wins_over_the_host_header() {
        let req = parts(
            Request::get("http://a.example:8080/x")
                .header("host", "b.example")
                .body(())
                .unwrap(),
        );
        assert_eq!(host(&req), Some("a.example:8080"));
        let req = parts(Request::get("/x").header("host", "b.example").body(()).unwrap());
        assert_eq!(host(&req), Some("b.example"));
        let req = parts(Request::get("/x").body(()).unwrap());
        assert_eq!(host(&req), None);
    }
}
