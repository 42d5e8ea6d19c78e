//! The OpenShift connector: login through the cluster's OAuth server, found at the API
//! server's `/.well-known/oauth-authorization-server`, and the user from
//! `/apis/user.openshift.io/v1/users/~` (its `metadata.uid` as the id, its name as username and
//! email, its `groups`). Dex's keys with Dex's meaning: required `groups`, `rootCA` (read by the
//! host into this connector's trust store); `insecureCA` is refused. Refresh reuses the stored
//! token until it expires (24 hours by default; OpenShift issues no refresh token).
//!
//! # Security
//!
//! The access token travels only to the `issuer`'s origin (the API server); the login sends
//! a PKCE challenge when the OAuth server lists S256. Nothing secret is logged.

use portcullis_connector_sdk::{
    CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes, config, http,
};
use portcullis_oauth2_core::flow::{self, Authorize};
use portcullis_oauth2_core::{Api, AuthStyle, Client, Stored, claims, refuse_unsupported, time};
use serde::Deserialize;
use serde_json::Value;

const UPSTREAM: &str = "OpenShift";

/// Dex's OpenShift config, key for key.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    issuer: String,
    #[serde(rename = "clientID")]
    client_id: String,
    client_secret: String,
    #[serde(rename = "redirectURI")]
    redirect_uri: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(rename = "insecureCA")]
    insecure_ca: Option<Value>,
    #[serde(rename = "rootCA")]
    _root_ca: Option<Value>,
}

impl Config {
    fn validate(&self) -> Result<(), ConnectorError> {
        config::absolute_url("issuer", &self.issuer, "https://api.cluster.example.com:6443")?;
        config::require(
            "clientID",
            &self.client_id,
            "write the OAuthClient's name or system:serviceaccount:<ns>:<sa>",
        )?;
        config::require(
            "clientSecret",
            &self.client_secret,
            "write the OAuthClient's secret or the service account's token",
        )?;
        if let Some(uri) = &self.redirect_uri {
            config::absolute_url("redirectURI", uri, "https://dex.example.com/dex/callback")?;
        }
        refuse_unsupported(
            "insecureCA",
            self.insecure_ca.as_ref(),
            "the broker always verifies TLS; give the cluster's CA in rootCA (a file path, PEM or base64) instead",
        )
    }

    fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    fn redirect<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }
}

/// The OAuth server's metadata (RFC 8414).
#[derive(Deserialize)]
struct ServerMetadata {
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
}

fn discover(config: &Config) -> Result<ServerMetadata, ConnectorError> {
    let url = format!("{}/.well-known/oauth-authorization-server", config.issuer());
    let found: ServerMetadata = http::get_json(&url, &[])?;
    for (key, value) in
        [("authorization_endpoint", &found.authorization_endpoint), ("token_endpoint", &found.token_endpoint)]
    {
        if !config::is_absolute_url(value) {
            return Err(ConnectorError::Upstream(format!("GET {url}: {key} is not an absolute URL")));
        }
    }
    Ok(found)
}

#[derive(Deserialize)]
struct User {
    metadata: ObjectMeta,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
struct ObjectMeta {
    name: String,
    uid: String,
}

fn identity(config: &Config, scopes: Scopes, stored: &Stored) -> Result<Identity, ConnectorError> {
    let issuer = config.issuer();
    let api = Api::new(UPSTREAM, stored.authorization(), &[issuer]);
    let user: User = api.get_json(&format!("{issuer}/apis/user.openshift.io/v1/users/~"))?;
    if !config.groups.is_empty() && claims::filter(user.groups.clone(), &config.groups).is_empty() {
        return Err(ConnectorError::Denied(format!(
            "OpenShift user {} is not in any of the required groups ({})",
            user.metadata.name,
            config.groups.join(", ")
        )));
    }
    let connector_data = if scopes.offline_access { Some(stored.encode()?) } else { None };
    let name = user.metadata.name;
    Ok(Identity::new(user.metadata.uid, name.clone())
        .preferred_username(name.clone())
        .email(name, false)
        .groups(if scopes.groups { user.groups } else { Vec::new() })
        .connector_data(connector_data))
}

fn client<'a>(config: &'a Config, token_url: &'a str) -> Client<'a> {
    Client {
        client_id: &config.client_id,
        client_secret: &config.client_secret,
        auth: AuthStyle::Auto,
        token_url,
        upstream: UPSTREAM,
    }
}

struct OpenShift;

impl Connector for OpenShift {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        config.validate()?;
        Ok(Metadata::callback().with_refresh())
    }

    fn login_url(
        config: &Config,
        _scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let server = discover(config)?;
        Authorize {
            endpoint: &server.authorization_endpoint,
            client_id: &config.client_id,
            redirect_uri: Some(config.redirect(callback_url)),
            scopes: &["user:info".into()],
            pkce: server.code_challenge_methods_supported.iter().any(|m| m == "S256"),
            extra: &[],
        }
        .redirect(state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let server = discover(config)?;
        let client = client(config, &server.token_endpoint);
        flow::login_with_code(&req, &client, Some(config.redirect(&req.callback_url)), |stored| {
            identity(config, scopes, stored)
        })
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let stored = Stored::decode(previous.connector_data.as_deref(), UPSTREAM)?;
        let stored = if stored.valid_at(time::now()) {
            stored
        } else {
            let server = discover(config)?;
            stored.renew(&client(config, &server.token_endpoint))?.0
        };
        let id = identity(config, Scopes { offline_access: true, ..scopes }, &stored)?;
        portcullis_oauth2_core::flow::same_user("OpenShift", &previous, id)
    }
}

portcullis_connector_sdk::export_connector!(OpenShift);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_key() {
        let base = r#""issuer": "https://api.c1.example:6443", "clientID": "dex", "clientSecret": "s""#;
        let parse = |more: &str| serde_json::from_str::<Config>(&format!("{{{base}{more}}}"));
        assert!(parse("").unwrap().validate().is_ok());
        assert!(parse(r#", "insecureCA": false"#).unwrap().validate().is_ok());
        let err = parse(r#", "insecureCA": true"#).unwrap().validate().unwrap_err();
        assert!(err.message().starts_with("insecureCA is not supported"), "{}", err.message());
        assert!(parse(r#", "group": ["a"]"#).err().unwrap().to_string().contains("unknown field `group`"));
    }
}
