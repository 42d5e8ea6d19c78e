//! The token endpoint's rules (RFC 6749 §3.2, §4.1.3, §6; RFC 7636 §4.6): client credentials,
//! the typed token request per grant, and the decisions on a presented code or refresh token.
//! The endpoint reads and writes storage around these; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{OAuthError, OAuthErrorCode, ScopeSet, pkce};
use crate::config::{Client, GrantType};
use crate::connectors::{PluginError, Refusal};
use crate::ids::ClientId;

/// The client's credentials as presented: HTTP Basic (preferred) or form fields.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential half (RFC 6749 §2.3.1).
fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={text}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

impl ClientCredentials {
    /// From the `Authorization` header (when it is text) or else `client_id`/`client_secret`.
    pub fn parse(authorization: Option<&str>, form: &HashMap<String, String>) -> Result<Self, OAuthError> {
        let basic = authorization.and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")));
        if let Some(b64) = basic {
            let decoded = STANDARD.decode(b64.trim()).ok().and_then(|d| String::from_utf8(d).ok());
            let (id, secret) = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            return Ok(Self { id: form_decode(id), secret: Some(form_decode(secret)) });
        }
        let id = form
            .get("client_id")
            .cloned()
            .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
        Ok(Self { id, secret: form.get("client_secret").cloned() })
    }

    /// The registered client these credentials prove (secrets compared in constant time; a
    /// public client presents none).
    pub fn authenticate<'a>(&self, clients: &'a BTreeMap<ClientId, Client>) -> Result<&'a Client, OAuthError> {
        let refused = || OAuthError::invalid_client("unknown client or wrong secret");
        let client = clients.get(self.id.as_str()).ok_or_else(refused)?;
        match (&client.secret, self.secret.as_deref()) {
            (Some(expected), Some(given)) if expected.matches(given) => Ok(client),
            (_, None) if client.public => Ok(client),
            _ => Err(refused()),
        }
    }
}

/// A token request, by grant.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
    /// RFC 6749 §4.4: a confidential client for itself.
    ClientCredentials {
        scope: Option<String>,
    },
    /// RFC 6749 §4.3: the user's password, checked by `oauth2.passwordConnector`.
    Password {
        username: String,
        password: String,
        scope: Option<String>,
        /// Dex puts a `nonce` form parameter into the ID token of this grant.
        nonce: Option<String>,
    },
    /// RFC 8693: an upstream token, verified by the connector `connector_id` names.
    TokenExchange(Box<super::exchange::ExchangeRequest>),
    /// RFC 8628 §3.4: a device polling with its device code.
    DeviceCode {
        device_code: String,
        /// The PKCE verifier, when the device authorization had a challenge (as Dex takes it).
        code_verifier: Option<String>,
    },
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.grant_type())
    }
}

impl TokenRequest {
    /// The request of one of the `enabled` grants (`oauth2.grantTypes`); any other grant is
    /// `unsupported_grant_type`, as RFC 6749 §5.2 has it.
    pub fn parse(form: &HashMap<String, String>, enabled: &BTreeSet<GrantType>) -> Result<Self, OAuthError> {
        let get = |k: &str| form.get(k).cloned();
        let require = |k: &str| get(k).ok_or_else(|| OAuthError::invalid_request(format!("{k} is required")));
        let name = form.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let unsupported =
            |why: &str| OAuthError::new(OAuthErrorCode::UnsupportedGrantType, format!("grant_type {name:?} {why}"));
        let grant = GrantType::parse(name).ok_or_else(|| unsupported("is not supported"))?;
        if !grant.served() {
            return Err(unsupported("is not served by this version of the server"));
        }
        if !enabled.contains(&grant) {
            return Err(unsupported("is not enabled on this server"));
        }
        match grant {
            GrantType::AuthorizationCode => Ok(Self::AuthorizationCode {
                code: require("code")?,
                redirect_uri: get("redirect_uri"),
                code_verifier: get("code_verifier"),
            }),
            GrantType::RefreshToken => {
                Ok(Self::RefreshToken { refresh_token: require("refresh_token")?, scope: get("scope") })
            }
            GrantType::ClientCredentials => Ok(Self::ClientCredentials { scope: get("scope") }),
            GrantType::Password => {
                let nonce = get("nonce").filter(|n| !n.is_empty());
                if nonce.as_ref().is_some_and(|n| n.len() > super::authorize::MAX_NONCE) {
                    return Err(OAuthError::invalid_request(format!(
                        "nonce is longer than {} bytes",
                        super::authorize::MAX_NONCE
                    )));
                }
                Ok(Self::Password {
                    username: require("username")?,
                    password: require("password")?,
                    scope: get("scope"),
                    nonce,
                })
            }
            GrantType::TokenExchange => {
                Ok(Self::TokenExchange(Box::new(super::exchange::ExchangeRequest::parse(form)?)))
            }
            GrantType::DeviceCode => {
                Ok(Self::DeviceCode { device_code: require("device_code")?, code_verifier: get("code_verifier") })
            }
        }
    }

