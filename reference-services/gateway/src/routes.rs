//! The route table: which path prefix goes to which service, and whether it
//! needs an identity. Fixed and tiny, so matching is two prefix compares.

/// The services the gateway routes to, by index into per-service arrays.
pub const SERVICES: [&str; 2] = ["auth", "user"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Index into [`SERVICES`].
    pub service: usize,
    /// 401 without a verified identity.
    pub requires_identity: bool,
}

const TABLE: [(&str, Route); 2] = [
    (
        "/auth",
        Route {
            service: 0,
            requires_identity: false,
        },
    ),
    (
        "/users",
        Route {
            service: 1,
            requires_identity: true,
        },
    ),
];

/// The route for `path`: a prefix that matches whole segments, so `/users`
/// and `/users/me` match and `/usersx` does not.
pub fn find(path: &str) -> Option<Route> {
    TABLE.iter().find_map(|(prefix, route)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(*route)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(find("/users/me").map(|r| r.service), Some(1));
        assert_eq!(find("/users").map(|r| r.service), Some(1));
        assert!(find("/users/me").unwrap().requires_identity);
        assert_eq!(find("/auth/login").map(|r| r.service), Some(0));
        assert!(!find("/auth/login").unwrap().requires_identity);
        assert_eq!(find("/usersx"), None);
        assert_eq!(find("/"), None);
        assert_eq!(find("/internal/users"), None);
    }
}
