//! OAuth 2.0 token exchange (RFC 8693) as Dex's oidc connector serves it: a token the provider
//! issued to someone else is checked, and its claims say whose it is. An ID token is verified
//! against the provider's JWKS (signature, `iss`, `exp`, and `aud` when a client ID is
//! configured); an access token is opaque to us, so the provider's userinfo endpoint checks it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_connector_sdk::jose::{self, Expectations, KeySource};
use portcullis_connector_sdk::{ConnectorError, HostError, http};
use serde_json::{Map, Value};

use crate::Provider;
use crate::token::{LEEWAY_SECONDS, check_claims};

/// `subject_token_type` of an ID token (RFC 8693 §3).
pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// `subject_token_type` of an access token (RFC 8693 §3).
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The kind of subject token a client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectType {
    IdToken,
    AccessToken,
}

impl SubjectType {
    /// The token type named by `urn`; any other is `unsupported`, naming the two accepted.
    pub fn parse(urn: &str) -> Result<Self, ConnectorError> {
        match urn {
            ID_TOKEN => Ok(Self::IdToken),
            ACCESS_TOKEN => Ok(Self::AccessToken),
            other => Err(ConnectorError::Unsupported(format!(
                "subject_token_type {other:?} is not accepted; send {ID_TOKEN} or {ACCESS_TOKEN}"
            ))),
        }
    }
}

/// How the connector checks subject tokens.
pub struct Checks<'a> {
    /// `aud` must contain it (the configured `clientID`); `None` accepts any audience, as Dex does.
    pub audience: Option<&'a str>,
    /// Accepted `iss` values.
    pub issuers: &'a [&'a str],
    /// `getUserInfo`: access tokens are checked at userinfo, and ID tokens carry no more claims.
    pub get_user_info: bool,
}

/// The claims of a verified subject token. Invalid, expired or foreign tokens are `denied`; an
/// unreachable provider is `upstream`.
pub fn subject_claims(
    provider: &Provider,
    checks: &Checks,
    kind: SubjectType,
    token: &str,
) -> Result<Map<String, Value>, ConnectorError> {
    match kind {
        SubjectType::IdToken => verify_id_token(provider, checks, token),
        SubjectType::AccessToken if checks.get_user_info => userinfo(provider, token),
        SubjectType::AccessToken => Err(ConnectorError::Unsupported(
            "this connector checks access tokens at the provider's userinfo endpoint, which is off; \
             set getUserInfo: true in its config, or exchange an ID token"
                .into(),
        )),
    }
}

/// The JWKS is fetched here rather than by `jose`, so a provider that cannot be reached
/// (`upstream`) is told apart from a token that does not verify (`denied`).
fn verify_id_token(provider: &Provider, checks: &Checks, token: &str) -> Result<Map<String, Value>, ConnectorError> {
    refuse_access_token(token)?;
    let jwks = http::Request::get(&provider.jwks_uri)
        .header("accept", "application/json")
        .send()
        .map_err(ConnectorError::from)
        .and_then(http::Response::error_for_status)
        .and_then(|r| r.text().map(str::to_string))
        .map_err(|e| ConnectorError::Upstream(format!("jwks_uri {}: {}", provider.jwks_uri, e.message())))?;
    let expect = Expectations {
        algorithms: provider.algorithms(),
        issuer: match checks.issuers {
            [one] => Some(one.to_string()),
            _ => None,
        },
        audience: checks.audience.map(str::to_string),
        leeway_seconds: LEEWAY_SECONDS,
    };
    let payload = jose::verify(token, &KeySource::Jwks(jwks), &expect).map_err(|e| match e {
        HostError::Failed(m) => ConnectorError::Denied(format!("the subject ID token does not verify: {m}")),
        other => ConnectorError::from(other),
    })?;
    let claims: Map<String, Value> = serde_json::from_str(&payload)
        .map_err(|_| ConnectorError::Denied("the subject ID token's payload is not a JSON object".into()))?;
    check_subject_claims(&claims, checks)?;
    Ok(claims)
}

/// An access token in JWT form (RFC 9068, `typ: at+jwt`) verifies with the same keys, but it
/// is not an ID token: refused, naming the type to send it as.
fn refuse_access_token(token: &str) -> Result<(), ConnectorError> {
    let header = token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
        .and_then(|h| serde_json::from_slice::<Map<String, Value>>(&h).ok());
    let typ = header.as_ref().and_then(|h| h.get("typ")).and_then(Value::as_str).unwrap_or_default();
    let typ = typ.to_ascii_lowercase();
    if typ == "at+jwt" || typ == "application/at+jwt" {
        return Err(ConnectorError::Denied(format!(
            "the subject token is an access token (typ at+jwt), not an ID token; send it as {ACCESS_TOKEN}"
        )));
    }
    Ok(())
}

