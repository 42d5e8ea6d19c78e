//! The `jose` import: verifies a compact JWS against a JWKS (inline, or fetched through the
//! same allowlisted HTTP path) and checks `exp`, `nbf`, `iss` and `aud`, so guests need no
//! cryptography of their own. [`JoseCtxView`] wraps the call's [`HttpCtxView`], so a JWKS URL
//! goes through the same allowlist and budget as the `http` import.

use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use wasmtime::component::{HasData, Linker};

use super::http::HttpCtxView;
use crate::connectors::bindings::HostError;
use crate::connectors::bindings::current::http::Request;
use crate::connectors::bindings::current::jose::{self as wit, Expectations, Host, KeySource};
use crate::connectors::bindings::v0_1::portcullis::connector as v0_1;
use crate::connectors::bindings::v0_2::portcullis::connector as v0_2;

/// Algorithms a connector may accept; `none` and HMAC (a shared secret is no public key) never.
const SUPPORTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Largest JWKS document accepted, inline or fetched (Google's is about 2 KiB; a few dozen
/// RSA keys fit). Parsing a bigger one is work an upstream should not make the host do.
pub(crate) const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Keys tried at most for one token: a token without `kid` is checked against the keys that
/// can verify its algorithm, and no more than this many of them.
pub(crate) const MAX_CANDIDATE_KEYS: usize = 8;

/// The `jose` import's view of a call: the HTTP grant and budget, for `jwks-url`.
pub(crate) struct JoseCtxView<'a> {
    pub(crate) http: HttpCtxView<'a>,
}

/// A store whose data can lend a [`JoseCtxView`].
pub(crate) trait JoseView: Send {
    fn jose(&mut self) -> JoseCtxView<'_>;
}

struct HasJose;

impl HasData for HasJose {
    type Data<'a> = JoseCtxView<'a>;
}

/// Links the `jose` import of every supported contract version.
pub(crate) fn add_to_linker<T: JoseView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasJose>(linker, T::jose)?;
    v0_1::jose::add_to_linker::<T, HasJose>(linker, T::jose)?;
    v0_2::jose::add_to_linker::<T, HasJose>(linker, T::jose)
}

impl JoseCtxView<'_> {
    async fn fetch_jwks(&mut self, url: String) -> Result<String, HostError> {
        let request = Request {
            method: "GET".into(),
            url: url.clone(),
            headers: vec![("accept".into(), "application/json".into())],
            body: None,
        };
        let response = self.http.send_request(request).await?;
        if response.status != 200 {
            return Err(HostError::Failed(format!("JWKS {url} answered HTTP {}", response.status)));
        }
        String::from_utf8(response.body).map_err(|_| HostError::Failed(format!("JWKS {url} is not UTF-8")))
    }
}

/// Whether `jwk` could verify a signature made with `alg`: its key type and curve fit the
/// algorithm, and its `alg`, `use` and `key_ops`, when present, allow it.
fn can_verify(jwk: &Jwk, alg: Algorithm) -> bool {
    let fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        // jsonwebtoken slices `x` to 32 bytes unchecked (a shorter one panicked the host: found
        // by the `jose` fuzz target), so a key of another length is no candidate.
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA && ed25519_key_len(&okp.x) == Some(32)
        }
        AlgorithmParameters::OctetKey(_) => false,
    };
    let common = &jwk.common;
    let alg_ok = common.key_algorithm.is_none_or(|a| a.to_string() == format!("{alg:?}"));
    let use_ok = common.public_key_use.as_ref().is_none_or(|u| *u == PublicKeyUse::Signature);
    let ops_ok = common.key_operations.as_ref().is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    fits && alg_ok && use_ok && ops_ok
}

/// The length of an Ed25519 JWK's `x` (base64url), if it decodes.
fn ed25519_key_len(x: &str) -> Option<usize> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x.trim_end_matches('=')).ok().map(|b| b.len())
}

