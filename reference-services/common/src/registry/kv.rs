//! The registry's KV store (`/v1/kv/<key>`): what a scenario needs to give
//! a service its configuration and to see who holds a lock.

use base64::Engine;
use serde::Deserialize;

use super::{DEFAULT_CALL_TIMEOUT, RegistryClient, RegistryError};

/// One key as the registry holds it (Consul's `DirEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    /// The session holding the key as a lock, if one does.
    pub session: Option<String>,
    pub lock_index: u64,
    pub modify_index: u64,
}

impl KvEntry {
    /// The value as text (lossy: a lock's value is usually its holder's name).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    key: String,
    value: Option<String>,
    #[serde(default)]
    flags: u64,
    session: Option<String>,
    #[serde(default)]
    lock_index: u64,
    #[serde(default)]
    modify_index: u64,
}

/// `key` as a URL path: `/` kept, anything outside the unreserved set
/// percent-encoded (a key may hold `?`, `#`, spaces).
fn key_path(key: &str) -> String {
    let mut out = String::from("/v1/kv/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryClient {
    /// `PUT /v1/kv/<key>`: writes `value`.
    pub async fn kv_put(&self, key: &str, value: &[u8]) -> Result<(), RegistryError> {
        let req = self
            .request(reqwest::Method::PUT, &key_path(key))
            .body(value.to_vec())
            .timeout(DEFAULT_CALL_TIMEOUT);
        self.send("KV write", req).await.map(drop)
    }

    /// `DELETE /v1/kv/<key>`.
    pub async fn kv_delete(&self, key: &str) -> Result<(), RegistryError> {
        let req = self
            .request(reqwest::Method::DELETE, &key_path(key))
            .timeout(DEFAULT_CALL_TIMEOUT);
        self.send("KV delete", req).await.map(drop)
    }

    /// `GET /v1/kv/<key>`: the entry, or `None` when the key is not there.
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, RegistryError> {
        let req = self
            .request(reqwest::Method::GET, &key_path(key))
            .timeout(DEFAULT_CALL_TIMEOUT);
        let resp = match self.send("KV read", req).await {
            Ok(resp) => resp,
            Err(RegistryError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let entries: Vec<Wire> = resp.json().await.map_err(|source| RegistryError::Decode {
            what: "KV read".into(),
            source,
        })?;
        let Some(wire) = entries.into_iter().next() else {
            return Ok(None);
        };
        let value = match wire.value {
            None => Vec::new(),
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| RegistryError::Malformed {
                    what: "KV read".into(),
                    detail: format!("a value that is not base64 ({e})"),
                })?,
        };
        Ok(Some(KvEntry {
            key: wire.key,
            value,
            flags: wire.flags,
            session: wire.session.filter(|s| !s.is_empty()),
            lock_index: wire.lock_index,
            modify_index: wire.modify_index,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::key_path;

    #[test]
    fn keys_keep_their_slashes_and_escape_the_rest() {
        assert_eq!(key_path("config/board/title"), "/v1/kv/config/board/title");
        assert_eq!(key_path("a b?c#d%"), "/v1/kv/a%20b%3Fc%23d%25");
    }
}
