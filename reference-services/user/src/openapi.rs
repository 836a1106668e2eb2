//! The user service's self-description, served at `/openapi.json`.

pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Gantry user service", "version": "0.1.0"},
  "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
  "security": [{"bearer": []}],
  "paths": {
    "/users/me": {"get": {"summary": "The caller's profile",
      "responses": {"200": {"description": "{id, username, display_name}"}, "401": {"description": "no valid token"}}}},
    "/users/{id}": {"get": {"summary": "A profile by id",
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "profile"}, "401": {"description": "no valid token"}, "404": {"description": "no such user"}}}},
    "/internal/users": {"post": {"summary": "Create a profile (service token with scope users:write; not routed by the gateway)",
      "responses": {"201": {"description": "created"}, "403": {"description": "missing scope"}, "409": {"description": "exists"}}}},
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