/// `check_claims` without a nonce (none was sent) and, with no audience configured, without
/// `azp`; its refusals become `denied`, since the token is the client's, not the provider's.
fn check_subject_claims(claims: &Map<String, Value>, checks: &Checks) -> Result<(), ConnectorError> {
    let refused = |e: ConnectorError| {
        ConnectorError::Denied(
            e.message().replace("the upstream ID token was refused", "the subject ID token was refused"),
        )
    };
    match checks.audience {
        Some(audience) => check_claims(claims, audience, checks.issuers, None).map_err(refused),
        None => {
            let mut without_aud = claims.clone();
            without_aud.remove("aud");
            check_claims(&without_aud, "", checks.issuers, None).map_err(refused)
        }
    }
}

/// The userinfo of an access token: the provider vouches for the token by answering. 401 and
/// 403 mean the token is not (or no longer) good: `denied`.
fn userinfo(provider: &Provider, access_token: &str) -> Result<Map<String, Value>, ConnectorError> {
    let Some(endpoint) = provider.userinfo_endpoint.as_deref() else {
        return Err(ConnectorError::Upstream(format!(
            "the discovery document of {} has no userinfo_endpoint, so access tokens cannot be checked; \
             exchange an ID token",
            provider.issuer
        )));
    };
    let response = http::Request::get(endpoint)
        .header("accept", "application/json")
        .header("authorization", &format!("Bearer {access_token}"))
        .send()
        .map_err(|e| ConnectorError::Upstream(format!("userinfo {endpoint}: {}", ConnectorError::from(e).message())))?;
    if matches!(response.status, 400 | 401 | 403) {
        return Err(ConnectorError::Denied(format!(
            "the provider's userinfo endpoint refused the subject access token (HTTP {})",
            response.status
        )));
    }
    let info: Map<String, Value> = response
        .error_for_status()
        .and_then(|r| r.json())
        .map_err(|e| ConnectorError::Upstream(format!("userinfo {endpoint}: {}", e.message())))?;
    match info.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(info),
        _ => Err(ConnectorError::Upstream("the userinfo response has no sub".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn token_types() {
        assert_eq!(SubjectType::parse(ID_TOKEN).unwrap(), SubjectType::IdToken);
        assert_eq!(SubjectType::parse(ACCESS_TOKEN).unwrap(), SubjectType::AccessToken);
        let err = SubjectType::parse("urn:ietf:params:oauth:token-type:jwt").unwrap_err();
        assert!(matches!(&err, ConnectorError::Unsupported(m) if m.contains("token-type:jwt")), "{err:?}");
    }

    #[test]
    fn access_tokens_are_not_id_tokens() {
        let jwt = |header: Value| format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(header.to_string()));
        assert!(refuse_access_token(&jwt(json!({"alg": "RS256", "typ": "JWT"}))).is_ok());
        assert!(refuse_access_token("not a jwt").is_ok(), "left for jose to refuse");
        let err = refuse_access_token(&jwt(json!({"alg": "RS256", "typ": "at+JWT"}))).unwrap_err();
        assert!(matches!(&err, ConnectorError::Denied(m) if m.contains(ACCESS_TOKEN)), "{err:?}");
    }

    /// (audience configured, claims) → refused because of (or accepted when `None`).
    #[test]
    fn subject_claims_checks() {
        let issuers = ["https://idp"];
        let rows = [
            (Some("app"), json!({"iss": "https://idp", "sub": "u", "aud": "app"}), None),
            (None, json!({"iss": "https://idp", "sub": "u", "aud": ["kubectl", "ci"]}), None),
            (Some("app"), json!({"iss": "https://idp", "sub": "u", "aud": ["app", "x"], "azp": "x"}), Some("azp")),
            (None, json!({"iss": "https://other", "sub": "u", "aud": "x"}), Some("iss")),
            (None, json!({"iss": "https://idp", "aud": "x"}), Some("sub")),
        ];
        for (audience, c, refused) in rows {
            let checks = Checks { audience, issuers: &issuers, get_user_info: false };
            match (check_subject_claims(&claims(c.clone()), &checks), refused) {
                (Ok(()), None) => {}
                (Err(ConnectorError::Denied(m)), Some(what)) => {
                    assert!(m.contains(what) && m.starts_with("the subject ID token"), "{c}: {m}")
                }
                (other, _) => panic!("{c}: {other:?}"),
            }
        }
    }
}