/// Verifies `token` against `jwks`; the pure part of the import, testable without a store.
/// `before_key` runs before each key is tried (the import charges the call's budget there and
/// checks its deadline); its error ends the verification.
pub(crate) fn verify(
    token: &str,
    jwks: &str,
    expect: &Expectations,
    before_key: &mut dyn FnMut() -> Result<(), HostError>,
) -> Result<serde_json::Value, HostError> {
    let accepted: Vec<Algorithm> = expect
        .algorithms
        .iter()
        .map(|name| match Algorithm::from_str(name) {
            Ok(alg) if SUPPORTED.contains(&alg) => Ok(alg),
            _ => Err(HostError::Invalid(format!(
                "algorithm {name:?} is not supported; use one of RS256, ES256, EdDSA, ..."
            ))),
        })
        .collect::<Result<_, _>>()?;
    if accepted.is_empty() {
        return Err(HostError::Invalid("expectations.algorithms must not be empty".into()));
    }
    if jwks.len() > MAX_JWKS_BYTES {
        return Err(HostError::TooLarge(format!(
            "the JWKS is {} bytes, more than the {MAX_JWKS_BYTES} a JWKS may have",
            jwks.len()
        )));
    }
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| HostError::Invalid(format!("bad JWKS: {e}")))?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| HostError::Failed(format!("malformed JWS: {e}")))?;
    if !accepted.contains(&header.alg) {
        return Err(HostError::Failed(format!(
            "JWS is signed with {:?}, which is not among the accepted algorithms",
            header.alg
        )));
    }
    let candidates: Vec<&Jwk> = set
        .keys
        .iter()
        .filter(|k| header.kid.as_ref().is_none_or(|kid| k.common.key_id.as_ref() == Some(kid)))
        .filter(|k| can_verify(k, header.alg))
        .collect();
    if candidates.is_empty() {
        return Err(HostError::Failed(match &header.kid {
            Some(kid) => format!("no key in the JWKS matches kid {kid:?} and can verify {:?}", header.alg),
            None => format!("no key in the JWKS can verify {:?}", header.alg),
        }));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = u64::from(expect.leeway_seconds);
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    match &expect.issuer {
        Some(iss) => validation.set_issuer(&[iss]),
        None => validation.iss = None,
    }
    match &expect.audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    let mut last = String::from("no usable key");
    for jwk in candidates.iter().take(MAX_CANDIDATE_KEYS) {
        before_key()?;
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => last = e.to_string(),
        }
    }
    if candidates.len() > MAX_CANDIDATE_KEYS {
        return Err(HostError::Failed(format!(
            "JWS rejected: {last}; it names no kid, and the host tried the first {MAX_CANDIDATE_KEYS} of {} keys \
             that could verify it (ask the upstream to set kid)",
            candidates.len()
        )));
    }
    Err(HostError::Failed(format!("JWS rejected: {last}")))
}

impl Host for JoseCtxView<'_> {
    async fn verify(
        &mut self,
        token: String,
        keys: KeySource,
        expect: Expectations,
    ) -> wasmtime::Result<Result<String, HostError>> {
        if let Err(e) = self.http.budget.charge("jose") {
            return Ok(Err(e));
        }
        let jwks = match keys {
            KeySource::Jwks(doc) => doc,
            KeySource::JwksUrl(url) => match self.fetch_jwks(url).await {
                Ok(doc) => doc,
                Err(e) => return Ok(Err(e)),
            },
        };
        // Each key tried is a host call: charged, and checked against the call's deadline.
        let budget = &mut *self.http.budget;
        Ok(verify(&token, &jwks, &expect, &mut || budget.charge("jose")).map(|claims| claims.to_string()))
    }
}