    /// The grant.
    pub fn grant(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::Password { .. } => GrantType::Password,
            Self::TokenExchange(_) => GrantType::TokenExchange,
            Self::DeviceCode { .. } => GrantType::DeviceCode,
        }
    }

    /// The `grant_type` (the metrics label).
    pub fn grant_type(&self) -> &'static str {
        self.grant().as_str()
    }
}

/// The scopes of a `client_credentials` request: no user, so no `offline_access` (nothing to
/// refresh) and no `federated:id` (no upstream identity), as in Dex.
pub fn client_credentials_scopes(scope: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let scopes = ScopeSet::parse_optional_openid(scope.unwrap_or(""))
        .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
    if scopes.offline_access {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "client_credentials does not issue refresh tokens: drop offline_access",
        ));
    }
    if scopes.federated_id {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "client_credentials has no upstream identity: drop federated:id",
        ));
    }
    Ok(scopes)
}

/// The identity a `client_credentials` token speaks for: the client itself (Dex's claims: its
/// id as the user id, its name with `profile`, its `clientCredentialsClaims.groups` with `groups`).
pub fn client_identity(client: &Client, scopes: &ScopeSet) -> crate::connectors::Identity {
    crate::connectors::Identity {
        user_id: client.id.to_string(),
        username: if scopes.profile { client.name.clone() } else { String::new() },
        preferred_username: scopes.profile.then(|| client.name.clone()),
        email: None,
        email_verified: false,
        groups: if scopes.groups { client.client_credentials_groups.clone() } else { Vec::new() },
        connector_data: None,
        policy: None,
    }
}

/// What to do with a presented authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeDecision {
    /// Valid: redeem it (once, with compare-and-swap) and issue tokens.
    Redeem,
    /// Presented a second time: revoke the grant its first redemption created.
    Replayed { grant: String },
}

/// What a code was issued for, as stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCode<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<pkce::Method>,
    /// Set once redeemed: the grant the redemption created.
    pub redeemed_grant: Option<&'a str>,
}

/// Checks a stored code against the client, its redirect URI and the PKCE verifier — in that
/// order, before looking at whether it was used: a replay revokes the grant only from someone
/// who proves they hold the code's whole binding (the authenticated client, the redirect URI and
/// the PKCE verifier), so a thief replaying a used code without the verifier cannot log the
/// victim out (audit F9).
pub fn check_code(
    stored: IssuedCode<'_>,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<CodeDecision, OAuthError> {
    if stored.client_id != client_id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if redirect_uri != Some(stored.redirect_uri) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (stored.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            let method = stored.code_challenge_method.unwrap_or(pkce::Method::S256);
            if !pkce::verify(method, challenge, verifier) {
                return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required (PKCE)")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier given but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    match stored.redeemed_grant {
        Some(grant) => Ok(CodeDecision::Replayed { grant: grant.to_string() }),
        None => Ok(CodeDecision::Redeem),
    }
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Use it (a retry within the reuse interval is answered again).
    Use,
    /// Used before, outside the reuse interval: revoke the whole family.
    Replayed,
}

/// Checks a stored refresh token (issued to `issued_to`, rotated at `rotated_at` if it was)
/// against the client presenting it.
pub fn check_refresh(
    issued_to: &str,
    rotated_at: Option<i64>,
    client_id: &str,
    now: i64,
    reuse_interval: i64,
) -> Result<RefreshDecision, OAuthError> {
    if issued_to != client_id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    match rotated_at {
        Some(rotated_at) if now - rotated_at > reuse_interval => Ok(RefreshDecision::Replayed),
        _ => Ok(RefreshDecision::Use),
    }
}

/// The scopes of a refresh: those granted, or a narrower `scope` asked for (never wider).
pub fn refresh_scopes(granted: &[String], asked: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let granted = ScopeSet::from_list(granted);
    let Some(asked) = asked else { return Ok(granted) };
    let asked = ScopeSet::parse(asked).map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
    if !asked.is_subset_of(&granted) {
        return Err(OAuthError::new(OAuthErrorCode::InvalidScope, "a refresh cannot widen the granted scopes"));
    }
    Ok(asked)
}

/// A keystream only the holder of `presented` can compute: sha256 in counter mode.
fn keystream(presented: &str, len: usize) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    (0u32..)
        .flat_map(|block| Sha256::digest(format!("portcullis successor {block}:{presented}").as_bytes()).to_vec())
        .take(len)
        .collect()
}

