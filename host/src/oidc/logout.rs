//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–3): who is asking, and
//! whether the post-logout redirect they ask for is registered.

use std::collections::{BTreeMap, HashMap};

use crate::config::Client;
use crate::ids::ClientId;

/// A logout request's parameters (empty values count as absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

impl LogoutRequest {
    pub fn parse(params: &HashMap<String, String>) -> Self {
        let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            id_token_hint: get("id_token_hint"),
            client_id: get("client_id"),
            post_logout_redirect_uri: get("post_logout_redirect_uri"),
            state: get("state"),
        }
    }
}

/// Why a logout is refused (the session is kept: the user can still close the browser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutRefusal {
    /// The `id_token_hint` was not signed by this broker.
    ForeignHint,
    /// The redirect is not among the client's `postLogoutRedirectURIs`.
    UnregisteredRedirect,
}

/// Where the browser goes once the session is ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutTarget {
    /// The logged-out page.
    Page,
    /// Back to the client, with its `state`.
    Redirect { uri: String, state: Option<String> },
}

/// Decides the logout. `hinted` is the client the verified `id_token_hint` was issued to:
/// `None` when there was no hint, `Some(None)` when the hint did not verify.
pub fn decide(
    request: &LogoutRequest,
    hinted: Option<Option<String>>,
    clients: &BTreeMap<ClientId, Client>,
) -> Result<LogoutTarget, LogoutRefusal> {
    let hinted = match hinted {
        Some(None) => return Err(LogoutRefusal::ForeignHint),
        Some(Some(client)) => Some(client),
        None => None,
    };
    let Some(uri) = &request.post_logout_redirect_uri else { return Ok(LogoutTarget::Page) };
    let client = hinted.as_ref().or(request.client_id.as_ref()).and_then(|id| clients.get(id.as_str()));
    match client {
        Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
            Ok(LogoutTarget::Redirect { uri: uri.clone(), state: request.state.clone() })
        }
        _ => Err(LogoutRefusal::UnregisteredRedirect),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_redirects() {
        let client = Client {
            id: "app".into(),
            secret: None,
            public: false,
            redirect_uris: Vec::new(),
            name: "app".into(),
            logo_url: None,
            trusted_peers: Vec::new(),
            post_logout_redirect_uris: vec!["http://app/bye".into()],
            allowed_connectors: Vec::new(),
            backchannel_logout_uri: None,
            refresh_lifetime: Default::default(),
            sso_shared_with: None,
            client_credentials_groups: Vec::new(),
        };
        let clients: BTreeMap<ClientId, _> = [("app".into(), client)].into();
        let mut request =
            LogoutRequest { post_logout_redirect_uri: Some("http://app/bye".into()), ..Default::default() };
        assert_eq!(decide(&request, None, &clients), Err(LogoutRefusal::UnregisteredRedirect), "no client named");
        assert!(matches!(decide(&request, Some(Some("app".into())), &clients), Ok(LogoutTarget::Redirect { .. })));
        request.client_id = Some("app".into());
        assert!(matches!(decide(&request, None, &clients), Ok(LogoutTarget::Redirect { .. })));
        assert_eq!(decide(&request, Some(None), &clients), Err(LogoutRefusal::ForeignHint));
        request.post_logout_redirect_uri = Some("http://evil/".into());
        assert_eq!(decide(&request, None, &clients), Err(LogoutRefusal::UnregisteredRedirect));
        assert_eq!(decide(&LogoutRequest::default(), None, &clients), Ok(LogoutTarget::Page));
    }
}
