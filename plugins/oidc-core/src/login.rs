//! The authorization code flow: the URL the browser goes to (PKCE S256, nonce) and the
//! callback it comes back with, turned into verified ID token claims.

use portcullis_connector_sdk::{CallbackRequest, ConnectorError, LoginRedirect, data, url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::token::{self, TokenResponse};
use crate::{Client, Provider, random};

/// What `login-url` keeps in the login's `state-data` for the callback.
#[derive(Serialize, Deserialize)]
pub struct Pending {
    pub verifier: String,
    pub nonce: String,
}

impl Pending {
    fn decode(bytes: Option<&[u8]>) -> Result<Self, ConnectorError> {
        data::decode(bytes)
            .ok_or_else(|| ConnectorError::BadRequest("this login has no PKCE verifier or nonce; log in again".into()))
    }
}

/// The authorization URL for `scopes`, with `prompt` when not empty and `extra` parameters
/// (Google's `hd`, `access_type`), and the state-data to keep.
pub fn authorization_url(
    provider: &Provider,
    client: &Client,
    scopes: &[String],
    prompt: &str,
    extra: &[(&str, &str)],
    state: &str,
) -> Result<LoginRedirect, ConnectorError> {
    let pending = Pending { verifier: random::token()?, nonce: random::token()? };
    let challenge = random::s256(&pending.verifier);
    let scope = scopes.join(" ");
    let mut params = vec![
        ("client_id", client.client_id),
        ("response_type", "code"),
        ("redirect_uri", client.redirect_uri),
        ("scope", scope.as_str()),
        ("state", state),
        ("nonce", pending.nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if !prompt.is_empty() {
        params.push(("prompt", prompt));
    }
    params.extend_from_slice(extra);
    let state_data = data::encode(&pending)?;
    Ok(LoginRedirect::new(url::with_query(&provider.authorization_endpoint, &params)).state_data(state_data))
}

/// A finished login: the verified ID token claims and the tokens that came with them.
pub struct Login {
    pub claims: Map<String, Value>,
    pub tokens: TokenResponse,
}

/// Turns the provider's redirect into a verified login: checks for an error answer and the
/// RFC 9207 `iss` parameter, redeems the code with the PKCE verifier, verifies the ID token
/// and its nonce.
pub fn handle_callback(
    provider: &Provider,
    client: &Client,
    req: &CallbackRequest,
    issuers: &[&str],
) -> Result<Login, ConnectorError> {
    req.check_oauth_error("the identity provider")?;
    if let Some(iss) = req.param("iss")
        && !issuers.contains(&iss)
    {
        return Err(ConnectorError::BadRequest("the callback's iss is not the configured issuer".into()));
    }
    let code = req.param("code").ok_or_else(|| ConnectorError::BadRequest("the callback has no code".into()))?;
    let pending = Pending::decode(req.state_data.as_deref())?;
    let tokens = token::exchange_code(provider, client, code, &pending.verifier)?;
    let id_token = tokens
        .id_token
        .as_deref()
        .ok_or_else(|| ConnectorError::Upstream("the token response has no id_token; is `openid` in scopes?".into()))?;
    let claims = token::verify_id_token(provider, client.client_id, id_token, issuers, Some(&pending.nonce))?;
    Ok(Login { claims, tokens })
}
