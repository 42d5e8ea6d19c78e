//! Generic OpenID Connect upstream connector, configured with Dex's `oidc` keys.
//!
//! Discovery with an exact issuer check, the code flow with PKCE (S256) and a nonce, the ID
//! token verified by the host against the provider's JWKS, optional userinfo, and refresh
//! through the upstream refresh token kept in `connector-data`; token exchange (RFC 8693) of an
//! upstream ID token (verified against the JWKS) or access token (checked at userinfo), as
//! Dex's `TokenIdentity`. The protocol lives in
//! `portcullis-oidc-core`, shared with the google connector; this crate maps claims to an
//! identity. See `docs/connectors/oidc.md`.

mod config;

use config::{Config, DEFAULT_SCOPES};
use portcullis_connector_sdk::{CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes};
use portcullis_oidc_core::exchange::{self, Checks, SubjectType};
use portcullis_oidc_core::{Client, ConnectorData, Provider, claims, token, userinfo};
use serde_json::{Map, Value};

fn client<'a>(config: &'a Config, provider: &Provider, host_callback: &'a str) -> Client<'a> {
    Client {
        client_id: &config.client_id,
        client_secret: &config.client_secret,
        redirect_uri: portcullis_oidc_core::redirect_uri(config.redirect_uri.as_deref(), host_callback),
        secret_in_body: provider.secret_in_body(config.basic_auth_unsupported),
    }
}

/// The identity in `claims`, as Dex's oidc connector reads it.
fn identity(
    config: &Config,
    scopes: Scopes,
    claims: &Map<String, Value>,
    connector_data: Option<Vec<u8>>,
) -> Result<Identity, ConnectorError> {
    let user_id = claims::string(claims, config.user_id_key()).ok_or_else(|| {
        ConnectorError::Upstream(format!(
            "the upstream claims have no {:?} string to use as the user id; check userIDKey",
            config.user_id_key()
        ))
    })?;
    let preferred_username = claims::string(claims, config.preferred_username_key());
    let email = claims::string(claims, config.email_key());
    let verified = config.insecure_skip_email_verified || claims::email_verified(claims);
    let username = claims::string(claims, config.user_name_key())
        .or_else(|| preferred_username.clone())
        .or_else(|| email.clone())
        .ok_or_else(|| {
            ConnectorError::Upstream(format!(
                "the upstream claims have no {:?} (nor preferred_username or email); check userNameKey and scopes",
                config.user_name_key()
            ))
        })?;
    let groups = if config.insecure_enable_groups && scopes.groups {
        claims::groups(claims, config.groups_key())?
    } else {
        Vec::new()
    };
    let email = email.filter(|_| verified);
    let verified = email.is_some();
    Ok(Identity::new(user_id, username)
        .maybe_preferred_username(preferred_username)
        .maybe_email(email, verified)
        .groups(groups)
        .connector_data(connector_data))
}

/// `previous` with what userinfo `info` says written over it: a claim userinfo leaves out keeps
/// the value the ID token gave (groups, a verified email). A new email counts as verified only
/// when userinfo says so (or `insecureSkipEmailVerified`).
fn overlay(
    config: &Config,
    scopes: Scopes,
    previous: Identity,
    info: &Map<String, Value>,
    connector_data: Option<Vec<u8>>,
) -> Result<Identity, ConnectorError> {
    if let Some(user_id) = claims::string(info, config.user_id_key())
        && user_id != previous.user_id
    {
        return Err(ConnectorError::Upstream("the refreshed upstream identity is another user".into()));
    }
    let preferred_username = claims::string(info, config.preferred_username_key()).or(previous.preferred_username);
    let username = claims::string(info, config.user_name_key()).unwrap_or(previous.username);
    let (email, email_verified) = match claims::string(info, config.email_key()) {
        None => (previous.email, previous.email_verified),
        Some(email) if config.insecure_skip_email_verified || claims::email_verified(info) => (Some(email), true),
        Some(email) if !info.contains_key("email_verified") && previous.email.as_deref() == Some(email.as_str()) => {
            (previous.email, previous.email_verified)
        }
        Some(_) => (None, false),
    };
    let groups = if config.insecure_enable_groups && scopes.groups && info.contains_key(config.groups_key()) {
        claims::groups(info, config.groups_key())?
    } else {
        previous.groups
    };
    Ok(Identity::new(previous.user_id, username)
        .maybe_preferred_username(preferred_username)
        .maybe_email(email, email_verified)
        .groups(groups)
        .connector_data(connector_data))
}

fn keep(refresh_token: Option<String>, sub: Option<String>) -> Option<Vec<u8>> {
    refresh_token.and_then(|refresh_token| ConnectorData { refresh_token, sub }.encode())
}

struct Oidc;

