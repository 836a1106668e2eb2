//! JWT signing and verification.
//!
//! Tokens are Ed25519 (`EdDSA`) by default; HS256 with a shared secret is the
//! option for deployments (and tests) that must mint tokens themselves. The
//! rules every verifier in the stack applies:
//!
//! - one algorithm is pinned per key; the token's `alg` must equal it, so an
//!   HS256 token "signed" with a published Ed25519 key is refused;
//! - `kid` must be present, even when one key is trusted, and is only ever
//!   a lookup key into keys we already hold; `jku`/`x5u` are never
//!   followed; `crit` is refused, as no extension is implemented
//!   (RFC 7515 §4.1.11);
//! - `exp`, `iat`, `iss`, `aud`, `sub` and `jti` must be present (`sub` and
//!   `jti` not empty), `nbf` is honoured when present, an `iat` in the
//!   future is refused like an `nbf` in the future (auth reads `iat` to age
//!   a session), and the leeway is at most [`MAX_LEEWAY`];
//! - tokens are explicitly typed (RFC 8725 §3.11) and audience-scoped
//!   (§3.12): an access token (`typ: at+jwt`, `aud` = the audience) is
//!   never accepted where a service token (`typ: service+jwt`, `aud` = the
//!   audience + [`SERVICE_AUDIENCE_SUFFIX`]) is expected, and the reverse.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError};

/// Issuer written into, and required of, every token.
pub const DEFAULT_ISSUER: &str = "gantry-auth";
/// Audience written into, and required of, every token.
pub const DEFAULT_AUDIENCE: &str = "gantry";
/// Clock skew tolerated on `exp` and `nbf`; more would let dead tokens live.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);
/// An HS256 secret shorter than this is refused (RFC 7518 §3.2: key ≥ hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Appended to the audience to make the audience of service tokens, so a
/// service token is never a valid access token anywhere.
pub const SERVICE_AUDIENCE_SUFFIX: &str = "-internal";

/// The audience service tokens carry when user tokens carry `audience`.
pub fn service_audience(audience: &str) -> String {
    format!("{audience}{SERVICE_AUDIENCE_SUFFIX}")
}

/// What a token is for. Each kind has its own `typ` header and audience, so
/// one kind can never be replayed as the other (RFC 8725 §3.11–3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A user's access token, issued at login: what the gateway and the
    /// public routes accept.
    Access,
    /// A short-lived token one service sends another on an internal route.
    Service,
}

impl TokenKind {
    /// The `typ` header of this kind (RFC 9068 names `at+jwt` for access tokens).
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Service => "service+jwt",
        }
    }
}

/// The claims of a Gantry token. `iat` and `jti` are not `Option`, so a token
/// without them does not even deserialize.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub jti: String,
    /// The account name, for services that want to greet someone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Space-separated scopes; service tokens carry e.g. `users:write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Claims {
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.as_deref().is_some_and(|s| s.split(' ').any(|x| x == wanted))
    }
}

/// Why a token was refused. Every variant is a 401 to the caller; the
/// distinction is for logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is malformed")]
    Malformed,
    #[error("token has no kid")]
    MissingKid,
    #[error("token names an unknown key id")]
    UnknownKid,
    #[error("token algorithm does not match its key")]
    WrongAlgorithm,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token has the wrong issuer")]
    WrongIssuer,
    #[error("token has the wrong audience")]
    WrongAudience,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is missing a required claim")]
    MissingClaim,
    #[error("token is of the wrong type for this use")]
    WrongType,
    #[error("token has a critical header extension this verifier does not implement")]
    UnsupportedHeader,
}

impl From<jsonwebtoken::errors::Error> for JwtError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => JwtError::Expired,
            K::ImmatureSignature => JwtError::NotYetValid,
            K::InvalidIssuer => JwtError::WrongIssuer,
            K::InvalidAudience => JwtError::WrongAudience,
            K::InvalidSignature => JwtError::BadSignature,
            K::InvalidAlgorithm => JwtError::WrongAlgorithm,
            K::MissingRequiredClaim(_) => JwtError::MissingClaim,
            // serde failures on our Claims mean a required claim is absent or mistyped.
            K::Json(_) => JwtError::MissingClaim,
            _ => JwtError::Malformed,
        }
    }
}

