//! The authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1) as a typed value,
//! and the decisions around a login: is the request acceptable, may single sign-on answer it,
//! which login method to show, and whether the user must approve.

use std::collections::{BTreeMap, HashMap};

use super::{OAuthError, OAuthErrorCode, ScopeSet, pkce};
use crate::config::Client;
use crate::ids::ClientId;

/// The `prompt` values of a request (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
    pub select_account: bool,
}

impl Prompt {
    /// Parses a space-separated `prompt`; `none` stands alone.
    pub fn parse(text: &str) -> Result<Self, OAuthError> {
        let mut prompt = Self::default();
        let mut count = 0;
        for value in text.split(' ').filter(|s| !s.is_empty()) {
            count += 1;
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => prompt.select_account = true,
                _ => return Err(OAuthError::invalid_request("prompt must be none, login, consent or select_account")),
            }
        }
        if prompt.none && count > 1 {
            return Err(OAuthError::invalid_request("prompt=none cannot be combined with other values"));
        }
        Ok(prompt)
    }

    /// The stored form (one string per value).
    pub fn to_list(self) -> Vec<String> {
        [("none", self.none), ("login", self.login), ("consent", self.consent), ("select_account", self.select_account)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Back from the stored form; unknown values (none are ever stored) are ignored.
    pub fn from_list(list: &[String]) -> Self {
        Self::parse(&list.join(" ")).unwrap_or_default()
    }
}

/// Longest `state` accepted, in bytes: enough for any client's encoded state, bounded because
/// every authorization request is stored (audit F2).
pub const MAX_STATE: usize = 2048;
/// Longest `nonce` accepted, in bytes.
pub const MAX_NONCE: usize = 512;

/// A PKCE challenge as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub challenge: String,
    pub method: pkce::Method,
}

impl Challenge {
    /// The `code_challenge` and `code_challenge_method` of a request (an authorization request,
    /// or a device authorization as Dex takes it), if any; `plain` (the default method, as RFC
    /// 7636 has it) only when `plain_allowed`.
    pub fn parse(
        challenge: Option<&str>,
        method: Option<&str>,
        plain_allowed: bool,
    ) -> Result<Option<Self>, OAuthError> {
        let Some(challenge) = challenge else {
            return match method {
                Some(_) => Err(OAuthError::invalid_request("code_challenge_method without code_challenge")),
                None => Ok(None),
            };
        };
        let method = match pkce::Method::parse(method.unwrap_or("plain")) {
            Some(pkce::Method::Plain) if !plain_allowed => {
                return Err(OAuthError::invalid_request("code_challenge_method plain is not allowed; use S256"));
            }
            Some(method) => method,
            None => return Err(OAuthError::invalid_request("code_challenge_method must be S256")),
        };
        if !(43..=128).contains(&challenge.len()) {
            return Err(OAuthError::invalid_request("code_challenge must be 43 to 128 characters"));
        }
        Ok(Some(Self { challenge: challenge.to_string(), method }))
    }
}

/// An authorization request that passed every check: the client and redirect URI are
/// registered, the scopes, PKCE and prompt are acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scopes: ScopeSet,
    pub pkce: Option<Challenge>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    /// `connector_id`: Dex's hint naming the login method to use.
    pub connector_hint: Option<String>,
}

/// Why an authorization request is refused, and so where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeRefusal {
    /// The client is not registered: a page, never a redirect.
    UnknownClient,
    /// The redirect URI is not registered for the client: a page, never a redirect.
    UnregisteredRedirect,
    /// Everything else goes back to the client's (registered) redirect URI (RFC 6749 §4.1.2.1).
    ToClient { redirect_uri: String, state: Option<String>, error: OAuthError },
}

/// What the authorization endpoint checks a request against.
pub struct Policy<'a> {
    pub clients: &'a BTreeMap<ClientId, Client>,
    /// `oauth2.pkce`'s `plain` allowed (S256 only by default).
    pub pkce_plain: bool,
    /// `oauth2.pkce.enforce`: confidential clients must use PKCE too.
    pub pkce_enforce: bool,
    /// The broker's device callback path (the issuer's path + `/device/callback`).
    pub device_callback: &'a str,
}

