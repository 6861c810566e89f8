//! JWT-SVIDs: issuing, validating, and the JWKS bundle that verifies them.
//!
//! Follows the SPIFFE JWT-SVID specification: JWS compact serialization,
//! header with exactly `alg` (`ES256`), `kid` and `typ` (`JWT`); claims `sub`
//! (the SPIFFE ID), `aud` (always an array), `exp` and `iat` (NumericDate
//! seconds). The bundle is a JWKS whose keys carry `"use": "jwt-svid"`.
//!
//! Time is a parameter (`now`, Unix seconds) so the rules are table-tested
//! without a clock.

use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use serde_json::{json, Map, Value};
use spiffe::{SpiffeId, TrustDomain};

use crate::key::{KeyError, SigningKey};

/// Largest token `validate` will look at (bytes); SVIDs are far smaller.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token was rejected. Messages are for the caller of
/// `ValidateJWTSVID`; none of them echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("token is not a JWS compact serialization")]
    Malformed,
    #[error("token header is invalid: {0}")]
    Header(&'static str),
    #[error("token is signed by a key not in the bundle (kid {0:?})")]
    UnknownKey(String),
    #[error("token signature is invalid")]
    Signature,
    #[error("token claims are invalid: {0}")]
    Claims(&'static str),
    #[error("token subject is not in trust domain {0}")]
    ForeignTrustDomain(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token audience does not include {0:?}")]
    Audience(String),
}

/// A validated JWT-SVID.
#[derive(Debug, Clone)]
pub struct ValidatedSvid {
    pub spiffe_id: SpiffeId,
    pub claims: Map<String, Value>,
}

/// Issues and validates JWT-SVIDs for one trust domain with one key.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: Arc<SigningKey>,
    trust_domain: TrustDomain,
    ttl_secs: u64,
    backdate_secs: u64,
}

impl Issuer {
    /// An issuer whose SVIDs live `ttl_secs`, with `iat` and `exp` moved
    /// `backdate_secs` into the past (test-only knob; 0 normally).
    pub fn new(
        key: Arc<SigningKey>,
        trust_domain: TrustDomain,
        ttl_secs: u64,
        backdate_secs: u64,
    ) -> Self {
        Self {
            key,
            trust_domain,
            ttl_secs,
            backdate_secs,
        }
    }

    /// The trust domain's JWKS document (`{"keys": [...]}`), as served by
    /// `FetchJWTBundles`, `--jwks-out` and `--jwks-listen`.
    pub fn jwks(&self) -> Vec<u8> {
        json!({ "keys": [self.key.public_jwk()] })
            .to_string()
            .into_bytes()
    }

    /// The SPIFFE ID of the trust domain (`spiffe://<td>`), the bundle map key.
    pub fn trust_domain_id(&self) -> String {
        self.trust_domain.id_string()
    }

    /// The signing key (for its public forms).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Issues a JWT-SVID for `subject` and `audience` at time `now`.
    /// The caller has checked that `audience` is non-empty.
    pub fn issue(
        &self,
        subject: &SpiffeId,
        audience: &[String],
        now: u64,
    ) -> Result<String, KeyError> {
        let iat = now.saturating_sub(self.backdate_secs);
        let exp = iat.saturating_add(self.ttl_secs);
        let header = json!({ "alg": "ES256", "kid": self.key.kid(), "typ": "JWT" });
        let claims = json!({
            "sub": subject.to_string(),
            "aud": audience,
            "exp": exp,
            "iat": iat,
        });
        let signing_input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let signature = self.key.sign(signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            Base64UrlUnpadded::encode_string(&signature)
        ))
    }

    /// Validates `token` for `audience` at time `now`: well-formed, header
    /// exactly as the JWT-SVID profile allows, signed by the bundle key,
    /// subject a SPIFFE ID of this trust domain, `now < exp`, `nbf <= now`
    /// when present, and `audience` among the `aud` values.
    pub fn validate(
        &self,
        token: &str,
        audience: &str,
        now: u64,
    ) -> Result<ValidatedSvid, ValidationError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ValidationError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(c64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ValidationError::Malformed);
        };
        let header = decode_json_object(h64)?;
        self.check_header(&header)?;

        let signature =
            Base64UrlUnpadded::decode_vec(s64).map_err(|_| ValidationError::Malformed)?;
        let signing_input_len = h64.len() + 1 + c64.len();
        let signing_input = token
            .get(..signing_input_len)
            .ok_or(ValidationError::Malformed)?;
        if !self.key.verify(signing_input.as_bytes(), &signature) {
            return Err(ValidationError::Signature);
        }

        let claims = decode_json_object(c64)?;
        let spiffe_id = self.check_claims(&claims, audience, now)?;
        Ok(ValidatedSvid { spiffe_id, claims })
    }

    fn check_header(&self, header: &Map<String, Value>) -> Result<(), ValidationError> {
        if header
            .keys()
            .any(|k| !matches!(k.as_str(), "alg" | "kid" | "typ"))
        {
            return Err(ValidationError::Header("only alg, kid and typ are allowed"));
        }
        match header.get("alg").and_then(Value::as_str) {
            Some("ES256") => {}
            Some(_) => return Err(ValidationError::Header("unsupported alg")),
            None => return Err(ValidationError::Header("alg missing")),
        }
        match header.get("typ") {
            None => {}
            Some(Value::String(t)) if t == "JWT" || t == "JOSE" => {}
            Some(_) => return Err(ValidationError::Header("typ must be JWT or JOSE")),
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(ValidationError::Header("kid missing"))?;
        if kid != self.key.kid() {
            return Err(ValidationError::UnknownKey(kid.to_owned()));
        }
        Ok(())
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        audience: &str,
        now: u64,
    ) -> Result<SpiffeId, ValidationError> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or(ValidationError::Claims("sub missing"))?;
        let spiffe_id =
            SpiffeId::new(sub).map_err(|_| ValidationError::Claims("sub is not a SPIFFE ID"))?;
        if spiffe_id.trust_domain_name() != self.trust_domain.to_string() {
            return Err(ValidationError::ForeignTrustDomain(
                self.trust_domain.to_string(),
            ));
        }

        let exp = numeric_date(claims, "exp")?.ok_or(ValidationError::Claims("exp missing"))?;
        if now_f64(now) >= exp {
            return Err(ValidationError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if now_f64(now) < nbf {
                return Err(ValidationError::NotYetValid);
            }
        }
        // iat is informational, but must be a NumericDate when present.
        numeric_date(claims, "iat")?;

        let matches = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(values)) if !values.is_empty() => {
                let mut any = false;
                for v in values {
                    let a = v
                        .as_str()
                        .ok_or(ValidationError::Claims("aud must be strings"))?;
                    any |= a == audience;
                }
                any
            }
            _ => return Err(ValidationError::Claims("aud missing or empty")),
        };
        if !matches {
            return Err(ValidationError::Audience(audience.to_owned()));
        }
        Ok(spiffe_id)
    }
}