/// Older contracts' `jose`: the same import in their records (`bindings::convert`).
macro_rules! older_jose {
    ($v:ident) => {
        impl $v::jose::Host for JoseCtxView<'_> {
            async fn verify(
                &mut self,
                token: String,
                keys: $v::jose::KeySource,
                expect: $v::jose::Expectations,
            ) -> wasmtime::Result<Result<String, $v::types::HostError>> {
                Ok(Host::verify(self, token, keys.into(), expect.into()).await?.map_err(Into::into))
            }
        }
    };
}
older_jose!(v0_1);
older_jose!(v0_2);

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::connectors::capabilities::http::tests::granted;
    use crate::keys::Keys;
    use crate::storage::{MemoryBackend, Store};

    fn expect(algorithms: &[&str], issuer: Option<&str>, audience: Option<&str>) -> Expectations {
        Expectations {
            algorithms: algorithms.iter().map(|a| a.to_string()).collect(),
            issuer: issuer.map(str::to_string),
            audience: audience.map(str::to_string),
            leeway_seconds: 0,
        }
    }

    /// Tokens signed by the broker's own key code, verified the way a connector would.
    #[tokio::test]
    async fn verifies_signature_issuer_audience_and_expiry() {
        for alg in ["RS256", "ES256", "EdDSA"] {
            let keys = Keys::new(
                Store::new(Arc::new(MemoryBackend::new())),
                alg.parse().unwrap(),
                Duration::from_secs(3600),
                Duration::from_secs(3600),
            );
            let now = crate::clock::now();
            keys.refresh(now).await.unwrap();
            let jwks = keys.jwks().unwrap();
            let token = keys
                .sign(&serde_json::json!({"iss": "https://idp", "aud": "app", "exp": now + 60, "sub": "u"}), "JWT")
                .unwrap();
            let claims =
                verify(&token, &jwks, &expect(&[alg], Some("https://idp"), Some("app")), &mut || Ok(())).unwrap();
            assert_eq!(claims["sub"], "u", "{alg}");
            // (what is wrong, expectations) — each must be refused.
            let refusals = [
                ("wrong issuer", expect(&[alg], Some("https://other"), Some("app"))),
                ("wrong audience", expect(&[alg], Some("https://idp"), Some("other"))),
                ("algorithm not accepted", expect(&["RS384"], None, None)),
            ];
            for (what, e) in refusals {
                assert!(verify(&token, &jwks, &e, &mut || Ok(())).is_err(), "{alg}: {what}");
            }
            let expired = keys.sign(&serde_json::json!({"iss": "https://idp", "exp": now - 10}), "JWT").unwrap();
            assert!(verify(&expired, &jwks, &expect(&[alg], None, None), &mut || Ok(())).is_err(), "{alg}: expired");
            let mut tampered = token.clone();
            tampered.insert(tampered.len() / 2, 'x');
            assert!(verify(&tampered, &jwks, &expect(&[alg], None, None), &mut || Ok(())).is_err(), "{alg}: tampered");
            assert!(
                matches!(
                    verify(&token, &jwks, &expect(&["HS256"], None, None), &mut || Ok(())),
                    Err(HostError::Invalid(_))
                ),
                "no HMAC"
            );
        }
    }

    /// An RS256 token signed by a fresh broker key, its header rewritten without `kid` (so the
    /// signature no longer verifies: every key tried fails), and the broker's JWKS.
    async fn kidless_token_and_jwks() -> (String, serde_json::Value) {
        let keys = Keys::new(
            Store::new(Arc::new(MemoryBackend::new())),
            "RS256".parse().unwrap(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        let now = crate::clock::now();
        keys.refresh(now).await.unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&keys.jwks().unwrap()).unwrap();
        let token = keys.sign(&serde_json::json!({"exp": now + 60}), "JWT").unwrap();
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let rest = token.split_once('.').unwrap().1;
        (format!("{header}.{rest}"), jwks)
    }

    /// `copies` of the JWKS's key (distinct kids) plus `ec` EC keys, as one JWKS document.
    fn many_keys(jwks: &serde_json::Value, copies: usize, ec: usize) -> String {
        let rsa = jwks["keys"][0].clone();
        let mut keys: Vec<serde_json::Value> = (0..copies)
            .map(|i| {
                let mut k = rsa.clone();
                k["kid"] = format!("k{i}").into();
                k
            })
            .collect();
        let p256 = serde_json::json!({"kty": "EC", "crv": "P-256", "use": "sig",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        keys.extend((0..ec).map(|_| p256.clone()));
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Audit finding F4: a token without `kid` no longer makes the host try every key of a
    /// huge JWKS. An inline JWKS over the size cap is refused before parsing; keys whose type
    /// cannot verify the token's algorithm are not tried; at most `MAX_CANDIDATE_KEYS` keys are
    /// tried, each charged to the call's host-call budget.
    #[tokio::test]
    async fn a_kidless_token_tries_few_keys_each_charged() {
        let (token, jwks) = kidless_token_and_jwks().await;
        let any = || expect(&["RS256"], None, None);

        // 8,200 keys inline: refused by size, naming the limit.
        let (ctx, mut budget, _) = granted(&[], 10_000);
        let mut view = JoseCtxView { http: HttpCtxView { ctx: &ctx, budget: &mut budget } };
        let huge = KeySource::Jwks(many_keys(&jwks, 8_200, 0));
        let err = view.verify(token.clone(), huge, any()).await.unwrap().unwrap_err();
        assert!(matches!(&err, HostError::TooLarge(m) if m.contains("JWKS")), "{err:?}");

        // 40 RSA keys that all fail: only the first few are tried, and the error says so.
        let (ctx, mut budget, _) = granted(&[], 10_000);
        let mut view = JoseCtxView { http: HttpCtxView { ctx: &ctx, budget: &mut budget } };
        let keys = KeySource::Jwks(many_keys(&jwks, 40, 0));
        let err = view.verify(token.clone(), keys, any()).await.unwrap().unwrap_err();
        assert!(matches!(&err, HostError::Failed(m) if m.contains("tried the first 8 of 40")), "{err:?}");

        // Each key tried is a host call: a budget of 3 (the call + 2 keys) runs out.
        let (ctx, mut budget, probe) = granted(&[], 3);
        let mut view = JoseCtxView { http: HttpCtxView { ctx: &ctx, budget: &mut budget } };
        let keys = KeySource::Jwks(many_keys(&jwks, 40, 0));
        let err = view.verify(token.clone(), keys, any()).await.unwrap().unwrap_err();
        assert!(matches!(err, HostError::LimitExceeded(_)), "{err:?}");
        assert!(probe.hit_host_call_limit());

        // EC keys cannot verify RS256: with 1 RSA key among 100 EC ones, one key is tried
        // (a budget of 2 suffices) and the error is the signature's.
        let (ctx, mut budget, _) = granted(&[], 2);
        let mut view = JoseCtxView { http: HttpCtxView { ctx: &ctx, budget: &mut budget } };
        let keys = KeySource::Jwks(many_keys(&jwks, 1, 100));
        let err = view.verify(token, keys, any()).await.unwrap().unwrap_err();
        assert!(matches!(&err, HostError::Failed(m) if m.contains("InvalidSignature")), "{err:?}");
    }

    /// Found by the `jose` fuzz target: an Ed25519 key whose `x` is not 32 bytes made
    /// jsonwebtoken's verifier panic (slice out of range) inside the host.
    #[test]
    fn a_short_ed25519_key_is_refused_not_a_panic() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJleHAiOjF9.AA";
        let jwks = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKOg7hcvPg"}]}"#;
        let err = verify(token, jwks, &expect(&["EdDSA"], None, None), &mut || Ok(())).unwrap_err();
        assert!(matches!(&err, HostError::Failed(m) if m.contains("no key in the JWKS can verify EdDSA")), "{err:?}");
    }

    /// The import itself, on a view built here: a JWKS URL outside the allowlist is denied,
    /// and both the `jose` call and its fetch are charged.
    #[tokio::test]
    async fn a_jwks_url_goes_through_the_http_grant() {
        let (ctx, mut budget, probe) = granted(&["idp.example.com"], 8);
        let mut view = JoseCtxView { http: HttpCtxView { ctx: &ctx, budget: &mut budget } };
        let keys = KeySource::JwksUrl("https://evil.example.com/jwks".into());
        let err = view.verify("a.b.c".into(), keys, expect(&["RS256"], None, None)).await.unwrap().unwrap_err();
        assert!(matches!(&err, HostError::Denied(m) if m.contains("evil.example.com")), "{err:?}");
        assert!(probe.denial().is_some());

        let (ctx, mut budget, _) = granted(&[], 1);
        let mut view = JoseCtxView { http: HttpCtxView { ctx: &ctx, budget: &mut budget } };
        let keys = KeySource::JwksUrl("https://idp.example.com/jwks".into());
        let err = view.verify("a.b.c".into(), keys, expect(&["RS256"], None, None)).await.unwrap().unwrap_err();
        assert!(matches!(err, HostError::LimitExceeded(_)), "the fetch is a second host call: {err:?}");
    }
}
