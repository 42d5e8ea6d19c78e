//! The `jose` import: verifies a compact JWS against a JWKS (inline, or fetched through the
//! same allowlisted HTTP path) and checks `exp`, `nbf`, `iss` and `aud`, so guests need no
//! cryptography of their own. [`JoseCtxView`] wraps the call's [`HttpCtxView`], so a JWKS URL
//! goes through the same allowlist and budget as the `http` import.

use std::str::FromStr;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use wasmtime::component::{HasData, Linker};

use super::http::HttpCtxView;
use crate::connectors::bindings::HostError;
use crate::connectors::bindings::current::http::Request;
use crate::connectors::bindings::current::jose::{self as wit, Expectations, Host, KeySource};
use crate::connectors::bindings::v0_1::portcullis::connector as v0_1;

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
    v0_1::jose::add_to_linker::<T, HasJose>(linker, T::jose)
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

/// Verifies `token` against `jwks`; the pure part of the import, testable without a store.
pub(crate) fn verify(token: &str, jwks: &str, expect: &Expectations) -> Result<serde_json::Value, HostError> {
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
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| HostError::Invalid(format!("bad JWKS: {e}")))?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| HostError::Failed(format!("malformed JWS: {e}")))?;
    if !accepted.contains(&header.alg) {
        return Err(HostError::Failed(format!(
            "JWS is signed with {:?}, which is not among the accepted algorithms",
            header.alg
        )));
    }
    let candidates: Vec<_> = match &header.kid {
        Some(kid) => set.find(kid).into_iter().collect(),
        None => set.keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(HostError::Failed(format!("no key in the JWKS matches kid {:?}", header.kid.unwrap_or_default())));
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
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => last = e.to_string(),
        }
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
        Ok(verify(&token, &jwks, &expect).map(|claims| claims.to_string()))
    }
}

/// Contract 0.1's `jose`: the same import in 0.1's records.
impl v0_1::jose::Host for JoseCtxView<'_> {
    async fn verify(
        &mut self,
        token: String,
        keys: v0_1::jose::KeySource,
        expect: v0_1::jose::Expectations,
    ) -> wasmtime::Result<Result<String, v0_1::types::HostError>> {
        Ok(Host::verify(self, token, keys.into(), expect.into()).await?.map_err(Into::into))
    }
}

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
            let claims = verify(&token, &jwks, &expect(&[alg], Some("https://idp"), Some("app"))).unwrap();
            assert_eq!(claims["sub"], "u", "{alg}");
            // (what is wrong, expectations) — each must be refused.
            let refusals = [
                ("wrong issuer", expect(&[alg], Some("https://other"), Some("app"))),
                ("wrong audience", expect(&[alg], Some("https://idp"), Some("other"))),
                ("algorithm not accepted", expect(&["RS384"], None, None)),
            ];
            for (what, e) in refusals {
                assert!(verify(&token, &jwks, &e).is_err(), "{alg}: {what}");
            }
            let expired = keys.sign(&serde_json::json!({"iss": "https://idp", "exp": now - 10}), "JWT").unwrap();
            assert!(verify(&expired, &jwks, &expect(&[alg], None, None)).is_err(), "{alg}: expired");
            let mut tampered = token.clone();
            tampered.insert(tampered.len() / 2, 'x');
            assert!(verify(&tampered, &jwks, &expect(&[alg], None, None)).is_err(), "{alg}: tampered");
            assert!(
                matches!(verify(&token, &jwks, &expect(&["HS256"], None, None)), Err(HostError::Invalid(_))),
                "no HMAC"
            );
        }
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
