//! The generic OAuth 2.0 connector (Dex's `oauth`): any provider with an authorization, a token
//! and a userinfo endpoint. The user comes from the userinfo JSON object through Dex's
//! `userIDKey` and `claimMapping` keys; groups (with the `groups` scope) are the union of the
//! userinfo's groups key and the same key in the access token when it is a JWT. Client
//! authentication is detected as Dex does (Basic, then the form body). No refresh, as in Dex.
//!
//! One deliberate difference: a numeric user id is printed exactly (`12345678`), where Dex
//! prints Go's float form (`1.2345678e+07`).
//!
//! # Security
//!
//! The access token travels only to `userInfoURL`'s origin. Its JWT payload is read unverified,
//! as Dex reads it, which is sound only because the token came straight from the token
//! endpoint over the connection the host checked. `insecureSkipVerify` is refused: TLS is
//! always verified (add the CA to `rootCAs` instead). Nothing secret is logged.

use portcullis_connector_sdk::{
    CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes, config, log,
};
use portcullis_oauth2_core::flow::{self, Authorize};
use portcullis_oauth2_core::{Api, AuthStyle, Client, claims, refuse_unsupported};
use serde::Deserialize;
use serde_json::{Map, Value};

const UPSTREAM: &str = "the OAuth provider";

/// Dex's `oauth` connector config, key for key (`rootCAs` is read by the host).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "clientID")]
    client_id: String,
    client_secret: String,
    #[serde(rename = "redirectURI")]
    redirect_uri: Option<String>,
    #[serde(rename = "tokenURL")]
    token_url: String,
    #[serde(rename = "authorizationURL")]
    authorization_url: String,
    #[serde(rename = "userInfoURL")]
    user_info_url: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(rename = "rootCAs")]
    _root_cas: Option<Value>,
    insecure_skip_verify: Option<Value>,
    #[serde(rename = "userIDKey")]
    user_id_key: Option<String>,
    #[serde(default)]
    claim_mapping: ClaimMapping,
}

/// Dex's `claimMapping`: which userinfo keys fill the identity.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimMapping {
    user_name_key: Option<String>,
    preferred_username_key: Option<String>,
    groups_key: Option<String>,
    email_key: Option<String>,
    email_verified_key: Option<String>,
}

fn key<'a>(configured: &'a Option<String>, default: &'a str) -> &'a str {
    configured.as_deref().filter(|k| !k.is_empty()).unwrap_or(default)
}

impl Config {
    fn validate(&self) -> Result<(), ConnectorError> {
        config::require("clientID", &self.client_id, "write the OAuth client's ID")?;
        config::require("clientSecret", &self.client_secret, "write the OAuth client's secret")?;
        config::absolute_url("authorizationURL", &self.authorization_url, "https://idp.example.com/oauth/authorize")?;
        config::absolute_url("tokenURL", &self.token_url, "https://idp.example.com/oauth/token")?;
        config::absolute_url("userInfoURL", &self.user_info_url, "https://idp.example.com/userinfo")?;
        if let Some(uri) = &self.redirect_uri {
            config::absolute_url("redirectURI", uri, "https://dex.example.com/dex/callback")?;
        }
        refuse_unsupported(
            "insecureSkipVerify",
            self.insecure_skip_verify.as_ref(),
            "the broker always verifies TLS; add the provider's CA to rootCAs instead",
        )
    }

    fn redirect<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }
}

/// The identity in `info` per the config's keys; `token` is the access token (for its JWT
/// groups).
fn identity(
    config: &Config,
    scopes: Scopes,
    info: &Map<String, Value>,
    token: &str,
) -> Result<Identity, ConnectorError> {
    let m = &config.claim_mapping;
    let id_key = key(&config.user_id_key, "id");
    let Some(user_id) = claims::id(info, id_key) else {
        return Err(ConnectorError::Upstream(format!(
            "the userinfo answer has no string or number under {id_key:?} (userIDKey)"
        )));
    };
    let groups = if scopes.groups {
        let groups_key = key(&m.groups_key, "groups");
        let mut groups = claims::group_names(info.get(groups_key));
        if let Some(payload) = claims::unverified_jwt_payload(token) {
            groups.extend(claims::group_names(payload.get(groups_key)));
        }
        claims::dedup(groups)
    } else {
        Vec::new()
    };
    Ok(Identity::new(user_id, claims::string(info, key(&m.user_name_key, "user_name")).unwrap_or_default())
        .maybe_preferred_username(claims::string(info, key(&m.preferred_username_key, "preferred_username")))
        .maybe_email(
            claims::string(info, key(&m.email_key, "email")),
            claims::boolean(info, key(&m.email_verified_key, "email_verified")),
        )
        .groups(groups))
}

