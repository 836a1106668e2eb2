//! Every JWT header parameter and claim the stack relies on is refused when
//! it is absent, not only when it is wrong.
//!
//! Tokens are minted by hand here (base64url JSON header and payload, signed
//! with the test key), starting from one that verifies, so each refused
//! token differs from a good one by exactly the one parameter named: what a
//! verifier that only compares values when they are present would let
//! through.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use gantry_common::jwt::{self, Claims, JwtError, KeySet, MAX_LEEWAY, Signer, TokenKind, VerificationKey, now_secs};
use serde_json::{Map, Value, json};

const ISS: &str = "gantry-auth";
const AUD: &str = "gantry";
const HS256_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

type Object = Map<String, Value>;

/// What signs the hand-minted tokens.
enum Key {
    Ed25519([u8; 32]),
    Hs256(&'static [u8]),
}

/// A verifier trusting one key, and that key.
struct Stack {
    key: Key,
    kid: String,
    keys: KeySet,
}

impl Stack {
    fn ed25519() -> Self {
        let seed = jwt::generate_seed();
        let signer = Signer::ed25519(seed);
        Self {
            kid: signer.kid().to_owned(),
            keys: KeySet::new(signer.verification_key(None), ISS, AUD, MAX_LEEWAY),
            key: Key::Ed25519(seed),
        }
    }

    fn hs256() -> Self {
        let signer = Signer::hs256(HS256_SECRET);
        Self {
            kid: signer.kid().to_owned(),
            keys: KeySet::new(signer.verification_key(Some(HS256_SECRET)), ISS, AUD, MAX_LEEWAY),
            key: Key::Hs256(HS256_SECRET),
        }
    }

    fn alg(&self) -> &'static str {
        match self.key {
            Key::Ed25519(_) => "EdDSA",
            Key::Hs256(_) => "HS256",
        }
    }

    /// The header of a good token of `kind`.
    fn header(&self, kind: TokenKind) -> Object {
        object(json!({"alg": self.alg(), "typ": kind.typ(), "kid": self.kid}))
    }

    /// `header.payload.signature`, exactly these JSON objects, signed with the key.
    fn mint(&self, header: &Object, payload: &Object) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::from(header.clone()).to_string()),
            URL_SAFE_NO_PAD.encode(Value::from(payload.clone()).to_string())
        );
        let signature = match self.key {
            Key::Ed25519(seed) => URL_SAFE_NO_PAD.encode(
                ed25519_dalek::SigningKey::from_bytes(&seed)
                    .sign(input.as_bytes())
                    .to_bytes(),
            ),
            Key::Hs256(secret) => jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &jsonwebtoken::EncodingKey::from_secret(secret),
                jsonwebtoken::Algorithm::HS256,
            )
            .unwrap(),
        };
        format!("{input}.{signature}")
    }

    /// A good token of `kind` with `edit` applied to its header and
    /// payload, verified as `kind`.
    fn verify_edited(&self, kind: TokenKind, edit: impl FnOnce(&mut Object, &mut Object)) -> Result<Claims, JwtError> {
        let mut header = self.header(kind);
        let mut payload = payload(kind);
        edit(&mut header, &mut payload);
        self.keys.verify_as(kind, &self.mint(&header, &payload))
    }
}

fn object(v: Value) -> Object {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The claims of a good token of `kind`, as auth writes them.
fn payload(kind: TokenKind) -> Object {
    let now = now_secs();
    let aud = match kind {
        TokenKind::Access => AUD.to_owned(),
        TokenKind::Service => jwt::service_audience(AUD),
    };
    object(json!({
        "sub": "u_1", "iss": ISS, "aud": aud,
        "exp": now + 300, "iat": now, "nbf": now,
        "jti": jwt::random_id(16), "username": "ada",
    }))
}

/// An access token, from the Ed25519 stack, with one edit.
fn access(edit: impl FnOnce(&mut Object, &mut Object)) -> Result<Claims, JwtError> {
    Stack::ed25519().verify_edited(TokenKind::Access, edit)
}

/// An access token without the payload's `claim`.
fn without_claim(claim: &str) -> Result<Claims, JwtError> {
    access(|_, p| {
        p.remove(claim).expect("the good token has it");
    })
}

/// An access token whose `claim` is `value`.
fn with_claim(claim: &str, value: Value) -> Result<Claims, JwtError> {
    access(|_, p| {
        p.insert(claim.to_owned(), value);
    })
}

// ---- the baseline: without it every refusal below could be vacuous ----

#[test]
fn the_hand_minted_good_tokens_verify() {
    for stack in [Stack::ed25519(), Stack::hs256()] {
        for kind in [TokenKind::Access, TokenKind::Service] {
            let claims = stack.verify_edited(kind, |_, _| {});
            assert!(claims.is_ok(), "{} {kind:?}: {claims:?}", stack.alg());
        }
    }
    // What verified is what was minted.
    let claims = access(|_, _| {}).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.iss.as_str(), claims.aud.as_str()),
        ("u_1", ISS, AUD)
    );
}