/// Which kind of keys this deployment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Hs256,
}

/// JWT settings shared by every service, from the environment.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_JWT_ALG` | `EdDSA` | `EdDSA` or `HS256` |
/// | `GANTRY_JWT_SECRET` | — | HS256 secret, ≥ 32 bytes; required with `HS256` |
/// | `GANTRY_JWT_SIGNING_KEY` | generated | base64url Ed25519 seed (32 bytes) that auth signs with |
/// | `GANTRY_JWT_VERIFY_KEYS` | — | extra accepted Ed25519 public keys, `kid=x,…` (rotation) |
/// | `GANTRY_JWT_ISSUER` | `gantry-auth` | `iss` written and required |
/// | `GANTRY_JWT_AUDIENCE` | `gantry` | `aud` written and required |
/// | `GANTRY_JWT_LEEWAY` | `5s` | clock skew allowed, at most 5 s |
#[derive(Clone)]
pub struct JwtConfig {
    pub kind: KeyKind,
    pub secret: Option<Arc<[u8]>>,
    pub signing_seed: Option<[u8; 32]>,
    pub extra_public_keys: Vec<(String, [u8; 32])>,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let kind = match config::string_or("GANTRY_JWT_ALG", "EdDSA").as_str() {
            "EdDSA" | "eddsa" | "Ed25519" => KeyKind::Ed25519,
            "HS256" | "hs256" => KeyKind::Hs256,
            other => return Err(ConfigError::new("GANTRY_JWT_ALG", other, "EdDSA or HS256")),
        };
        let secret = match config::raw("GANTRY_JWT_SECRET") {
            Some(s) if s.len() < MIN_HS256_SECRET_BYTES => {
                return Err(ConfigError::new(
                    "GANTRY_JWT_SECRET",
                    "<hidden>",
                    format!("a secret of at least {MIN_HS256_SECRET_BYTES} bytes"),
                ));
            }
            Some(s) => Some(Arc::from(s.into_bytes())),
            None if kind == KeyKind::Hs256 => {
                return Err(ConfigError::new(
                    "GANTRY_JWT_SECRET",
                    "",
                    format!("a secret of at least {MIN_HS256_SECRET_BYTES} bytes when GANTRY_JWT_ALG=HS256"),
                ));
            }
            None => None,
        };
        let signing_seed = match config::raw("GANTRY_JWT_SIGNING_KEY") {
            None => None,
            Some(v) => Some(decode_key32(&v).ok_or_else(|| {
                ConfigError::new(
                    "GANTRY_JWT_SIGNING_KEY",
                    "<hidden>",
                    "a base64url Ed25519 seed of 32 bytes",
                )
            })?),
        };
        let mut extra_public_keys = Vec::new();
        if let Some(list) = config::raw("GANTRY_JWT_VERIFY_KEYS") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (kid, x) = match item.split_once('=') {
                    Some((kid, x)) => (kid.to_owned(), x),
                    None => (kid_for(item), item),
                };
                let key = decode_key32(x).ok_or_else(|| {
                    ConfigError::new(
                        "GANTRY_JWT_VERIFY_KEYS",
                        item,
                        "kid=x pairs of base64url Ed25519 public keys",
                    )
                })?;
                extra_public_keys.push((kid, key));
            }
        }
        let leeway = config::duration_or("GANTRY_JWT_LEEWAY", MAX_LEEWAY)?;
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::new(
                "GANTRY_JWT_LEEWAY",
                config::format_duration(leeway),
                "at most 5s",
            ));
        }
        Ok(Self {
            kind,
            secret,
            signing_seed,
            extra_public_keys,
            issuer: config::string_or("GANTRY_JWT_ISSUER", DEFAULT_ISSUER),
            audience: config::string_or("GANTRY_JWT_AUDIENCE", DEFAULT_AUDIENCE),
            leeway,
        })
    }

    /// The key auth signs with. In EdDSA mode without a configured seed a
    /// fresh one is generated (fine for one auth instance; `gantry up` hands
    /// every instance the same seed).
    pub fn signer(&self) -> Signer {
        match self.kind {
            KeyKind::Hs256 => Signer::hs256(self.secret.as_deref().unwrap_or_default()),
            KeyKind::Ed25519 => Signer::ed25519(self.signing_seed.unwrap_or_else(generate_seed)),
        }
    }

    /// The keys a verifier trusts before it has fetched any JWKS.
    pub fn static_keys(&self) -> Vec<VerificationKey> {
        let mut keys = Vec::new();
        if let (KeyKind::Hs256, Some(secret)) = (self.kind, &self.secret) {
            keys.push(VerificationKey::hs256(HS256_KID, secret));
        }
        for (kid, x) in &self.extra_public_keys {
            keys.push(VerificationKey::ed25519(kid.clone(), *x));
        }
        keys
    }
}