/// `successor` encrypted under a key derived from the refresh token `presented`: stored with the
/// presented token so that a retry within the reuse interval is answered with the same
/// successor, without the database holding a usable token (audit I2).
pub fn seal_successor(presented: &str, successor: &str) -> String {
    let pad = keystream(presented, successor.len());
    hex::encode(successor.bytes().zip(pad).map(|(b, k)| b ^ k).collect::<Vec<u8>>())
}

/// The successor sealed by `seal_successor`, given the same presented token.
pub fn unseal_successor(presented: &str, sealed: &str) -> Option<String> {
    let bytes = hex::decode(sealed).ok()?;
    let pad = keystream(presented, bytes.len());
    String::from_utf8(bytes.into_iter().zip(pad).map(|(b, k)| b ^ k).collect()).ok()
}

/// Refresh token lifetimes, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct RefreshLifetime {
    pub absolute: i64,
    pub idle: i64,
}

impl RefreshLifetime {
    /// When a token used at `last_used` in a family begun at `family_start` expires.
    pub fn expiry(self, family_start: i64, last_used: i64) -> i64 {
        (family_start + self.absolute).min(last_used + self.idle)
    }
}

/// What a client hears when the connector could not refresh. A refusal (the user was removed,
/// left a required group, revoked the upstream grant) ends the login: `invalid_grant`. A
/// failure that may pass — the upstream down or slow, rate limiting — is a 503
/// `temporarily_unavailable`, and the refresh token stays valid (nothing was rotated yet), so
/// a client retries instead of logging the user out.
pub fn refresh_failure(e: &PluginError) -> OAuthError {
    match e {
        PluginError::Refused { refusal: Refusal::Upstream(_), .. } | PluginError::Deadline { .. } => OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "the identity provider could not be reached to refresh this login; retry later",
        ),
        _ => OAuthError::invalid_grant("the identity provider refused to refresh this login"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> IssuedCode<'static> {
        IssuedCode {
            client_id: "app",
            redirect_uri: "http://app/cb",
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            code_challenge_method: Some(pkce::Method::S256),
            redeemed_grant: None,
        }
    }

    #[test]
    fn code_checks() {
        let verifier = Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let cb = Some("http://app/cb");
        assert_eq!(check_code(code(), "app", cb, verifier), Ok(CodeDecision::Redeem));
        assert!(check_code(code(), "other", cb, verifier).is_err());
        assert!(check_code(code(), "app", Some("http://app/other"), verifier).is_err());
        assert!(check_code(code(), "app", cb, None).is_err());
        assert!(check_code(code(), "app", cb, Some("x".repeat(43).as_str())).is_err());
        let used = IssuedCode { redeemed_grant: Some("g"), ..code() };
        assert_eq!(check_code(used, "app", cb, verifier), Ok(CodeDecision::Replayed { grant: "g".into() }));
        assert!(check_code(used, "app", cb, None).is_err(), "a replay without the verifier revokes nothing");
        assert!(check_code(used, "app", None, verifier).is_err(), "nor one without the redirect URI");
    }

    #[test]
    fn credentials() {
        let form: HashMap<String, String> = [("client_id".to_string(), "app".to_string())].into();
        let basic = format!("Basic {}", STANDARD.encode("a%20b:s%3Ac"));
        let creds = ClientCredentials::parse(Some(&basic), &form).unwrap();
        assert_eq!((creds.id.as_str(), creds.secret.as_deref()), ("a b", Some("s:c")));
        assert_eq!(ClientCredentials::parse(None, &form).unwrap().secret, None);
        assert!(ClientCredentials::parse(Some("Basic !!"), &form).is_err());
        assert!(!format!("{creds:?}").contains("s:c"));
    }

    #[test]
    fn sealed_successors_open_only_with_the_presented_token() {
        let sealed = seal_successor("presented-token", "successor-token-0123456789-abcdefghijklmnop");
        assert!(!sealed.contains("successor"));
        let opened = unseal_successor("presented-token", &sealed);
        assert_eq!(opened.as_deref(), Some("successor-token-0123456789-abcdefghijklmnop"));
        assert_ne!(unseal_successor("another-token", &sealed), opened);
    }

    #[test]
    fn refresh_rules() {
        let granted = vec!["openid".to_string(), "email".to_string()];
        assert_eq!(refresh_scopes(&granted, Some("openid")).unwrap().all, vec!["openid".to_string()]);
        assert!(refresh_scopes(&granted, Some("openid groups")).is_err());
        let life = RefreshLifetime { absolute: 100, idle: 10 };
        assert_eq!(life.expiry(0, 50), 60);
        assert_eq!(life.expiry(0, 95), 100);
    }
}
