//! The LinkedIn connector, as Dex has it: "Sign In with LinkedIn" with the scopes
//! `r_liteprofile r_emailaddress`, the member from `api.linkedin.com/v2/me` and the email from
//! `/v2/emailAddress` (the last element). LinkedIn closed this product to new apps in 2023;
//! apps on "Sign In with LinkedIn using OpenID Connect" use `type: oidc` with issuer
//! `https://www.linkedin.com/oauth` (see docs/connectors/linkedin.md). Refresh re-reads the
//! profile with the stored access token (60 days). `baseURL` and `apiURL` are Portcullis's,
//! for a proxy or a test server.
//!
//! # Security
//!
//! The access token travels only to `apiURL`'s origin; nothing secret is logged. LinkedIn
//! expects the client secret in the form body, and rejects PKCE from apps without it, so
//! neither Basic nor a challenge is sent.

use portcullis_connector_sdk::{
    CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes, config,
};
use portcullis_oauth2_core::flow::{self, Authorize};
use portcullis_oauth2_core::{Api, AuthStyle, Client, Stored};
use serde::Deserialize;

const UPSTREAM: &str = "LinkedIn";
const WEB: &str = "https://www.linkedin.com";
const API: &str = "https://api.linkedin.com";

/// Dex's LinkedIn config (`clientID`, `clientSecret`, `redirectURI`) plus `baseURL`/`apiURL`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "clientID")]
    client_id: String,
    client_secret: String,
    #[serde(rename = "redirectURI")]
    redirect_uri: Option<String>,
    #[serde(rename = "baseURL")]
    base_url: Option<String>,
    #[serde(rename = "apiURL")]
    api_url: Option<String>,
}

impl Config {
    fn validate(&self) -> Result<(), ConnectorError> {
        config::require("clientID", &self.client_id, "write the LinkedIn app's client ID")?;
        config::require("clientSecret", &self.client_secret, "write the LinkedIn app's client secret")?;
        for (key, value, example) in [
            ("baseURL", &self.base_url, WEB),
            ("apiURL", &self.api_url, API),
            ("redirectURI", &self.redirect_uri, "https://dex.example.com/dex/callback"),
        ] {
            if let Some(v) = value {
                config::absolute_url(key, v, example)?;
            }
        }
        Ok(())
    }

    fn web(&self) -> &str {
        self.base_url.as_deref().filter(|u| !u.is_empty()).unwrap_or(WEB).trim_end_matches('/')
    }

    fn api(&self) -> &str {
        self.api_url.as_deref().filter(|u| !u.is_empty()).unwrap_or(API).trim_end_matches('/')
    }

    fn redirect<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    id: String,
    #[serde(default)]
    localized_first_name: String,
    #[serde(default)]
    localized_last_name: String,
}

#[derive(Deserialize)]
struct Emails {
    #[serde(default)]
    elements: Vec<Element>,
}

#[derive(Deserialize)]
struct Element {
    #[serde(rename = "handle~")]
    handle: Handle,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Handle {
    #[serde(default)]
    email_address: String,
}

fn identity(config: &Config, scopes: Scopes, stored: &Stored) -> Result<Identity, ConnectorError> {
    let api_base = config.api();
    let api = Api::new(UPSTREAM, stored.authorization(), &[api_base]);
    let profile: Profile = api.get_json(&format!("{api_base}/v2/me"))?;
    let emails: Emails =
        api.get_json(&format!("{api_base}/v2/emailAddress?q=members&projection=(elements*(handle~))"))?;
    let Some(email) = emails.elements.into_iter().map(|e| e.handle.email_address).rfind(|e| !e.is_empty()) else {
        return Err(ConnectorError::Denied("LinkedIn gave no email address for this member".into()));
    };
    let full = format!("{} {}", profile.localized_first_name, profile.localized_last_name).trim().to_string();
    let username = if full.is_empty() { email.clone() } else { full };
    let connector_data = if scopes.offline_access { Some(stored.encode()?) } else { None };
    Ok(Identity::new(profile.id, username).email(email, true).connector_data(connector_data))
}

fn client<'a>(config: &'a Config, token_url: &'a str) -> Client<'a> {
    Client {
        client_id: &config.client_id,
        client_secret: &config.client_secret,
        auth: AuthStyle::Body,
        token_url,
        upstream: UPSTREAM,
    }
}

struct LinkedIn;

impl Connector for LinkedIn {
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
        let endpoint = format!("{}/oauth/v2/authorization", config.web());
        Authorize {
            endpoint: &endpoint,
            client_id: &config.client_id,
            redirect_uri: Some(config.redirect(callback_url)),
            scopes: &["r_liteprofile".into(), "r_emailaddress".into()],
            pkce: false,
            extra: &[],
        }
        .redirect(state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let token_url = format!("{}/oauth/v2/accessToken", config.web());
        flow::login_with_code(&req, &client(config, &token_url), Some(config.redirect(&req.callback_url)), |stored| {
            identity(config, scopes, stored)
        })
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let token_url = format!("{}/oauth/v2/accessToken", config.web());
        let scopes = Scopes { offline_access: true, ..scopes };
        flow::refresh_stored(
            &previous,
            UPSTREAM,
            || Ok(client(config, &token_url)),
            |stored| identity(config, scopes, stored),
        )
    }
}

portcullis_connector_sdk::export_connector!(LinkedIn);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let c: Config = serde_json::from_str(r#"{"clientID": "i", "clientSecret": "s"}"#).unwrap();
        assert_eq!((c.web(), c.api()), (WEB, API));
        assert!(c.validate().is_ok());
        let err = serde_json::from_str::<Config>(r#"{"clientID": "i", "clientSecret": "s", "scopes": ["openid"]}"#);
        assert!(err.err().unwrap().to_string().contains("unknown field `scopes`"));
    }
}