/// The `kid` written on HS256 tokens. The secret is never published.
pub const HS256_KID: &str = "hs256";

/// 32 bytes from base64url (padding allowed): a seed or a public key, as
/// `GANTRY_JWT_SIGNING_KEY` and `GANTRY_JWT_VERIFY_KEYS` carry them.
pub fn decode_key32(text: &str) -> Option<[u8; 32]> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('=')).ok()?;
    bytes.try_into().ok()
}

/// A fresh random Ed25519 seed.
pub fn generate_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random source failed");
    seed
}

/// base64url of a seed, the form `GANTRY_JWT_SIGNING_KEY` takes.
pub fn encode_seed(seed: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(seed)
}

/// The Ed25519 public key of a seed.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// The `kid` of a public key: a stable, short function of the key itself, so
/// every auth instance with the same key publishes the same `kid`.
pub fn kid_for(x_b64: &str) -> String {
    format!("ed-{}", &x_b64[..x_b64.len().min(16)])
}

/// One JSON Web Key as published in a JWKS (Ed25519 only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The usable Ed25519 keys of this set. Anything else (RSA, symmetric,
    /// keys without `kid`, wrong lengths) is skipped, not trusted.
    pub fn verification_keys(&self) -> Vec<VerificationKey> {
        self.keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv.as_deref() == Some("Ed25519"))
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == "EdDSA"))
            .filter_map(|k| {
                let kid = k.kid.clone()?;
                let x = decode_key32(k.x.as_deref()?)?;
                Some(VerificationKey::ed25519(kid, x))
            })
            .collect()
    }
}

/// The key auth signs with.
#[derive(Clone)]
pub struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Option<Jwk>,
    public: Option<[u8; 32]>,
}

