//! The authorization code flow's two browser legs: the URL the browser is sent to (with the
//! broker's `state`, the scopes, and a PKCE S256 challenge when the upstream takes one) and the
//! callback it comes back with, turned into the code and the verifier kept for it.

use portcullis_connector_sdk::{CallbackRequest, ConnectorError, Identity, LoginRedirect, data, log, url};
use serde::{Deserialize, Serialize};

use crate::token::{Client, Stored};
use crate::{random, time};

/// What `login-url` keeps in the login's `state-data` for the callback.
#[derive(Serialize, Deserialize, Default)]
pub struct Pending {
    /// The PKCE verifier, when a challenge was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
}

/// An authorization request to build.
pub struct Authorize<'a> {
    /// The upstream's authorization endpoint (may already carry a query).
    pub endpoint: &'a str,
    pub client_id: &'a str,
    /// Sent as `redirect_uri`; `None` sends none (Bitbucket uses the consumer's callback).
    pub redirect_uri: Option<&'a str>,
    /// Joined with spaces; no `scope` parameter at all when empty (as Dex's oauth2 library).
    pub scopes: &'a [String],
    /// Send a PKCE S256 challenge and keep the verifier.
    pub pkce: bool,
    /// More parameters (`prompt`, `domain_hint`), after the standard ones.
    pub extra: &'a [(&'a str, &'a str)],
}

impl Authorize<'_> {
    /// The redirect carrying `state`, with the verifier in its state-data.
    pub fn redirect(&self, state: &str) -> Result<LoginRedirect, ConnectorError> {
        let pending = Pending { verifier: if self.pkce { Some(random::token()?) } else { None } };
        let challenge = pending.verifier.as_deref().map(random::s256);
        let scope = self.scopes.join(" ");
        let mut params = vec![("client_id", self.client_id)];
        if let Some(uri) = self.redirect_uri {
            params.push(("redirect_uri", uri));
        }
        params.push(("response_type", "code"));
        if !scope.is_empty() {
            params.push(("scope", &scope));
        }
        params.push(("state", state));
        if let Some(challenge) = challenge.as_deref() {
            params.push(("code_challenge", challenge));
            params.push(("code_challenge_method", "S256"));
        }
        params.extend_from_slice(self.extra);
        let url = url::with_query(self.endpoint, &params);
        Ok(LoginRedirect::new(url).state_data(data::encode(&pending)?))
    }
}

/// A callback that carries a code.
pub struct Callback<'a> {
    pub code: &'a str,
    /// The PKCE verifier to send with the code, if the login sent a challenge.
    pub verifier: Option<String>,
}

/// The code of `req`, after the upstream's error answer (`access_denied` → 403, anything else
/// → 502, naming `upstream`), and the verifier the login kept.
pub fn callback<'a>(req: &'a CallbackRequest, upstream: &str) -> Result<Callback<'a>, ConnectorError> {
    req.check_oauth_error(upstream)?;
    let code = req
        .param("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ConnectorError::BadRequest(format!("{upstream}'s answer has no code")))?;
    let pending: Pending = data::decode(req.state_data.as_deref()).unwrap_or_default();
    Ok(Callback { code, verifier: pending.verifier })
}

/// A callback's login as every OAuth-family connector does it: the upstream's answer checked
/// ([`callback`]), the code exchanged at `client` with `redirect_uri` and the login's PKCE
/// verifier (if it sent a challenge), the user read with the new token by `identity`, and one
/// log line naming the user.
pub fn login_with_code(
    req: &CallbackRequest,
    client: &Client<'_>,
    redirect_uri: Option<&str>,
    identity: impl FnOnce(&Stored) -> Result<Identity, ConnectorError>,
) -> Result<Identity, ConnectorError> {
    let callback = callback(req, client.upstream)?;
    let token = client.exchange_code(callback.code, redirect_uri, callback.verifier.as_deref())?;
    let id = identity(&Stored::from_token(&token, None, time::now()))?;
    let name = id.preferred_username.as_deref().filter(|n| !n.is_empty()).unwrap_or(&id.user_id);
    log::info(&format!("{} user {name} logged in", client.upstream));
    Ok(id)
}

/// A refresh as every OAuth-family connector does it: the stored token of `previous`, renewed
/// at the client `client` gives when it has expired ([`Stored::renew`]; `client` is not called
/// while the token is live), the user read again by `identity`, who must be the same user
/// ([`same_user`]).
pub fn refresh_stored<'a>(
    previous: &Identity,
    upstream: &str,
    client: impl FnOnce() -> Result<Client<'a>, ConnectorError>,
    identity: impl FnOnce(&Stored) -> Result<Identity, ConnectorError>,
) -> Result<Identity, ConnectorError> {
    let stored = Stored::decode(previous.connector_data.as_deref(), upstream)?;
    let stored = if stored.valid_at(time::now()) { stored } else { stored.renew(&client()?)?.0 };
    same_user(upstream, previous, identity(&stored)?)
}

/// A refresh's identity, if the stored token still speaks for the user it was issued to (an
/// upstream that reassigned the token's account must not log someone else in).
pub fn same_user(upstream: &str, previous: &Identity, refreshed: Identity) -> Result<Identity, ConnectorError> {
    if refreshed.user_id != previous.user_id {
        return Err(ConnectorError::Denied(format!(
            "the stored {upstream} token now belongs to user {} instead of {}",
            refreshed.user_id, previous.user_id
        )));
    }
    Ok(refreshed)
}

/// The scopes to ask upstream: the configured ones, or `defaults` when none are configured.
pub fn scopes_or(configured: &[String], defaults: &[&str]) -> Vec<String> {
    if configured.is_empty() { defaults.iter().map(|s| s.to_string()).collect() } else { configured.to_vec() }
}

/// Adds `scope` to `scopes` unless it is there already.
pub fn add_scope(scopes: &mut Vec<String>, scope: &str) {
    if !scopes.iter().any(|s| s == scope) {
        scopes.push(scope.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists() {
        let mut s = scopes_or(&[], &["read_user"]);
        add_scope(&mut s, "openid");
        add_scope(&mut s, "read_user");
        assert_eq!(s, ["read_user", "openid"]);
        assert_eq!(scopes_or(&["a".into()], &["b"]), ["a"]);
    }
}
