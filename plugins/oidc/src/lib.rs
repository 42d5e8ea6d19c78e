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

/// The provider's metadata: discovery at `issuer`, naming `issuerAlias` when set, with
/// `providerDiscoveryOverrides` written over it.
fn provider(config: &Config) -> Result<Provider, ConnectorError> {
    Provider::discover_as(&config.issuer, config.expected_issuer())?.overridden(&config.provider_discovery_overrides)
}

/// The claim `standard`, or the one `claimMapping` names instead (Dex's rule).
fn mapped(config: &Config, claims: &Map<String, Value>, standard: &str, key: Option<&str>) -> Option<String> {
    claims::mapped(claims, standard, key, config.override_claim_mapping)
}

/// The user's groups as Dex's oidc connector makes them: read from the claims (with
/// `insecureEnableGroups`), kept to those `filterGroupClaims` matches, then to `allowedGroups`
/// (none left: denied), `modifyGroupNames`
/// around each, then the `newGroupFromClaims` groups. Computed whatever the scopes, so
/// `allowedGroups` holds for every login; the broker hands groups on only with `groups`.
fn groups(config: &Config, claims: &Map<String, Value>) -> Result<Vec<String>, ConnectorError> {
    let mut groups = Vec::new();
    if config.insecure_enable_groups {
        let key = claims::groups_key(claims, config.claim_mapping.groups.as_deref(), config.override_claim_mapping);
        groups = claims::groups(claims, key)?;
        if let Some(filter) = config.claim_modifications.filter_group_claims.regex()? {
            groups.retain(|g| filter.is_match(g));
        }
        if !config.allowed_groups.is_empty() {
            groups = claims::allowed_groups(groups, &config.allowed_groups).ok_or_else(|| {
                ConnectorError::Denied("you are not a member of any group this login allows (allowedGroups)".into())
            })?;
        }
    }
    let names = &config.claim_modifications.modify_group_names;
    if !names.prefix.is_empty() || !names.suffix.is_empty() {
        groups = groups.into_iter().map(|g| format!("{}{g}{}", names.prefix, names.suffix)).collect();
    }
    groups.extend(config.claim_modifications.new_group_from_claims.iter().filter_map(|rule| rule.group(claims)));
    Ok(groups)
}