impl Signer {
    pub fn ed25519(seed: [u8; 32]) -> Self {
        // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410 §7): a fixed prefix.
        const PKCS8_PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
        ];
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let public = public_key(&seed);
        let x = URL_SAFE_NO_PAD.encode(public);
        let kid = kid_for(&x);
        Self {
            jwk: Some(Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(x),
                kid: Some(kid.clone()),
                alg: Some("EdDSA".into()),
                use_: Some("sig".into()),
            }),
            kid,
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(&der),
            public: Some(public),
        }
    }

    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            kid: HS256_KID.into(),
            alg: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
            jwk: None,
            public: None,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK, `None` for HS256 (a secret is never published).
    pub fn jwk(&self) -> Option<&Jwk> {
        self.jwk.as_ref()
    }

    /// The key that verifies what this signer signs.
    pub fn verification_key(&self, secret: Option<&[u8]>) -> Option<VerificationKey> {
        match (self.public, secret) {
            (Some(x), _) => Some(VerificationKey::ed25519(self.kid.clone(), x)),
            (None, Some(s)) => Some(VerificationKey::hs256(&self.kid, s)),
            (None, None) => None,
        }
    }

    /// Signs `claims` as an access token (normally [`Claims`]; tests sign
    /// other shapes to check that verifiers refuse them).
    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        self.sign_as(TokenKind::Access, claims)
    }

    /// Signs `claims` as a token of `kind` (its `typ` header). The caller
    /// sets the audience that goes with the kind.
    pub fn sign_as<T: Serialize>(&self, kind: TokenKind, claims: &T) -> String {
        let header = Header {
            typ: Some(kind.typ().to_owned()),
            ..Header::default()
        };
        self.sign_with_header(header, claims)
    }

    /// Signs `claims` under `header` with this key (its `alg` and `kid` are
    /// set to the key's; the rest, `typ` above all, is the caller's): tests
    /// sign tokens of no or the wrong type to check verifiers refuse them.
    pub fn sign_with_header<T: Serialize>(&self, mut header: Header, claims: &T) -> String {
        header.alg = self.alg;
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signing with a key validated at start cannot fail")
    }
}

/// A key a verifier trusts, with its pinned algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    pub kid: String,
    alg: Algorithm,
    key: DecodingKey,
    /// The public key's bytes (Ed25519), so a `kid` seen again can be
    /// checked to still name the same key. `None` for shared secrets.
    public: Option<[u8; 32]>,
}

impl VerificationKey {
    pub fn ed25519(kid: String, x: [u8; 32]) -> Self {
        Self {
            kid,
            alg: Algorithm::EdDSA,
            key: DecodingKey::from_ed_der(&x),
            public: Some(x),
        }
    }

    pub fn hs256(kid: &str, secret: &[u8]) -> Self {
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
            public: None,
        }
    }

    /// True when `other` is the same key material under the same algorithm.
    pub fn same_key(&self, other: &VerificationKey) -> bool {
        self.alg == other.alg && self.public.is_some() && self.public == other.public
    }
}

/// The validations of one key: one per [`TokenKind`], differing in audience.
struct Validations {
    access: Validation,
    service: Validation,
}

/// An immutable set of trusted keys with their validations, built once and
/// swapped whole when the JWKS changes.
pub struct KeySet {
    keys: HashMap<String, (VerificationKey, Validations)>,
    /// Clock skew tolerated, in seconds (on `iat` here; on `exp` and `nbf`
    /// in the validations).
    leeway: u64,
}

impl KeySet {
    pub fn new(
        keys: impl IntoIterator<Item = VerificationKey>,
        issuer: &str,
        audience: &str,
        leeway: Duration,
    ) -> Self {
        let service_aud = service_audience(audience);
        let keys = keys
            .into_iter()
            .map(|key| {
                let validation = |aud: &str| {
                    let mut v = Validation::new(key.alg);
                    v.leeway = leeway.as_secs();
                    v.validate_exp = true;
                    v.validate_nbf = true;
                    v.set_issuer(&[issuer]);
                    v.set_audience(&[aud]);
                    // jsonwebtoken can require only these (and `nbf`); `iat`
                    // and `jti` are required by [`Claims`]' types instead.
                    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                    v
                };
                let validations = Validations {
                    access: validation(audience),
                    service: validation(&service_aud),
                };
                (key.kid.clone(), (key, validations))
            })
            .collect();
        Self {
            keys,
            leeway: leeway.as_secs(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The key trusted under `kid`, if any.
    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid).map(|(key, _)| key)
    }

    /// The trusted keys.
    pub fn keys(&self) -> impl Iterator<Item = &VerificationKey> {
        self.keys.values().map(|(key, _)| key)
    }

    /// Verifies an access token against the key its `kid` names.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_as(TokenKind::Access, token)
    }