/// Seconds as f64 for comparison with JSON NumericDates (exact below 2^53).
#[allow(clippy::cast_precision_loss)]
fn now_f64(now: u64) -> f64 {
    now as f64
}

fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(ValidationError::Claims("exp, nbf and iat must be numbers")),
    }
}

fn decode_json_object(part: &str) -> Result<Map<String, Value>, ValidationError> {
    let bytes = Base64UrlUnpadded::decode_vec(part).map_err(|_| ValidationError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ValidationError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn issuer(ttl: u64, backdate: u64) -> Issuer {
        Issuer::new(
            Arc::new(SigningKey::generate().expect("key")),
            TrustDomain::new("example.org").expect("td"),
            ttl,
            backdate,
        )
    }

    fn id(s: &str) -> SpiffeId {
        SpiffeId::new(s).expect("id")
    }

    fn parts(token: &str) -> (Value, Value) {
        let mut it = token.split('.');
        let h = Base64UrlUnpadded::decode_vec(it.next().expect("h")).expect("b64");
        let c = Base64UrlUnpadded::decode_vec(it.next().expect("c")).expect("b64");
        (
            serde_json::from_slice(&h).expect("json"),
            serde_json::from_slice(&c).expect("json"),
        )
    }

    /// Re-signs arbitrary header/claims with the issuer's key.
    fn forge(issuer: &Issuer, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let sig = issuer.key.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig))
    }

    #[test]
    fn issued_token_has_the_svid_shape() {
        let iss = issuer(300, 0);
        let token = iss
            .issue(
                &id("spiffe://example.org/user/alice"),
                &["hpcs".into()],
                NOW,
            )
            .expect("issue");
        let (header, claims) = parts(&token);
        assert_eq!(
            header,
            json!({"alg": "ES256", "kid": iss.key.kid(), "typ": "JWT"})
        );
        assert_eq!(
            claims,
            json!({"sub": "spiffe://example.org/user/alice", "aud": ["hpcs"], "exp": NOW + 300, "iat": NOW})
        );
        let ok = iss.validate(&token, "hpcs", NOW).expect("valid");
        assert_eq!(ok.spiffe_id.to_string(), "spiffe://example.org/user/alice");
    }

    #[test]
    fn backdate_moves_iat_and_exp() {
        let iss = issuer(300, 3600);
        let token = iss
            .issue(&id("spiffe://example.org/a"), &["hpcs".into()], NOW)
            .expect("issue");
        let (_, claims) = parts(&token);
        assert_eq!(claims["iat"], json!(NOW - 3600));
        assert_eq!(claims["exp"], json!(NOW - 3300));
        assert_eq!(
            iss.validate(&token, "hpcs", NOW).unwrap_err(),
            ValidationError::Expired
        );
    }

    #[test]
    fn validation_rules() {
        let iss = issuer(300, 0);
        let good_header = json!({"alg": "ES256", "kid": iss.key.kid(), "typ": "JWT"});
        let good_claims =
            json!({"sub": "spiffe://example.org/a", "aud": ["x", "hpcs"], "exp": NOW + 10});
        let with = |h: &Value, c: &Value| forge(&iss, h, c);
        let mut cases: Vec<(&str, String, Result<(), ValidationError>)> = vec![
            ("good", with(&good_header, &good_claims), Ok(())),
            (
                "aud as string",
                with(
                    &good_header,
                    &json!({"sub": "spiffe://example.org/a", "aud": "hpcs", "exp": NOW + 10}),
                ),
                Ok(()),
            ),
            (
                "typ JOSE",
                with(
                    &json!({"alg": "ES256", "kid": iss.key.kid(), "typ": "JOSE"}),
                    &good_claims,
                ),
                Ok(()),
            ),
            (
                "no typ",
                with(&json!({"alg": "ES256", "kid": iss.key.kid()}), &good_claims),
                Ok(()),
            ),
            (
                "exp equal to now",
                with(
                    &good_header,
                    &json!({"sub": "spiffe://example.org/a", "aud": "hpcs", "exp": NOW}),
                ),
                Err(ValidationError::Expired),
            ),
            (
                "nbf in the future",
                with(
                    &good_header,
                    &json!({"sub": "spiffe://example.org/a", "aud": "hpcs", "exp": NOW + 10, "nbf": NOW + 5}),
                ),
                Err(ValidationError::NotYetValid),
            ),
            (
                "no exp",
                with(
                    &good_header,
                    &json!({"sub": "spiffe://example.org/a", "aud": "hpcs"}),
                ),
                Err(ValidationError::Claims("exp missing")),
            ),
            (
                "wrong audience",
                with(
                    &good_header,
                    &json!({"sub": "spiffe://example.org/a", "aud": ["other"], "exp": NOW + 10}),
                ),
                Err(ValidationError::Audience("hpcs".into())),
            ),
            (
                "empty audience",
                with(
                    &good_header,
                    &json!({"sub": "spiffe://example.org/a", "aud": [], "exp": NOW + 10}),
                ),
                Err(ValidationError::Claims("aud missing or empty")),
            ),
            (
                "foreign trust domain",
                with(
                    &good_header,
                    &json!({"sub": "spiffe://other.org/a", "aud": "hpcs", "exp": NOW + 10}),
                ),
                Err(ValidationError::ForeignTrustDomain("example.org".into())),
            ),
            (
                "sub not a SPIFFE ID",
                with(
                    &good_header,
                    &json!({"sub": "alice", "aud": "hpcs", "exp": NOW + 10}),
                ),
                Err(ValidationError::Claims("sub is not a SPIFFE ID")),
            ),
            (
                "extra header",
                with(
                    &json!({"alg": "ES256", "kid": iss.key.kid(), "typ": "JWT", "jku": "http://x"}),
                    &good_claims,
                ),
                Err(ValidationError::Header("only alg, kid and typ are allowed")),
            ),
            (
                "alg none",
                with(&json!({"alg": "none", "kid": iss.key.kid()}), &good_claims),
                Err(ValidationError::Header("unsupported alg")),
            ),
            (
                "unknown kid",
                with(&json!({"alg": "ES256", "kid": "nope"}), &good_claims),
                Err(ValidationError::UnknownKey("nope".into())),
            ),
            (
                "bad typ",
                with(
                    &json!({"alg": "ES256", "kid": iss.key.kid(), "typ": "at+jwt"}),
                    &good_claims,
                ),
                Err(ValidationError::Header("typ must be JWT or JOSE")),
            ),
            ("two parts", "a.b".into(), Err(ValidationError::Malformed)),
            (
                "four parts",
                "a.b.c.d".into(),
                Err(ValidationError::Malformed),
            ),
        ];
        // The same header (our kid) signed by another key: the signature must fail.
        let other = issuer(300, 0);
        let foreign = forge(&other, &good_header, &good_claims);
        cases.push((
            "signed by another key",
            foreign,
            Err(ValidationError::Signature),
        ));
        // Flip one claim byte after signing.
        let good = with(&good_header, &good_claims);
        let mut pieces: Vec<String> = good.split('.').map(str::to_owned).collect();
        pieces[1] = Base64UrlUnpadded::encode_string(
            json!({"sub": "spiffe://example.org/b", "aud": ["hpcs"], "exp": NOW + 10})
                .to_string()
                .as_bytes(),
        );
        cases.push((
            "tampered claims",
            pieces.join("."),
            Err(ValidationError::Signature),
        ));

        for (name, token, want) in cases {
            let got = iss.validate(&token, "hpcs", NOW).map(|_| ());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn jwks_has_the_bundle_shape() {
        let iss = issuer(300, 0);
        let jwks: Value = serde_json::from_slice(&iss.jwks()).expect("json");
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k["use"], "jwt-svid");
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["crv"], "P-256");
        assert_eq!(k["kid"], iss.key.kid());
        for c in ["x", "y"] {
            let raw = Base64UrlUnpadded::decode_vec(k[c].as_str().expect("coord")).expect("b64");
            assert_eq!(raw.len(), 32, "{c}");
        }
        assert_eq!(iss.trust_domain_id(), "spiffe://example.org");
    }
}