// ---- header parameters ----

#[test]
fn alg_absent_is_refused() {
    for stack in [Stack::ed25519(), Stack::hs256()] {
        let got = stack.verify_edited(TokenKind::Access, |h, _| {
            h.remove("alg");
        });
        assert_eq!(got, Err(JwtError::Malformed), "{}", stack.alg());
    }
}

#[test]
fn alg_wrong_is_refused() {
    // Signed by the Ed25519 key, naming another algorithm. Refused twice
    // over: by the verifier's pin of one algorithm per key, and by
    // jsonwebtoken's own allow-list and key-family check behind it.
    for alg in ["HS256", "ES256", "RS256", "PS256"] {
        assert_eq!(
            access(|h, _| {
                h.insert("alg".into(), json!(alg));
            }),
            Err(JwtError::WrongAlgorithm),
            "{alg}"
        );
    }
    for alg in [json!("none"), json!("eddsa"), json!(""), json!(null), json!(7)] {
        assert_eq!(
            access(|h, _| {
                h.insert("alg".into(), alg.clone());
            }),
            Err(JwtError::Malformed),
            "{alg}"
        );
    }
}

#[test]
fn kid_absent_is_refused_even_with_a_single_key_trusted() {
    for stack in [Stack::ed25519(), Stack::hs256()] {
        assert_eq!(stack.keys.len(), 1);
        let got = stack.verify_edited(TokenKind::Access, |h, _| {
            h.remove("kid");
        });
        assert_eq!(got, Err(JwtError::MissingKid), "{}", stack.alg());
    }
}

#[test]
fn kid_wrong_is_refused() {
    assert_eq!(
        access(|h, _| {
            h.insert("kid".into(), json!("ed-not-a-key-we-hold"));
        }),
        Err(JwtError::UnknownKid)
    );
    assert_eq!(
        access(|h, _| {
            h.insert("kid".into(), json!(""));
        }),
        Err(JwtError::UnknownKid)
    );
    assert_eq!(
        access(|h, _| {
            h.insert("kid".into(), json!(7));
        }),
        Err(JwtError::Malformed)
    );
    // The kid of another trusted key: that key checks the signature, and it fails.
    let stack = Stack::ed25519();
    let other = Signer::ed25519(jwt::generate_seed());
    let Key::Ed25519(seed) = stack.key else { unreachable!() };
    let keys = KeySet::new(
        [
            VerificationKey::ed25519(stack.kid.clone(), jwt::public_key(&seed)),
            other.verification_key(None).unwrap(),
        ],
        ISS,
        AUD,
        MAX_LEEWAY,
    );
    let mut header = stack.header(TokenKind::Access);
    header.insert("kid".into(), json!(other.kid()));
    let token = stack.mint(&header, &payload(TokenKind::Access));
    assert_eq!(keys.verify(&token), Err(JwtError::BadSignature));
}

#[test]
fn typ_absent_is_refused() {
    for kind in [TokenKind::Access, TokenKind::Service] {
        let got = Stack::ed25519().verify_edited(kind, |h, _| {
            h.remove("typ");
        });
        assert_eq!(got, Err(JwtError::WrongType), "{kind:?}");
    }
}

#[test]
fn typ_wrong_is_refused() {
    for typ in [json!("JWT"), json!(TokenKind::Service.typ()), json!(""), json!(null)] {
        assert_eq!(
            access(|h, _| {
                h.insert("typ".into(), typ.clone());
            }),
            Err(JwtError::WrongType),
            "{typ}"
        );
    }
    let got = Stack::ed25519().verify_edited(TokenKind::Service, |h, _| {
        h.insert("typ".into(), json!(TokenKind::Access.typ()));
    });
    assert_eq!(got, Err(JwtError::WrongType));
}

#[test]
fn crit_present_is_refused() {
    // No extension is implemented, so any critical one is not understood.
    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        assert_eq!(
            access(|h, _| {
                h.insert("crit".into(), crit.clone());
            }),
            Err(JwtError::UnsupportedHeader),
            "{crit}"
        );
    }
}

// ---- claims ----

#[test]
fn exp_absent_is_refused() {
    assert_eq!(without_claim("exp"), Err(JwtError::MissingClaim));
}

#[test]
fn exp_wrong_is_refused() {
    let past = now_secs() - MAX_LEEWAY.as_secs() - 60;
    assert_eq!(with_claim("exp", json!(past)), Err(JwtError::Expired));
    assert_eq!(with_claim("exp", json!(0)), Err(JwtError::Expired));
    for bad in [json!("tomorrow"), json!(null), json!(-1)] {
        assert_eq!(with_claim("exp", bad.clone()), Err(JwtError::MissingClaim), "{bad}");
    }
}

#[test]
fn nbf_absent_is_accepted_because_it_is_optional() {
    // The one claim that may be absent: RFC 7519 makes it optional, it is
    // honoured when present, and tokens are valid from `iat` anyway.
    assert!(without_claim("nbf").is_ok());
}