impl AuthorizeRequest {
    /// Checks the raw parameters (query or form; empty values count as absent).
    pub fn parse(params: &HashMap<String, String>, policy: &Policy<'_>) -> Result<Self, AuthorizeRefusal> {
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let client = get("client_id").and_then(|id| policy.clients.get(id)).ok_or(AuthorizeRefusal::UnknownClient)?;
        let redirect_uri = get("redirect_uri")
            .filter(|r| client.redirect_allowed(r, policy.device_callback))
            .ok_or(AuthorizeRefusal::UnregisteredRedirect)?;
        let state = get("state");
        if state.is_some_and(|s| s.len() > MAX_STATE) {
            // Not echoed back: the client gets the error without the oversized value.
            return Err(AuthorizeRefusal::ToClient {
                redirect_uri: redirect_uri.to_string(),
                state: None,
                error: OAuthError::invalid_request(format!("state is longer than {MAX_STATE} bytes")),
            });
        }
        let refuse = |error: OAuthError| AuthorizeRefusal::ToClient {
            redirect_uri: redirect_uri.to_string(),
            state: state.map(str::to_string),
            error,
        };
        Self::check(client, &get, policy).map_err(refuse).map(|(scopes, pkce, prompt, max_age)| Self {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.to_string(),
            state: state.map(str::to_string),
            nonce: get("nonce").map(str::to_string),
            scopes,
            pkce,
            prompt,
            max_age,
            connector_hint: get("connector_id").map(str::to_string),
        })
    }

    /// The checks whose failures go back to the client, in the order the client hears them.
    #[allow(clippy::type_complexity)]
    fn check<'p>(
        client: &Client,
        get: &impl Fn(&str) -> Option<&'p str>,
        policy: &Policy<'_>,
    ) -> Result<(ScopeSet, Option<Challenge>, Prompt, Option<i64>), OAuthError> {
        match get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::UnsupportedResponseType,
                    format!("response_type {other:?} is not supported; use code"),
                ));
            }
            None => return Err(OAuthError::invalid_request("response_type is required")),
        }
        let scopes = ScopeSet::parse(get("scope").unwrap_or(""))
            .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
        check_audiences(client, &scopes, policy.clients)?;
        let pkce = Challenge::parse(get("code_challenge"), get("code_challenge_method"), policy.pkce_plain)?;
        if client.public && pkce.is_none() {
            return Err(OAuthError::invalid_request("public clients must use PKCE (code_challenge with S256)"));
        }
        if policy.pkce_enforce && pkce.is_none() {
            return Err(OAuthError::invalid_request("this server requires PKCE (code_challenge with S256)"));
        }
        if get("nonce").is_some_and(|n| n.len() > MAX_NONCE) {
            return Err(OAuthError::invalid_request(format!("nonce is longer than {MAX_NONCE} bytes")));
        }
        let prompt = Prompt::parse(get("prompt").unwrap_or(""))?;
        let max_age = match get("max_age").map(str::parse::<i64>) {
            None => None,
            Some(Ok(v)) if v >= 0 => Some(v),
            Some(_) => return Err(OAuthError::invalid_request("max_age must be a non-negative integer")),
        };
        Ok((scopes, pkce, prompt, max_age))
    }
}

/// The `audience:server:client_id:<peer>` scopes of `client`: each peer must list the client in
/// its `trustedPeers` (or be the client itself), as in Dex.
pub fn check_audiences(
    client: &Client,
    scopes: &ScopeSet,
    clients: &BTreeMap<ClientId, Client>,
) -> Result<(), OAuthError> {
    for peer in &scopes.audiences {
        let trusted = clients.get(peer.as_str()).is_some_and(|c| c.trusted_peers.contains(&client.id));
        if !trusted && peer != &client.id {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                format!("client {peer:?} does not list {:?} in trustedPeers", client.id),
            ));
        }
    }
    Ok(())
}

/// A live SSO session, as far as the decision needs it.
pub struct SessionFacts<'a> {
    pub connector_id: &'a str,
    pub auth_time: i64,
    /// The session's connector can still log users in (configured and loaded).
    pub connector_available: bool,
}

/// What the authorization endpoint does once the request is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The browser's session answers the request: no login.
    SingleSignOn,
    /// `prompt=none` and no usable session: `login_required` to the client.
    LoginRequired,
    /// Show the login methods (or go straight to the only one).
    Login,
}

/// Whether single sign-on may answer `request` with `session` (`prompt=login`, `max_age` and
/// the connector hint are honoured).
pub fn start(request: &AuthorizeRequest, session: Option<&SessionFacts<'_>>, now: i64) -> Start {
    let usable = session.is_some_and(|s| {
        !request.prompt.login
            && request.max_age.is_none_or(|age| now - s.auth_time <= age)
            && request.connector_hint.as_deref().is_none_or(|h| h == s.connector_id)
            && s.connector_available
    });
    match usable {
        true => Start::SingleSignOn,
        false if request.prompt.none => Start::LoginRequired,
        false => Start::Login,
    }
}

/// Which login page the chooser step leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'a> {
    /// Straight to this login method.
    Go(&'a str),
    /// The chooser page.
    Chooser,
    /// No login method is configured.
    Nothing,
}