impl Connector for Oidc {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        config.validate()?;
        Ok(Metadata::callback().with_refresh().with_token_identity())
    }

    fn login_url(
        config: &Config,
        scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        config.check_login_client()?;
        let provider = Provider::discover(&config.issuer)?;
        let client = client(config, &provider, callback_url);
        let offline = scopes.offline_access.then_some("offline_access");
        let upstream = portcullis_oidc_core::upstream_scopes(config.scopes.as_deref(), DEFAULT_SCOPES, offline);
        portcullis_oidc_core::authorization_url(&provider, &client, &upstream, config.prompt(), &[], state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        config.check_login_client()?;
        let provider = Provider::discover(&config.issuer)?;
        let client = client(config, &provider, &req.callback_url);
        let login = portcullis_oidc_core::handle_callback(&provider, &client, &req, &[config.issuer.as_str()])?;
        let mut claims = login.claims;
        let sub = claims::string(&claims, "sub");
        if config.get_user_info {
            let info = userinfo::fetch(&provider, &login.tokens.access_token, sub.as_deref().unwrap_or_default())?;
            claims::merge(&mut claims, info);
        }
        let data = if scopes.offline_access { keep(login.tokens.refresh_token, sub) } else { None };
        identity(config, scopes, &claims, data)
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let data = ConnectorData::decode(previous.connector_data.as_deref())?;
        let provider = Provider::discover(&config.issuer)?;
        let client = client(config, &provider, config.redirect_uri.as_deref().unwrap_or_default());
        let tokens = token::refresh(&provider, &client, &data.refresh_token)?;
        let refresh_token = tokens.refresh_token.clone().unwrap_or(data.refresh_token);
        let issuers = [config.issuer.as_str()];
        let claims = match tokens.id_token.as_deref() {
            Some(id_token) => {
                let mut claims = token::verify_id_token(&provider, &config.client_id, id_token, &issuers, None)?;
                if config.get_user_info {
                    let sub = claims::string(&claims, "sub").unwrap_or_default();
                    claims::merge(&mut claims, userinfo::fetch(&provider, &tokens.access_token, &sub)?);
                }
                claims
            }
            // No new ID token: userinfo (when configured) is written over the previous identity.
            None if config.get_user_info && data.sub.is_some() => {
                let info = userinfo::fetch(&provider, &tokens.access_token, data.sub.as_deref().unwrap_or_default())?;
                let data = keep(Some(refresh_token), data.sub);
                return overlay(config, scopes, previous, &info, data);
            }
            // Nothing new to read: the identity stays as it was, with the new refresh token.
            None => return Ok(previous.connector_data(keep(Some(refresh_token), data.sub))),
        };
        let sub = claims::string(&claims, "sub").or(data.sub);
        let next = identity(config, scopes, &claims, keep(Some(refresh_token), sub))?;
        if next.user_id != previous.user_id {
            return Err(ConnectorError::Upstream("the refreshed upstream identity is another user".into()));
        }
        Ok(next)
    }

    /// Dex's `TokenIdentity`: an upstream ID token verified against the provider's JWKS (its
    /// `aud` must hold `clientID` when one is configured; Dex checks no audience), or an access
    /// token checked at userinfo (`getUserInfo: true`); the claims map as at a login. No
    /// connector data: token exchange issues no refresh token.
    fn token_identity(
        config: &Config,
        scopes: Scopes,
        subject_token_type: &str,
        subject_token: &str,
    ) -> Result<Identity, ConnectorError> {
        let kind = SubjectType::parse(subject_token_type)?;
        let provider = Provider::discover(&config.issuer)?;
        let checks = Checks {
            audience: Some(config.client_id.as_str()).filter(|id| !id.is_empty()),
            issuers: &[config.issuer.as_str()],
            get_user_info: config.get_user_info,
        };
        let claims = exchange::subject_claims(&provider, &checks, kind, subject_token)?;
        identity(config, scopes, &claims, None).map_err(|e| match e {
            // The token verified but does not say who the user is: the client's token is unusable.
            ConnectorError::Upstream(m) => ConnectorError::Denied(m),
            other => other,
        })
    }
}