#[test]
fn nbf_wrong_is_refused() {
    let later = now_secs() + MAX_LEEWAY.as_secs() + 60;
    assert_eq!(with_claim("nbf", json!(later)), Err(JwtError::NotYetValid));
    assert_eq!(with_claim("nbf", json!("now")), Err(JwtError::MissingClaim));
}

#[test]
fn iat_absent_is_refused() {
    assert_eq!(without_claim("iat"), Err(JwtError::MissingClaim));
}

#[test]
fn iat_wrong_is_refused() {
    let later = now_secs() + MAX_LEEWAY.as_secs() + 60;
    assert_eq!(with_claim("iat", json!(later)), Err(JwtError::NotYetValid));
    for bad in [json!("now"), json!(null), json!(-1)] {
        assert_eq!(with_claim("iat", bad.clone()), Err(JwtError::MissingClaim), "{bad}");
    }
    // Within the leeway a clock slightly ahead is tolerated.
    assert!(with_claim("iat", json!(now_secs() + 2)).is_ok());
}

#[test]
fn iss_absent_is_refused() {
    assert_eq!(without_claim("iss"), Err(JwtError::MissingClaim));
}

#[test]
fn iss_wrong_is_refused() {
    for bad in [json!("evil"), json!(""), json!("Gantry-Auth")] {
        assert_eq!(with_claim("iss", bad.clone()), Err(JwtError::WrongIssuer), "{bad}");
    }
    for bad in [json!(null), json!(7), json!([ISS])] {
        assert_eq!(with_claim("iss", bad.clone()), Err(JwtError::MissingClaim), "{bad}");
    }
}

#[test]
fn aud_absent_is_refused() {
    assert_eq!(without_claim("aud"), Err(JwtError::MissingClaim));
}

#[test]
fn aud_wrong_is_refused() {
    for bad in [json!("other"), json!(""), json!(jwt::service_audience(AUD))] {
        assert_eq!(with_claim("aud", bad.clone()), Err(JwtError::WrongAudience), "{bad}");
    }
    for bad in [json!(null), json!(7), json!([AUD])] {
        assert!(with_claim("aud", bad.clone()).is_err(), "{bad}");
    }
    // A service token with the access audience.
    let got = Stack::ed25519().verify_edited(TokenKind::Service, |_, p| {
        p.insert("aud".into(), json!(AUD));
    });
    assert_eq!(got, Err(JwtError::WrongAudience));
}

#[test]
fn sub_absent_is_refused() {
    assert_eq!(without_claim("sub"), Err(JwtError::MissingClaim));
}

#[test]
fn sub_wrong_is_refused() {
    for bad in [json!(""), json!(null), json!(42)] {
        assert_eq!(with_claim("sub", bad.clone()), Err(JwtError::MissingClaim), "{bad}");
    }
}

#[test]
fn jti_absent_is_refused() {
    assert_eq!(without_claim("jti"), Err(JwtError::MissingClaim));
}

#[test]
fn jti_wrong_is_refused() {
    for bad in [json!(""), json!(null), json!(42)] {
        assert_eq!(with_claim("jti", bad.clone()), Err(JwtError::MissingClaim), "{bad}");
    }
}

#[test]
fn service_tokens_are_held_to_the_same_presence_rules() {
    let stack = Stack::ed25519();
    for param in ["alg", "kid", "typ"] {
        let got = stack.verify_edited(TokenKind::Service, |h, _| {
            h.remove(param);
        });
        assert!(got.is_err(), "a service token without {param} verified");
    }
    for claim in ["exp", "iat", "iss", "aud", "sub", "jti"] {
        let got = stack.verify_edited(TokenKind::Service, |_, p| {
            p.remove(claim);
        });
        assert_eq!(got, Err(JwtError::MissingClaim), "a service token without {claim}");
    }
}

#[test]
fn scope_absent_or_wrong_grants_nothing() {
    // The user service's internal route needs `users:write`; it reads the
    // verified claims' `scope` through `has_scope`.
    let with_scope = |scope: Option<&str>| {
        let mut p = payload(TokenKind::Service);
        match scope {
            Some(s) => p.insert("scope".into(), json!(s)),
            None => p.remove("scope"),
        };
        serde_json::from_value::<Claims>(Value::from(p)).unwrap()
    };
    assert!(!with_scope(None).has_scope("users:write"));
    for wrong in [
        "",
        "users:read",
        "users:writer",
        "users",
        "USERS:WRITE",
        "users:write:all",
    ] {
        assert!(!with_scope(Some(wrong)).has_scope("users:write"), "{wrong:?}");
    }
    assert!(with_scope(Some("users:read users:write")).has_scope("users:write"));
    // A scope that is not a string does not make claims at all.
    let mut p = payload(TokenKind::Service);
    p.insert("scope".into(), json!(["users:write"]));
    assert!(serde_json::from_value::<Claims>(Value::from(p)).is_err());
}