/// The login-method step: the hinted method (`connector_id`), the only method, or the chooser
/// (`alwaysShowLoginScreen` forces it except for a hint). As in Dex, `oauth2.passwordConnector`
/// plays no part here: it names the connector of the password grant.
pub fn choose<'a>(methods: &[&'a str], hint: Option<&str>, always_show: bool) -> Choice<'a> {
    if let Some(id) = hint.and_then(|h| methods.iter().copied().find(|m| *m == h)) {
        return Choice::Go(id);
    }
    match methods {
        [] => Choice::Nothing,
        [only] if !always_show => Choice::Go(only),
        _ => Choice::Chooser,
    }
}

/// What follows a login (or single sign-on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLogin {
    /// Approval is skipped: issue the code.
    IssueCode,
    /// `prompt=none` but approval is needed: `consent_required` to the client.
    ConsentRequired,
    /// Show the approval page.
    AskApproval,
}

pub fn after_login(prompt: Prompt, skip_approval_screen: bool) -> AfterLogin {
    if skip_approval_screen && !prompt.consent {
        AfterLogin::IssueCode
    } else if prompt.none {
        AfterLogin::ConsentRequired
    } else {
        AfterLogin::AskApproval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, public: bool) -> Client {
        Client {
            id: id.into(),
            secret: None,
            public,
            redirect_uris: vec!["http://app/cb".into()],
            name: id.into(),
            logo_url: None,
            trusted_peers: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            allowed_connectors: Vec::new(),
            backchannel_logout_uri: None,
            refresh_lifetime: Default::default(),
            sso_shared_with: None,
            client_credentials_groups: Vec::new(),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(pairs: &[(&str, &str)], public: bool) -> Result<AuthorizeRequest, AuthorizeRefusal> {
        let clients: BTreeMap<ClientId, _> = [("app".into(), client("app", public))].into();
        AuthorizeRequest::parse(
            &params(pairs),
            &Policy { clients: &clients, pkce_plain: false, pkce_enforce: false, device_callback: "/device/callback" },
        )
    }

    const BASE: &[(&str, &str)] =
        &[("client_id", "app"), ("redirect_uri", "http://app/cb"), ("response_type", "code"), ("scope", "openid")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut all = BASE.to_vec();
        all.extend_from_slice(extra);
        all
    }

    fn error_of(result: Result<AuthorizeRequest, AuthorizeRefusal>) -> String {
        match result {
            Err(AuthorizeRefusal::ToClient { error, .. }) => error.error.as_str().to_string(),
            other => panic!("expected an error for the client, got {other:?}"),
        }
    }

    #[test]
    fn untrusted_clients_and_redirects_never_redirect() {
        assert_eq!(parse(&[("client_id", "other")], false), Err(AuthorizeRefusal::UnknownClient));
        let wrong = [("client_id", "app"), ("redirect_uri", "http://evil/cb")];
        assert_eq!(parse(&wrong, false), Err(AuthorizeRefusal::UnregisteredRedirect));
    }

    #[test]
    fn checks_in_order() {
        assert!(parse(BASE, false).is_ok());
        assert_eq!(error_of(parse(&BASE[..3], false)), "invalid_scope");
        assert_eq!(error_of(parse(&with(&[("response_type", "token")]), false)), "unsupported_response_type");
        assert_eq!(error_of(parse(BASE, true)), "invalid_request", "public clients need PKCE");
        let plain = with(&[("code_challenge", "0123456789012345678901234567890123456789abc")]);
        assert_eq!(error_of(parse(&plain, false)), "invalid_request", "plain is off by default");
        assert_eq!(error_of(parse(&with(&[("prompt", "none login")]), false)), "invalid_request");
        assert_eq!(error_of(parse(&with(&[("max_age", "-1")]), false)), "invalid_request");
    }

    #[test]
    fn sso_and_chooser() {
        let mut request = parse(BASE, false).unwrap();
        let session = SessionFacts { connector_id: "mock", auth_time: 100, connector_available: true };
        assert_eq!(start(&request, Some(&session), 200), Start::SingleSignOn);
        request.max_age = Some(50);
        assert_eq!(start(&request, Some(&session), 200), Start::Login);
        request.prompt.none = true;
        assert_eq!(start(&request, Some(&session), 200), Start::LoginRequired);
        assert_eq!(choose(&["local", "mock"], Some("mock"), true), Choice::Go("mock"));
        assert_eq!(choose(&["local", "mock"], None, false), Choice::Chooser);
        assert_eq!(choose(&["mock"], None, false), Choice::Go("mock"));
        assert_eq!(choose(&["mock"], None, true), Choice::Chooser);
        assert_eq!(choose(&[], None, false), Choice::Nothing);
        assert_eq!(after_login(Prompt { none: true, ..Prompt::default() }, false), AfterLogin::ConsentRequired);
        assert_eq!(after_login(Prompt::default(), true), AfterLogin::IssueCode);
    }
}
