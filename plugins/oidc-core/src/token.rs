//! The token endpoint (authorization code and refresh grants) and ID token verification
//! through the host's `jose` import.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_connector_sdk::jose::{self, Expectations, KeySource};
use portcullis_connector_sdk::{ConnectorError, data, http, url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Client, Provider};

/// Allowed clock skew for `exp`/`nbf`, in seconds.
pub(crate) const LEEWAY_SECONDS: u32 = 30;

/// A successful token response (RFC 6749 §5.1 plus `id_token`).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// What the connector keeps with the user's offline session: the upstream refresh token.
#[derive(Serialize, Deserialize)]
pub struct ConnectorData {
    pub refresh_token: String,
    /// The ID token's `sub`, to check a userinfo answer against when a refresh brings no ID token.
    #[serde(default)]
    pub sub: Option<String>,
}

impl ConnectorData {
    pub fn encode(&self) -> Option<Vec<u8>> {
        data::encode(self).ok()
    }

    /// Ours, or what Dex kept for a session `portcullis import-dex` carried over, so its refresh
    /// through the upstream goes on: Dex's `oidc` connector keeps `{"RefreshToken": <base64>}`
    /// (a Go `[]byte`), its `google` connector the bare refresh token.
    pub fn decode(bytes: Option<&[u8]>) -> Result<Self, ConnectorError> {
        use base64::Engine as _;
        /// Dex's `oidc` connector data.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct DexOidc {
            #[serde(rename = "RefreshToken")]
            refresh_token: Option<String>,
        }
        let bytes = bytes.ok_or_else(|| {
            ConnectorError::Denied("this login kept no upstream refresh token; the user must log in again".into())
        })?;
        let unreadable = || ConnectorError::Denied("the stored connector data is unreadable; log in again".into());
        if let Ok(ours) = serde_json::from_slice::<Self>(bytes) {
            return Ok(ours);
        }
        if let Ok(dex) = serde_json::from_slice::<DexOidc>(bytes) {
            let token = base64::engine::general_purpose::STANDARD
                .decode(dex.refresh_token.unwrap_or_default())
                .ok()
                .and_then(|t| String::from_utf8(t).ok())
                .filter(|t| !t.is_empty())
                .ok_or_else(unreadable)?;
            return Ok(Self { refresh_token: token, sub: None });
        }
        // A bare token (RFC 6749 §A.17: visible ASCII), never anything that looks like JSON.
        let bare = std::str::from_utf8(bytes).ok().filter(|t| {
            !t.is_empty() && !t.starts_with(['{', '[', '"']) && t.bytes().all(|b| (0x21..=0x7e).contains(&b))
        });
        bare.map(|t| Self { refresh_token: t.to_string(), sub: None }).ok_or_else(unreadable)
    }
}

/// `POST token_endpoint` with `grant` parameters and the client's credentials.
pub fn request(provider: &Provider, client: &Client, grant: &[(&str, &str)]) -> Result<TokenResponse, ConnectorError> {
    read(provider, post(provider, client, grant)?)
}

/// The OAuth `error` code of a refused token request (RFC 6749 §5.2), if the body has one.
fn oauth_error(response: &http::Response) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    body.get("error").and_then(Value::as_str).map(str::to_string)
}

/// The token response, or an upstream error naming the status and OAuth error code.
fn read(provider: &Provider, response: http::Response) -> Result<TokenResponse, ConnectorError> {
    let response = response.error_for_status().map_err(|e| {
        ConnectorError::Upstream(format!("token endpoint {}: {}", provider.token_endpoint, e.message()))
    })?;
    response.json()
}