struct OAuth;

impl Connector for OAuth {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        config.validate()?;
        Ok(Metadata::callback())
    }

    fn login_url(
        config: &Config,
        _scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        Authorize {
            endpoint: &config.authorization_url,
            client_id: &config.client_id,
            redirect_uri: Some(config.redirect(callback_url)),
            scopes: &config.scopes,
            pkce: false,
            extra: &[],
        }
        .redirect(state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let callback = flow::callback(&req, UPSTREAM)?;
        let client = Client {
            client_id: &config.client_id,
            client_secret: &config.client_secret,
            auth: AuthStyle::Auto,
            token_url: &config.token_url,
            upstream: UPSTREAM,
        };
        let token = client.exchange_code(callback.code, Some(config.redirect(&req.callback_url)), None)?;
        let api = Api::new(UPSTREAM, token.authorization(), &[&config.user_info_url]);
        let info: Value = api.get_json(&config.user_info_url)?;
        let Value::Object(info) = info else {
            return Err(ConnectorError::Upstream(format!(
                "GET {}: the userinfo answer is not a JSON object",
                portcullis_oauth2_core::redacted(&config.user_info_url)
            )));
        };
        let id = identity(config, scopes, &info, &token.access_token)?;
        log::info(&format!("OAuth user {} logged in", id.user_id));
        Ok(id)
    }
}

portcullis_connector_sdk::export_connector!(OAuth);

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn config(extra: Value) -> Config {
        let mut c = json!({
            "clientID": "i", "clientSecret": "s", "authorizationURL": "https://idp/a",
            "tokenURL": "https://idp/t", "userInfoURL": "https://idp/u"
        });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn userinfo_maps_through_the_configured_keys() {
        let scopes = Scopes { groups: true, offline_access: false };
        let info = json!({"id": 12345678, "user_name": "Jane", "preferred_username": "jane", "email": "j@x",
                          "email_verified": "true", "groups": ["eng", {"name": "ops"}]});
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"groups":["ops","admins"]}"#);
        let id = identity(&config(json!({})), scopes, info.as_object().unwrap(), &format!("h.{payload}.s")).unwrap();
        assert_eq!(id.user_id, "12345678");
        assert_eq!((id.username.as_str(), id.preferred_username.as_deref()), ("Jane", Some("jane")));
        assert!(!id.email_verified, "the string \"true\" is not a boolean");
        assert_eq!(id.groups, ["eng", "ops", "admins"]);

        let mapped = config(
            json!({"userIDKey": "sub", "claimMapping": {"userNameKey": "name", "groupsKey": "roles", "emailVerifiedKey": "verified"}}),
        );
        let info = json!({"sub": "u-17", "name": "Jane", "roles": ["r"], "verified": true, "email": "j@x"});
        let id = identity(&mapped, scopes, info.as_object().unwrap(), "opaque").unwrap();
        assert_eq!((id.user_id.as_str(), id.username.as_str(), id.email_verified), ("u-17", "Jane", true));
        assert_eq!(id.groups, ["r"]);
        let err = identity(&mapped, scopes, json!({"sub": true}).as_object().unwrap(), "t").unwrap_err();
        assert!(err.message().contains("userIDKey"));
    }

    #[test]
    fn refusals_name_the_key() {
        assert!(
            config(json!({"insecureSkipVerify": true}))
                .validate()
                .unwrap_err()
                .message()
                .starts_with("insecureSkipVerify")
        );
        assert!(config(json!({"insecureSkipVerify": false})).validate().is_ok());
        assert!(config(json!({"tokenURL": "idp/t"})).validate().unwrap_err().message().starts_with("tokenURL"));
        let err = serde_json::from_value::<Config>(json!({"claimMapping": {"nameKey": "x"}})).err().unwrap();
        assert!(err.to_string().contains("unknown field `nameKey`"), "{err}");
    }
}