/// Whether `email_verified` says yes, or (`insecureSkipEmailVerified`) the claim is missing.
fn email_verified(config: &Config, claims: &Map<String, Value>) -> bool {
    claims::email_verified(claims) || (config.insecure_skip_email_verified && !claims.contains_key("email_verified"))
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
    let mapping = &config.claim_mapping;
    let preferred_username = mapped(config, claims, "preferred_username", mapping.preferred_username.as_deref());
    let email = mapped(config, claims, "email", mapping.email.as_deref());
    let verified = email_verified(config, claims);
    let username = claims::string(claims, config.user_name_key())
        .or_else(|| preferred_username.clone())
        .or_else(|| email.clone())
        .ok_or_else(|| {
            ConnectorError::Upstream(format!(
                "the upstream claims have no {:?} (nor preferred_username or email); check userNameKey and scopes",
                config.user_name_key()
            ))
        })?;
    let groups = groups(config, claims)?;
    let groups = if scopes.groups { groups } else { Vec::new() };
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
    let mapping = &config.claim_mapping;
    let preferred_username = mapped(config, info, "preferred_username", mapping.preferred_username.as_deref())
        .or(previous.preferred_username);
    let username = claims::string(info, config.user_name_key()).unwrap_or(previous.username);
    let (email, email_verified) = match mapped(config, info, "email", mapping.email.as_deref()) {
        None => (previous.email, previous.email_verified),
        Some(email) if email_verified(config, info) => (Some(email), true),
        Some(email) if !info.contains_key("email_verified") && previous.email.as_deref() == Some(email.as_str()) => {
            (previous.email, previous.email_verified)
        }
        Some(_) => (None, false),
    };
    let key = claims::groups_key(info, mapping.groups.as_deref(), config.override_claim_mapping);
    let groups = if config.insecure_enable_groups && info.contains_key(key) {
        let groups = groups(config, info)?;
        if scopes.groups { groups } else { Vec::new() }
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
        let provider = provider(config)?;
        let client = client(config, &provider, callback_url);
        let offline = scopes.offline_access.then_some("offline_access");
        let configured = config.upstream_scopes();
        let upstream = portcullis_oidc_core::upstream_scopes(Some(&configured), DEFAULT_SCOPES, offline);
        // As Dex: `prompt` (promptType) goes with offline access only.
        let prompt = if scopes.offline_access { config.prompt() } else { "" };
        let acr = config.acr_values.join(" ");
        let extra: Vec<(&str, &str)> = if acr.is_empty() { Vec::new() } else { vec![("acr_values", acr.as_str())] };
        portcullis_oidc_core::authorization_url(&provider, &client, &upstream, prompt, &extra, state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        config.check_login_client()?;
        let provider = provider(config)?;
        let client = client(config, &provider, &req.callback_url);
        let login = portcullis_oidc_core::handle_callback(&provider, &client, &req, &[config.expected_issuer()])?;
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
        let provider = provider(config)?;
        let client = client(config, &provider, config.redirect_uri.as_deref().unwrap_or_default());
        let tokens = token::refresh(&provider, &client, &data.refresh_token)?;
        let refresh_token = tokens.refresh_token.clone().unwrap_or(data.refresh_token);
        let issuers = [config.expected_issuer()];
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
        let provider = provider(config)?;
        let checks = Checks {
            audience: Some(config.client_id.as_str()).filter(|id| !id.is_empty()),
            issuers: &[config.expected_issuer()],
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
                    "overrideClaimMapping": true,
                    "claimMapping": {"email": "mail", "groups": "roles", "preferred_username": "uid"}}),
                full.clone(),
                GROUPS,
                ("ann-1", "ann", Some("ann-1"), Some("b@x.test"), vec!["admin"]),
            ),
            // Without overrideClaimMapping the standard claims win while they are there (Dex).
            (
                json!({"insecureEnableGroups": true,
                    "claimMapping": {"email": "mail", "groups": "roles", "preferred_username": "uid"}}),
                full.clone(),
                GROUPS,
                ("u1", "Ann", Some("ann"), Some("a@x.test"), vec!["g1", "g2"]),
            ),
            (
                json!({"insecureEnableGroups": true, "claimMapping": {"groups": "roles", "preferred_username": "uid"}}),
                json!({"sub": "u1", "name": "Ann", "uid": "ann-1", "roles": ["admin"]}),
                GROUPS,
                ("u1", "Ann", Some("ann-1"), None, vec!["admin"]),
            ),
            (
                json!({"insecureEnableGroups": true, "allowedGroups": ["g2", "g3"],
                    "claimModifications": {"modifyGroupNames": {"prefix": "idp:"},
                        "newGroupFromClaims": [{"claims": ["uid", "roles"], "delimiter": "/", "prefix": "x"}]}}),
                full.clone(),
                GROUPS,
                ("u1", "Ann", Some("ann"), Some("a@x.test"), vec!["idp:g2", "x/ann-1/admin"]),
            ),
            // filterGroupClaims keeps the matching groups before allowedGroups and the prefix (Dex's order).
            (
                json!({"insecureEnableGroups": true, "allowedGroups": ["g1", "g2"],
                    "claimModifications": {"filterGroupClaims": {"groupsFilter": "2$"},
                        "modifyGroupNames": {"prefix": "idp:"}}}),
                full.clone(),
                GROUPS,
                ("u1", "Ann", Some("ann"), Some("a@x.test"), vec!["idp:g2"]),
            ),
            (
                json!({"claimModifications": {"newGroupFromClaims": [{"claims": ["uid"], "prefix": "u-"}]}}),
                full.clone(),
                GROUPS,
                ("u1", "Ann", Some("ann"), Some("a@x.test"), vec!["u-ann-1"]),
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
            // Dex: insecureSkipEmailVerified stands in for a missing claim, not for a false one.
            (
                json!({"insecureSkipEmailVerified": true}),
                json!({"sub": "u1", "email": "a@x.test", "email_verified": false, "preferred_username": "ann"}),
                GROUPS,
                ("u1", "ann", Some("ann"), None, vec![]),
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
        // A filter that leaves no allowed group denies the login, as in Dex.
        let c = config(json!({"insecureEnableGroups": true, "allowedGroups": ["g1"],
            "claimModifications": {"filterGroupClaims": {"groupsFilter": "^x"}}}));
        let denied = identity(&c, GROUPS, &claims(full), None);
        assert!(matches!(denied, Err(ConnectorError::Denied(_))), "{denied:?}");
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

    /// allowedGroups holds whatever the scopes: a user in none of them is denied even when the
    /// client did not ask for groups.
    #[test]
    fn allowed_groups_deny_the_others() {
        let c = config(json!({"insecureEnableGroups": true, "allowedGroups": ["ops"]}));
        let user = claims(json!({"sub": "u1", "name": "Ann", "groups": ["devs"]}));
        for scopes in [GROUPS, Scopes { offline_access: false, groups: false }] {
            let err = identity(&c, scopes, &user, None).unwrap_err();
            assert!(matches!(&err, ConnectorError::Denied(m) if m.contains("allowedGroups")), "{err:?}");
        }
        let member = claims(json!({"sub": "u1", "name": "Ann", "groups": ["devs", "ops"]}));
        assert_eq!(identity(&c, GROUPS, &member, None).unwrap().groups, ["ops"]);
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
        // As Dex, openid is always asked for, first.
        assert_eq!(config(json!({"scopes": ["profile", "groups"]})).upstream_scopes(), ["openid", "profile", "groups"]);
        assert_eq!(config(json!({"scopes": ["email", "openid"]})).upstream_scopes(), ["openid", "email"]);
        assert_eq!(config(json!({})).upstream_scopes(), ["openid", "profile", "email"]);
        assert!(refused(json!({"userIDKey": ""})).contains("userIDKey"));
        assert!(refused(json!({"allowedGroups": ["a"]})).contains("allowedGroups needs insecureEnableGroups"));
        assert!(refused(json!({"insecureSkipVerify": true})).contains("cannot be turned off"));
        assert!(Oidc::describe(&config(json!({"insecureSkipVerify": false}))).is_ok());
        assert!(Oidc::describe(&config(json!({"rootCAs": ["/ca.pem"]}))).is_ok(), "the host reads rootCAs");
        assert!(refused(json!({"hostedDomains": ["a.test"]})).contains("google connector"));
        assert!(refused(json!({"pkceChallenge": "plain"})).contains("pkceChallenge: plain"));
        assert!(Oidc::describe(&config(json!({"pkceChallenge": "S256"}))).is_ok());
        assert!(refused(json!({"issuerAlias": "sts.example"})).starts_with("issuerAlias:"));
        let overrides = json!({"providerDiscoveryOverrides": {"tokenURL": "token"}});
        assert!(refused(overrides).starts_with("providerDiscoveryOverrides.tokenURL:"));
        let filter = json!({"claimModifications": {"filterGroupClaims": {"groupsFilter": "^(a"}}});
        assert!(refused(filter).starts_with("claimModifications.filterGroupClaims.groupsFilter \"^(a\" is not"));
        let filter = json!({"claimModifications": {"filterGroupClaims": {"groupsFilter": "^team-\\w+$"}}});
        assert!(Oidc::describe(&config(filter)).is_ok());
        // Go's Unicode classes compile too.
        let filter = json!({"claimModifications": {"filterGroupClaims": {"groupsFilter": "^\\p{L}+$|\\p{Greek}"}}});
        assert!(Oidc::describe(&config(filter)).is_ok());
        let empty = json!({"claimModifications": {"newGroupFromClaims": [{"claims": []}]}});
        assert!(refused(empty).contains("newGroupFromClaims[0].claims is empty"));
        let all = json!({"issuerAlias": "https://sts.example/t", "acrValues": ["mfa"], "overrideClaimMapping": true,
            "insecureEnableGroups": true, "allowedGroups": ["a"], "pkceChallenge": "",
            "providerDiscoveryOverrides": {"authURL": "https://i/a", "endSessionURL": "https://i/logout"}});
        let all = config(all);
        assert!(Oidc::describe(&all).is_ok());
        assert_eq!(all.expected_issuer(), "https://sts.example/t");
        // Dex's token-exchange-only block: no client at the provider at all.
        let exchange_only: Config = serde_json::from_value(json!({"issuer": "https://i"})).unwrap();
        assert!(Oidc::describe(&exchange_only).unwrap().supports_token_identity);
        let err = exchange_only.check_login_client().unwrap_err();
        assert!(err.message().contains("token exchange only"), "{err:?}");
        let half: Config = serde_json::from_value(json!({"issuer": "https://i", "clientID": "a"})).unwrap();
        assert!(Oidc::describe(&half).unwrap_err().message().contains("clientSecret"));
    }
}
