//! The token exchange grant (RFC 8693) with Dex's parameters: a client presents a token an
//! upstream issued (`subject_token`), names the connector that can verify it (`connector_id`),
//! and gets one token of ours (`requested_token_type`: an access token by default, or an ID
//! token), never a refresh token. The request is typed here, the scopes and targets decided,
//! and a connector's failure turned into the RFC's error; `web/exchange.rs` does the I/O.

use std::collections::{BTreeMap, HashMap};

use super::{OAuthError, OAuthErrorCode, ScopeSet};
use crate::config::Client;
use crate::connectors::{PluginError, Refusal};
use crate::ids::ClientId;

/// The token types of RFC 8693 §3 the broker accepts and issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    AccessToken,
    IdToken,
}

impl TokenType {
    pub const ACCESS_TOKEN: &'static str = "urn:ietf:params:oauth:token-type:access_token";
    pub const ID_TOKEN: &'static str = "urn:ietf:params:oauth:token-type:id_token";

    pub fn parse(urn: &str) -> Option<Self> {
        match urn {
            Self::ACCESS_TOKEN => Some(Self::AccessToken),
            Self::ID_TOKEN => Some(Self::IdToken),
            _ => None,
        }
    }

    /// Its URN (`issued_token_type`, and what the connector is told).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => Self::ACCESS_TOKEN,
            Self::IdToken => Self::ID_TOKEN,
        }
    }

    /// The response's `token_type`: `Bearer` for an access token; RFC 8693 §2.2.1's `N_A`
    /// for an ID token, which is not usable as an access token.
    pub fn token_type(self) -> &'static str {
        match self {
            Self::AccessToken => "Bearer",
            Self::IdToken => "N_A",
        }
    }
}

/// A token exchange request, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    pub connector_id: String,
    pub subject_token: String,
    pub subject_token_type: TokenType,
    pub requested: TokenType,
    pub scope: Option<String>,
    /// `audience` and `resource` (RFC 8693 §2.1), when given.
    pub targets: Vec<String>,
}

impl std::fmt::Debug for ExchangeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeRequest")
            .field("connector_id", &self.connector_id)
            .field("subject_token", &"[redacted]")
            .field("subject_token_type", &self.subject_token_type)
            .field("requested", &self.requested)
            .finish_non_exhaustive()
    }
}

/// The accepted token types, for error messages.
fn accepted() -> String {
    format!("{} or {}", TokenType::ID_TOKEN, TokenType::ACCESS_TOKEN)
}

impl ExchangeRequest {
    /// The exchange in `form`. Everything missing or unknown is `invalid_request` naming the
    /// parameter and what to send.
    pub fn parse(form: &HashMap<String, String>) -> Result<Self, OAuthError> {
        let given = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let connector_id = given("connector_id").ok_or_else(|| {
            OAuthError::invalid_request(
                "connector_id is required: name the connector whose upstream issued the subject_token",
            )
        })?;
        let subject_token = given("subject_token")
            .ok_or_else(|| OAuthError::invalid_request("subject_token is required: the upstream token to exchange"))?;
        let subject_token_type = match given("subject_token_type") {
            None => {
                return Err(OAuthError::invalid_request(format!(
                    "subject_token_type is required: send {}",
                    accepted()
                )));
            }
            Some(urn) => TokenType::parse(urn).ok_or_else(|| {
                OAuthError::invalid_request(format!("subject_token_type {urn:?} is not accepted; send {}", accepted()))
            })?,
        };
        let requested = match given("requested_token_type") {
            None => TokenType::AccessToken,
            Some(urn) => TokenType::parse(urn).ok_or_else(|| {
                OAuthError::invalid_request(format!(
                    "requested_token_type {urn:?} cannot be issued; ask for {} (the default) or {}",
                    TokenType::ACCESS_TOKEN,
                    TokenType::ID_TOKEN
                ))
            })?,
        };
        if given("actor_token").is_some() || given("actor_token_type").is_some() {
            return Err(OAuthError::invalid_request(
                "actor_token (delegation) is not supported; send the subject_token alone",
            ));
        }
        Ok(Self {
            connector_id: connector_id.to_string(),
            subject_token: subject_token.to_string(),
            subject_token_type,
            requested,
            scope: given("scope").map(str::to_string),
            targets: ["audience", "resource"].into_iter().filter_map(given).map(str::to_string).collect(),
        })
    }

    /// The token is issued to the requesting client (`aud` = its id), so an `audience` or
    /// `resource` may name only that client, or the connector (as Dex's proposal had clients
    /// write); anything else is `invalid_target`.
    pub fn check_targets(&self, client: &ClientId) -> Result<(), OAuthError> {
        match self.targets.iter().find(|t| *t != client.as_str() && **t != self.connector_id) {
            None => Ok(()),
            Some(other) => Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                format!(
                    "tokens are issued for the requesting client only; {other:?} is not {client:?}: \
                     drop audience and resource, or ask for a peer with the audience:server:client_id:<id> scope"
                ),
            )),
        }
    }
}