portcullis_connector_sdk::export_connector!(Oidc);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: Value) -> Config {
        let mut c = json!({"issuer": "https://idp.test", "clientID": "app", "clientSecret": "s"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const GROUPS: Scopes = Scopes { offline_access: false, groups: true };

    /// (config, claims, scopes) → (user_id, username, preferred_username, email, groups).
    #[test]
    fn claims_map_to_an_identity_as_in_dex() {
        let full = json!({"sub": "u1", "name": "Ann", "preferred_username": "ann", "email": "a@x.test",
            "email_verified": true, "groups": ["g1", "g2"], "mail": "b@x.test", "roles": "admin", "uid": "ann-1"});
        let cases = [
            (json!({}), full.clone(), GROUPS, ("u1", "Ann", Some("ann"), Some("a@x.test"), vec![])),
            (
                json!({"insecureEnableGroups": true}),
                full.clone(),
                GROUPS,
                ("u1", "Ann", Some("ann"), Some("a@x.test"), vec!["g1", "g2"]),
            ),
            (
                json!({"insecureEnableGroups": true}),
                full.clone(),
                Scopes { offline_access: false, groups: false },
                ("u1", "Ann", Some("ann"), Some("a@x.test"), vec![]),
            ),
            (
                json!({"userIDKey": "uid", "userNameKey": "preferred_username", "insecureEnableGroups": true,
                    "claimMapping": {"email": "mail", "groups": "roles", "preferred_username": "uid"}}),
                full.clone(),
                GROUPS,
                ("ann-1", "ann", Some("ann-1"), Some("b@x.test"), vec!["admin"]),
            ),
            (
                json!({}),
                json!({"sub": "u1", "email": "a@x.test", "email_verified": false}),
                GROUPS,
                ("u1", "a@x.test", None, None, vec![]),
            ),
            (
                json!({"insecureSkipEmailVerified": true}),
                json!({"sub": "u1", "email": "a@x.test", "preferred_username": "ann"}),
                GROUPS,
                ("u1", "ann", Some("ann"), Some("a@x.test"), vec![]),
            ),
        ];
        for (extra, input, scopes, (user_id, username, preferred, email, groups)) in cases {
            let c = config(extra.clone());
            let id = identity(&c, scopes, &claims(input), None).unwrap_or_else(|e| panic!("{extra}: {e:?}"));
            assert_eq!(id.user_id, user_id, "{extra}");
            assert_eq!(id.username, username, "{extra}");
            assert_eq!(id.preferred_username.as_deref(), preferred, "{extra}");
            assert_eq!(id.email.as_deref(), email, "{extra}");
            assert_eq!(id.email_verified, email.is_some(), "{extra}");
            assert_eq!(id.groups, groups, "{extra}");
        }
    }

    /// A refresh without an ID token: userinfo is written over the previous identity, keeping
    /// what userinfo leaves out (groups, the verified email).
    #[test]
    fn userinfo_overlays_the_previous_identity() {
        let c = config(json!({"insecureEnableGroups": true}));
        let previous = identity(
            &c,
            GROUPS,
            &claims(json!({"sub": "u1", "name": "Ann", "email": "a@x.test", "email_verified": true,
                "groups": ["g1"]})),
            None,
        )
        .unwrap();
        let next = overlay(
            &c,
            GROUPS,
            previous.clone(),
            &claims(json!({"sub": "u1", "name": "Ann B",
            "email": "a@x.test"})),
            Some(b"d".to_vec()),
        )
        .unwrap();
        assert_eq!((next.username.as_str(), next.email.as_deref()), ("Ann B", Some("a@x.test")));
        assert!(next.email_verified);
        assert_eq!(next.groups, ["g1"]);
        assert_eq!(next.connector_data.as_deref(), Some(&b"d"[..]));
        let changed = overlay(
            &c,
            GROUPS,
            previous.clone(),
            &claims(json!({"sub": "u1", "email": "b@x.test",
            "groups": ["g2"]})),
            None,
        )
        .unwrap();
        assert_eq!((changed.email, changed.email_verified, changed.groups), (None, false, vec!["g2".to_string()]));
        let other = overlay(&c, GROUPS, previous, &claims(json!({"sub": "u2"})), None).unwrap_err();
        assert!(other.message().contains("another user"), "{other:?}");
    }

    #[test]
    fn missing_user_id_or_name_is_an_upstream_error() {
        let c = config(json!({}));
        let err = identity(&c, GROUPS, &claims(json!({"name": "Ann"})), None).unwrap_err();
        assert!(matches!(&err, ConnectorError::Upstream(m) if m.contains("\"sub\"")), "{err:?}");
        let err = identity(&c, GROUPS, &claims(json!({"sub": "u1"})), None).unwrap_err();
        assert!(matches!(&err, ConnectorError::Upstream(m) if m.contains("userNameKey")), "{err:?}");
    }

    #[test]
    fn config_validation() {
        assert!(Oidc::describe(&config(json!({}))).is_ok());
        let refused = |extra: Value| Oidc::describe(&config(extra)).unwrap_err().message().to_string();
        assert!(refused(json!({"clientSecret": ""})).contains("clientSecret"));
        assert!(refused(json!({"redirectURI": "/callback"})).contains("redirectURI"));
        assert!(refused(json!({"userIDKey": ""})).contains("userIDKey"));
        assert!(refused(json!({"allowedGroups": ["a"]})).contains("allowedGroups is not supported yet"));
        // Dex's token-exchange-only block: no client at the provider at all.
        let exchange_only: Config = serde_json::from_value(json!({"issuer": "https://i"})).unwrap();
        assert!(Oidc::describe(&exchange_only).unwrap().supports_token_identity);
        let err = exchange_only.check_login_client().unwrap_err();
        assert!(err.message().contains("token exchange only"), "{err:?}");
        let half: Config = serde_json::from_value(json!({"issuer": "https://i", "clientID": "a"})).unwrap();
        assert!(Oidc::describe(&half).unwrap_err().message().contains("clientSecret"));
    }
}
