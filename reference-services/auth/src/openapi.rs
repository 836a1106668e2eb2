//! The auth service's self-description, served at `/openapi.json`.

pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Gantry auth service", "version": "0.1.0"},
  "paths": {
    "/auth/register": {"post": {"summary": "Create an account; the profile is created in the user service",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
        "required": ["username", "password"],
        "properties": {"username": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{3,32}$"},
          "password": {"type": "string", "minLength": 8, "maxLength": 128},
          "display_name": {"type": "string", "maxLength": 64}}}}}},
      "responses": {"201": {"description": "created: {id, username}"}, "400": {"description": "weak or malformed"},
        "409": {"description": "username taken"},
        "503": {"description": "Redis or the user service unavailable, or busy: too many password hashes at once (see Retry-After)"}}}},
    "/auth/login": {"post": {"summary": "Log in: a JWT and a SESSION cookie",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
        "required": ["username", "password"], "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}}}},
      "responses": {"200": {"description": "{access_token, token_type, expires_in} and Set-Cookie"},
        "401": {"description": "invalid credentials (same body for unknown users)"},
        "429": {"description": "throttled for this username from this client address, or for this username everywhere; see Retry-After. The password was not checked"},
        "503": {"description": "busy: too many password hashes at once (see Retry-After), or Redis unavailable"}}}},
    "/auth/logout": {"post": {"summary": "End the session the cookie names and the session holding the bearer token, denylist their tokens, publish the revocation",
      "responses": {"204": {"description": "logged out"}, "401": {"description": "no session or token"}}}},
    "/auth/refresh": {"post": {"summary": "A new token and a rotated session, ending no later than the login's session did (GANTRY_SESSION_MAX_AGE)",
      "responses": {"200": {"description": "refreshed"}, "401": {"description": "no live session, its token revoked, or past its maximum age"}}}},
    "/auth/.well-known/jwks.json": {"get": {"summary": "Every verification key, with kid",
      "responses": {"200": {"description": "JWKS"}}}},
    "/healthz": {"get": {"responses": {"200": {"description": "alive"}}}},
    "/readyz": {"get": {"responses": {"200": {"description": "Redis answers"}, "503": {"description": "Redis unavailable"}}}}
  }
}"##;

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json() {
        let v: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert_eq!(v["openapi"], "3.1.0");
    }
}