/// The scopes of the issued token. Nothing is refreshed, so `offline_access` is dropped (Dex
/// ignores it too; the response's `scope` says what was issued). Peers asked for with
/// `audience:server:client_id:<id>` must trust the client, as at the authorization endpoint.
pub fn exchange_scopes(
    scope: Option<&str>,
    client: &Client,
    clients: &BTreeMap<ClientId, Client>,
) -> Result<ScopeSet, OAuthError> {
    let asked = ScopeSet::parse_optional_openid(scope.unwrap_or("openid"))
        .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
    for peer in &asked.audiences {
        let trusted = clients.get(peer.as_str()).is_some_and(|c| c.trusted_peers.contains(&client.id));
        if !trusted && peer != &client.id {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                format!("client {peer:?} does not list {:?} in trustedPeers", client.id),
            ));
        }
    }
    let kept: Vec<String> = asked.all.iter().filter(|s| *s != "offline_access").cloned().collect();
    ScopeSet::parse_optional_openid(&kept.join(" ")).map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))
}

/// What the client hears when the connector could not say whose the subject token is. A token
/// the connector refuses, or a type it does not take, is the client's fault: `invalid_request`
/// (RFC 8693 §2.2.2), with the connector's reason. An upstream that failed or was slow is
/// `temporarily_unavailable`; anything else (a broken or misconfigured plugin) a `server_error`
/// whose cause the broker's log names.
pub fn exchange_failure(connector: &str, e: &PluginError) -> OAuthError {
    match e {
        PluginError::Refused { refusal: Refusal::Denied(why) | Refusal::BadRequest(why), .. } => {
            OAuthError::invalid_request(format!("connector {connector:?} refused the subject_token: {why}"))
        }
        PluginError::Refused { refusal: Refusal::Unsupported(why), .. } => {
            OAuthError::invalid_request(format!("connector {connector:?} cannot exchange this token: {why}"))
        }
        PluginError::Refused { refusal: Refusal::Upstream(_), .. } | PluginError::Deadline { .. } => OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            format!(
                "connector {connector:?} could not check the token with its identity provider (the broker's log \
                 says why); retry later"
            ),
        ),
        _ => OAuthError::server_error(format!(
            "connector {connector:?} failed while checking the token; the broker's log says why"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let base =
            [("connector_id", "upstream"), ("subject_token", "eyJ.x.y"), ("subject_token_type", TokenType::ID_TOKEN)];
        let mut form: HashMap<String, String> = base.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (k, v) in pairs {
            form.insert(k.to_string(), v.to_string());
        }
        form
    }

    #[test]
    fn a_request_defaults_to_an_access_token() {
        let req = ExchangeRequest::parse(&form(&[])).unwrap();
        assert_eq!((req.subject_token_type, req.requested), (TokenType::IdToken, TokenType::AccessToken));
        let req = ExchangeRequest::parse(&form(&[("requested_token_type", TokenType::ID_TOKEN)])).unwrap();
        assert_eq!(req.requested, TokenType::IdToken);
        assert!(!format!("{req:?}").contains("eyJ"), "the subject token is redacted");
    }

    /// (a parameter set to a value, or removed with "") → the error description holds `what`.
    #[test]
    fn bad_requests_name_the_parameter() {
        let rows = [
            ("connector_id", "", "connector_id is required"),
            ("subject_token", "", "subject_token is required"),
            ("subject_token_type", "", "subject_token_type is required"),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt", "token-type:jwt\" is not accepted"),
            ("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token", "cannot be issued"),
            ("actor_token", "a", "actor_token"),
        ];
        for (key, value, what) in rows {
            let err = ExchangeRequest::parse(&form(&[(key, value)])).unwrap_err();
            assert_eq!(err.error, OAuthErrorCode::InvalidRequest, "{key}");
            assert!(err.description.contains(what), "{key}: {}", err.description);
        }
    }

    #[test]
    fn targets_name_the_client_or_the_connector() {
        let client = ClientId::from("app");
        for ok in ["app", "upstream"] {
            assert!(ExchangeRequest::parse(&form(&[("audience", ok)])).unwrap().check_targets(&client).is_ok());
        }
        let err = ExchangeRequest::parse(&form(&[("resource", "https://api.example.com")]))
            .unwrap()
            .check_targets(&client)
            .unwrap_err();
        assert_eq!(err.error, OAuthErrorCode::InvalidTarget);
        assert!(err.description.contains("https://api.example.com"), "{}", err.description);
    }

    #[test]
    fn failures_map_to_the_rfc_errors() {
        let refused = |refusal| PluginError::Refused { connector: "up".into(), call: "token-identity", refusal };
        let rows = [
            (refused(Refusal::Denied("expired".into())), OAuthErrorCode::InvalidRequest),
            (refused(Refusal::Unsupported("no".into())), OAuthErrorCode::InvalidRequest),
            (refused(Refusal::Upstream("down".into())), OAuthErrorCode::TemporarilyUnavailable),
            (refused(Refusal::Config("bad".into())), OAuthErrorCode::ServerError),
        ];
        for (e, code) in rows {
            assert_eq!(exchange_failure("up", &e).error, code, "{e}");
        }
        let denied = exchange_failure("up", &refused(Refusal::Denied("the subject ID token expired".into())));
        assert!(denied.description.contains("expired"), "{}", denied.description);
    }
}