fn post(provider: &Provider, client: &Client, grant: &[(&str, &str)]) -> Result<http::Response, ConnectorError> {
    let mut form: Vec<(&str, &str)> = grant.to_vec();
    let mut headers = vec![("accept", "application/json".to_string())];
    if client.secret_in_body {
        form.push(("client_id", client.client_id));
        form.push(("client_secret", client.client_secret));
    } else {
        // RFC 6749 §2.3.1: both parts form-encoded before base64.
        let pair = format!("{}:{}", url::encode(client.client_id), url::encode(client.client_secret));
        headers.push(("authorization", format!("Basic {}", STANDARD.encode(pair))));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http::post_form(&provider.token_endpoint, &headers, &form)
}

/// Redeems an authorization code.
pub fn exchange_code(
    provider: &Provider,
    client: &Client,
    code: &str,
    verifier: &str,
) -> Result<TokenResponse, ConnectorError> {
    request(
        provider,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
}

/// Redeems an upstream refresh token. `invalid_grant` (revoked or expired) is `Denied`, so the
/// client is told its refresh token is dead; any other failure stays `Upstream` (retryable).
pub fn refresh(provider: &Provider, client: &Client, refresh_token: &str) -> Result<TokenResponse, ConnectorError> {
    let response = post(provider, client, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])?;
    if !response.is_success() && oauth_error(&response).as_deref() == Some("invalid_grant") {
        return Err(ConnectorError::Denied(
            "the upstream refresh token was revoked or has expired (invalid_grant); the user must log in again".into(),
        ));
    }
    read(provider, response)
}

/// Verifies an ID token: signature against `jwks_uri` with the discovered algorithms, `exp`,
/// `aud` containing the client ID (all by the host), `iss` among `issuers`, then `nonce`
/// (when one was sent) and `azp` (when there are several audiences). Returns the claims.
pub fn verify_id_token(
    provider: &Provider,
    client_id: &str,
    id_token: &str,
    issuers: &[&str],
    nonce: Option<&str>,
) -> Result<Map<String, Value>, ConnectorError> {
    let expect = Expectations {
        algorithms: provider.algorithms(),
        issuer: match issuers {
            [one] => Some(one.to_string()),
            _ => None,
        },
        audience: Some(client_id.to_string()),
        leeway_seconds: LEEWAY_SECONDS,
    };
    let payload = jose::verify(id_token, &KeySource::JwksUrl(provider.jwks_uri.clone()), &expect)
        .map_err(|e| ConnectorError::Upstream(format!("the upstream ID token was refused: {}", e.message())))?;
    let claims: Map<String, Value> = serde_json::from_str(&payload)
        .map_err(|_| ConnectorError::Upstream("the upstream ID token's payload is not a JSON object".into()))?;
    check_claims(&claims, client_id, issuers, nonce)?;
    Ok(claims)
}

/// The checks the host does not make (OIDC Core §3.1.3.7).
pub fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    issuers: &[&str],
    nonce: Option<&str>,
) -> Result<(), ConnectorError> {
    let refuse = |why: &str| Err(ConnectorError::Upstream(format!("the upstream ID token was refused: {why}")));
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if issuers.contains(&iss) => {}
        _ => return refuse("its iss is not the configured issuer"),
    }
    if let Some(sent) = nonce
        && claims.get("nonce").and_then(Value::as_str) != Some(sent)
    {
        return refuse("its nonce is not the one this login sent");
    }
    if let Some(Value::Array(audiences)) = claims.get("aud")
        && audiences.len() > 1
        && claims.get("azp").and_then(Value::as_str) != Some(client_id)
    {
        return refuse("it has several audiences and its azp is not this client");
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(()),
        _ => refuse("it has no sub"),
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
    fn nonce_iss_azp_sub() {
        let ok = json!({"iss": "https://idp", "sub": "u1", "aud": "app", "nonce": "n1"});
        assert!(check_claims(&claims(ok.clone()), "app", &["https://idp"], Some("n1")).is_ok());
        let cases = [
            (ok.clone(), Some("n2"), "nonce"),
            (json!({"iss": "https://idp", "sub": "u1", "aud": "app"}), Some("n1"), "nonce"),
            (json!({"iss": "https://other", "sub": "u1", "nonce": "n1"}), Some("n1"), "iss"),
            (json!({"iss": "https://idp", "sub": "", "nonce": "n1"}), Some("n1"), "sub"),
            (json!({"iss": "https://idp", "sub": "u", "aud": ["app", "x"], "azp": "x"}), None, "azp"),
            (json!({"iss": "https://idp", "sub": "u", "aud": ["app", "x"]}), None, "azp"),
            (json!({"sub": "u", "aud": "app"}), None, "iss"),
        ];
        for (c, nonce, what) in cases {
            let err = check_claims(&claims(c.clone()), "app", &["https://idp"], nonce).unwrap_err();
            assert!(err.message().contains(what), "{c}: {err:?}");
        }
        let several = json!({"iss": "accounts.google.com", "sub": "u", "aud": ["app", "x"], "azp": "app"});
        assert!(
            check_claims(&claims(several), "app", &["https://accounts.google.com", "accounts.google.com"], None)
                .is_ok()
        );
    }

    #[test]
    fn connector_data_round_trip() {
        let data = ConnectorData { refresh_token: "r".into(), sub: None }.encode();
        assert_eq!(ConnectorData::decode(data.as_deref()).unwrap().refresh_token, "r");
        assert!(ConnectorData::decode(None).is_err());
        assert!(ConnectorData::decode(Some(b"{\"x\": 1}")).is_err());
        assert!(ConnectorData::decode(Some(b"two words")).is_err());
        assert!(ConnectorData::decode(Some(b"")).is_err());
    }

    /// What Dex kept, carried over by `portcullis import-dex`.
    #[test]
    fn dex_connector_data_decodes() {
        // Dex's oidc connector: a Go []byte, base64 in JSON.
        let oidc = ConnectorData::decode(Some(br#"{"RefreshToken":"dXBzdHJlYW0tcmVmcmVzaA=="}"#)).unwrap();
        assert_eq!((oidc.refresh_token.as_str(), oidc.sub), ("upstream-refresh", None));
        assert!(ConnectorData::decode(Some(br#"{"RefreshToken":""}"#)).is_err());
        assert!(ConnectorData::decode(Some(br#"{"RefreshToken":"not base64!"}"#)).is_err());
        // Dex's google connector: the bare refresh token.
        assert_eq!(ConnectorData::decode(Some(b"1//0gLx-refresh")).unwrap().refresh_token, "1//0gLx-refresh");
    }
}