    /// Verifies a token that must be of `kind`: its `typ` and audience.
    pub fn verify_as(&self, kind: TokenKind, token: &str) -> Result<Claims, JwtError> {
        // A header without `alg` (or with one not known) does not parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.crit.is_some() {
            return Err(JwtError::UnsupportedHeader);
        }
        // Every token auth signs names its key; one that does not is not
        // ours, even when a single key is trusted.
        let kid = header.kid.as_deref().ok_or(JwtError::MissingKid)?;
        let (key, validations) = self.keys.get(kid).ok_or(JwtError::UnknownKid)?;
        if header.alg != key.alg {
            return Err(JwtError::WrongAlgorithm);
        }
        if header.typ.as_deref() != Some(kind.typ()) {
            return Err(JwtError::WrongType);
        }
        let validation = match kind {
            TokenKind::Access => &validations.access,
            TokenKind::Service => &validations.service,
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, validation)?.claims;
        if claims.jti.is_empty() || claims.sub.is_empty() {
            return Err(JwtError::MissingClaim);
        }
        if claims.iat > now_secs().saturating_add(self.leeway) {
            return Err(JwtError::NotYetValid);
        }
        Ok(claims)
    }

    /// The `kid` a token names, if it parses at all.
    pub fn kid_of(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).ok()?.kid
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A version-4 UUID from the OS's random source: the form Consul gives
/// its ACL tokens and session ids.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = generate_seed()[..16].try_into().expect("16 of 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A random identifier of `bytes` random bytes, base64url without padding.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "gantry-auth";
    const AUD: &str = "gantry";

    fn claims(ttl: i64) -> Claims {
        let now = now_secs();
        Claims {
            sub: "u1".into(),
            iss: ISS.into(),
            aud: AUD.into(),
            exp: (now as i64 + ttl) as u64,
            iat: now,
            nbf: Some(now),
            jti: random_id(16),
            username: Some("ada".into()),
            scope: None,
        }
    }

    fn setup() -> (Signer, KeySet) {
        let signer = Signer::ed25519(generate_seed());
        let keys = KeySet::new(signer.verification_key(None), ISS, AUD, MAX_LEEWAY);
        (signer, keys)
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_good_token_verifies() {
        let (signer, keys) = setup();
        let c = claims(60);
        assert_eq!(keys.verify(&signer.sign(&c)), Ok(c));
    }

    #[test]
    fn expired_is_refused_beyond_the_leeway() {
        let (signer, keys) = setup();
        assert_eq!(keys.verify(&signer.sign(&claims(-10))), Err(JwtError::Expired));
        // Within the 5 s leeway it still passes.
        assert!(keys.verify(&signer.sign(&claims(-2))).is_ok());
    }

    #[test]
    fn not_yet_valid_is_refused() {
        let (signer, keys) = setup();
        let mut c = claims(600);
        c.nbf = Some(now_secs() + 60);
        assert_eq!(keys.verify(&signer.sign(&c)), Err(JwtError::NotYetValid));
    }

    #[test]
    fn wrong_issuer_and_audience_are_refused() {
        let (signer, keys) = setup();
        let mut c = claims(60);
        c.iss = "evil".into();
        assert_eq!(keys.verify(&signer.sign(&c)), Err(JwtError::WrongIssuer));
        let mut c = claims(60);
        c.aud = "other".into();
        assert_eq!(keys.verify(&signer.sign(&c)), Err(JwtError::WrongAudience));
    }

    #[test]
    fn alg_none_is_refused() {
        let (signer, keys) = setup();
        let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": signer.kid()});
        let payload = serde_json::to_value(claims(60)).unwrap();
        let token = format!("{}.{}.", b64(&header), b64(&payload));
        assert_eq!(keys.verify(&token), Err(JwtError::Malformed));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let (signer, keys) = setup();
        let token = signer.sign(&claims(60));
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(60);
        forged.sub = "admin".into();
        let forged_payload = b64(&serde_json::to_value(forged).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(keys.verify(&tampered), Err(JwtError::BadSignature));
    }

    #[test]
    fn an_unknown_kid_is_refused() {
        let (_, keys) = setup();
        let other = Signer::ed25519(generate_seed());
        assert_eq!(keys.verify(&other.sign(&claims(60))), Err(JwtError::UnknownKid));
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let (signer, keys) = setup();
        // The classic confusion attack: use the published key bytes as an HMAC secret.
        let x = signer.jwk().unwrap().x.clone().unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(signer.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims(60), &EncodingKey::from_secret(x.as_bytes())).unwrap();
        assert_eq!(keys.verify(&token), Err(JwtError::WrongAlgorithm));
    }

    #[test]
    fn missing_jti_or_iat_is_refused() {
        let (signer, keys) = setup();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid().to_owned());
        header.typ = Some(TokenKind::Access.typ().to_owned());
        for drop in ["jti", "iat", "sub", "exp"] {
            let mut payload = serde_json::to_value(claims(60)).unwrap();
            payload.as_object_mut().unwrap().remove(drop);
            let token = jsonwebtoken::encode(&header, &payload, &signer.key).unwrap();
            assert_eq!(keys.verify(&token), Err(JwtError::MissingClaim), "without {drop}");
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let (_, keys) = setup();
        for token in ["", ".", "..", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.", &"A".repeat(10_000)] {
            assert!(keys.verify(token).is_err(), "{token:?}");
        }
    }

    #[test]
    fn jwks_round_trip_and_rotation() {
        let old = Signer::ed25519(generate_seed());
        let new = Signer::ed25519(generate_seed());
        let jwks = Jwks {
            keys: vec![new.jwk().unwrap().clone(), old.jwk().unwrap().clone()],
        };
        let parsed: Jwks = serde_json::from_str(&serde_json::to_string(&jwks).unwrap()).unwrap();
        let keys = KeySet::new(parsed.verification_keys(), ISS, AUD, MAX_LEEWAY);
        assert!(keys.verify(&old.sign(&claims(60))).is_ok());
        assert!(keys.verify(&new.sign(&claims(60))).is_ok());
    }

    #[test]
    fn hs256_works_with_the_shared_secret() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let signer = Signer::hs256(secret);
        let keys = KeySet::new(signer.verification_key(Some(secret)), ISS, AUD, MAX_LEEWAY);
        assert!(keys.verify(&signer.sign(&claims(60))).is_ok());
        let wrong = Signer::hs256(b"ffffffffffffffffffffffffffffffff");
        assert_eq!(keys.verify(&wrong.sign(&claims(60))), Err(JwtError::BadSignature));
    }

    #[test]
    fn access_and_service_tokens_are_not_interchangeable() {
        let (signer, keys) = setup();
        let access = signer.sign(&claims(60));
        assert!(keys.verify(&access).is_ok());
        assert_eq!(keys.verify_as(TokenKind::Service, &access), Err(JwtError::WrongType));

        let mut c = claims(60);
        c.aud = service_audience(AUD);
        let service = signer.sign_as(TokenKind::Service, &c);
        assert_eq!(keys.verify_as(TokenKind::Service, &service), Ok(c.clone()));
        assert_eq!(keys.verify(&service), Err(JwtError::WrongType));
        // The type alone is not enough: a service-typed token with the user
        // audience, or an access-typed one with the service audience, fails.
        assert_eq!(
            keys.verify_as(TokenKind::Service, &signer.sign_as(TokenKind::Service, &claims(60))),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(keys.verify(&signer.sign(&c)), Err(JwtError::WrongAudience));
        // An untyped token (plain `JWT`) is neither.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid().to_owned());
        let untyped = jsonwebtoken::encode(&header, &claims(60), &signer.key).unwrap();
        assert_eq!(keys.verify(&untyped), Err(JwtError::WrongType));
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        let jwks: Jwks = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": "x", "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "x": "c2hvcnQ", "kid": "short"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"}
        ]}))
        .unwrap();
        assert!(jwks.verification_keys().is_empty());
    }
}
