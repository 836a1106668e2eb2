//! The gateway's self-description, served at `/openapi.json`.

/// OpenAPI 3.1 for the contract in the architecture: the routes the gateway
/// serves itself and the ones it routes.
pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Gantry gateway", "version": "0.1.0"},
  "components": {
    "securitySchemes": {
      "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
      "session": {"type": "apiKey", "in": "cookie", "name": "SESSION"}
    },
    "schemas": {
      "Error": {"type": "object", "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
      "Credentials": {"type": "object", "required": ["username", "password"],
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}, "display_name": {"type": "string"}}},
      "Token": {"type": "object", "required": ["access_token", "token_type", "expires_in"],
        "properties": {"access_token": {"type": "string"}, "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"}}},
      "User": {"type": "object", "required": ["id", "username", "display_name"],
        "properties": {"id": {"type": "string"}, "username": {"type": "string"}, "display_name": {"type": "string"}}}
    }
  },
  "paths": {
    "/auth/register": {"post": {"summary": "Create an account",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Credentials"}}}},
      "responses": {"201": {"description": "created"}, "400": {"description": "weak or malformed"}, "409": {"description": "taken"}}}},
    "/auth/login": {"post": {"summary": "Log in: a token and a SESSION cookie",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Credentials"}}}},
      "responses": {"200": {"description": "logged in", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}},
        "401": {"description": "bad credentials"}, "429": {"description": "throttled; see Retry-After"}}}},
    "/auth/logout": {"post": {"summary": "Revoke the session and token everywhere", "security": [{"bearer": []}, {"session": []}],
      "responses": {"204": {"description": "logged out"}, "401": {"description": "no identity"}}}},
    "/auth/refresh": {"post": {"summary": "A new token; the session is rotated", "security": [{"session": []}],
      "responses": {"200": {"description": "refreshed"}, "401": {"description": "no session"}}}},
    "/auth/.well-known/jwks.json": {"get": {"summary": "Token verification keys", "responses": {"200": {"description": "JWKS"}}}},
    "/users/me": {"get": {"summary": "The caller's profile", "security": [{"bearer": []}, {"session": []}],
      "responses": {"200": {"description": "profile", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}},
        "401": {"description": "no identity"}}}},
    "/users/{id}": {"get": {"summary": "A profile by id", "security": [{"bearer": []}, {"session": []}],
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "profile"}, "401": {"description": "no identity"}, "404": {"description": "no such user"}}}},
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
    "/readyz": {"get": {"summary": "Readiness (status only; the detail is on the admin listener)", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}}
  }
}"##;

/// OpenAPI 3.1 for the admin listener (`GANTRY_ADMIN_LISTEN`): the
/// operator endpoints, which the public listener does not serve.
pub const ADMIN_DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Gantry gateway admin", "version": "0.1.0"},
  "paths": {
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
    "/readyz": {"get": {"summary": "Readiness with the detail: instances per service, Redis, verification keys, problems",
      "responses": {"200": {"description": "ready"}, "503": {"description": "not ready, with the problems"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}}
  }
}"##;

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json() {
        for doc in [super::DOCUMENT, super::ADMIN_DOCUMENT] {
            let v: serde_json::Value = serde_json::from_str(doc).unwrap();
            assert_eq!(v["openapi"], "3.1.0");
        }
        let public: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert!(
            public["paths"].get("/metrics").is_none(),
            "metrics are on the admin listener"
        );
    }
}
