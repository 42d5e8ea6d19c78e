//! The GitHub connector: OAuth App login on github.com or GitHub Enterprise, with Dex's config
//! keys and semantics: required `orgs` (and teams), organisations and teams as `org` and
//! `org:team` groups, the numeric user id (or the login) as the user id, and refresh that
//! re-reads the user with the stored access token.
//!
//! # Security
//!
//! The upstream access token travels only to the API root (`link` pages on other origins are
//! refused) and is kept in `connector-data`, which the broker stores with the offline session
//! when `offline_access` was asked for. No token, code or secret goes into a log line or an
//! error message.

mod api;
mod config;
mod groups;

use portcullis_connector_sdk::{
    CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes, data, log, url,
};
use serde::{Deserialize, Serialize};

use api::Client;
use config::Config;
use groups::{Email, Membership, OrgRef, Team, User};

/// What refresh needs, kept in `identity.connector-data`: Dex's github connector keeps the
/// same `accessToken` (with `refreshToken` and `expiry` for GitHub Apps, which are ignored: an
/// OAuth App's token does not expire), so sessions `portcullis import-dex` carried over refresh.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshData {
    access_token: String,
}

/// Reads the user (and, when needed, emails, orgs and teams) with `token`.
fn identity(config: &Config, scopes: Scopes, token: &str) -> Result<Identity, ConnectorError> {
    let client = Client { api: config.api_base(), token };
    let user: User = client.get_json("/user")?;
    let email = match (&user.email, &config.preferred_email_domain) {
        (Some(email), None) if !email.is_empty() => Some(email.clone()),
        _ => {
            let emails: Vec<Email> = client.get_all("/user/emails")?;
            let email = groups::pick_email(config, &emails);
            if email.is_none() {
                return Err(ConnectorError::Denied(format!(
                    "GitHub user {} has no verified primary email address; verify one on GitHub and log in again",
                    user.login
                )));
            }
            email
        }
    };
    // Dex asks for read:org whenever groups are wanted, but only `orgs` and `loadAllGroups`
    // produce groups: skip the lookups otherwise.
    let groups = if !config.orgs.is_empty()
        || config.legacy_org().is_some()
        || (scopes.groups && config.load_all_groups)
    {
        let membership =
            Membership { orgs: client.get_all::<OrgRef>("/user/orgs")?, teams: client.get_all::<Team>("/user/teams")? };
        groups::groups(config, &membership, &user.login)?
    } else {
        Vec::new()
    };
    let connector_data = if scopes.offline_access {
        let data = RefreshData { access_token: token.to_string() };
        Some(data::encode(&data)?)
    } else {
        None
    };
    let user_id = if config.use_login_as_id { user.login.clone() } else { user.id.to_string() };
    let username = user.name.filter(|n| !n.is_empty()).unwrap_or_else(|| user.login.clone());
    // GitHub reports verified addresses only (the public profile email must be verified too).
    Ok(Identity::new(user_id, username)
        .preferred_username(user.login)
        .maybe_email(email, true)
        .groups(if scopes.groups { groups } else { Vec::new() })
        .connector_data(connector_data))
}

struct GitHub;

impl Connector for GitHub {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        config.validate()?;
        Ok(Metadata::callback().with_refresh())
    }

    fn login_url(
        config: &Config,
        scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let scope = if config.groups_required(scopes.groups) { "user:email read:org" } else { "user:email" };
        let url = url::with_query(
            &config.authorize_url(),
            &[
                ("client_id", &config.client_id),
                ("redirect_uri", config.redirect_uri(callback_url)),
                ("scope", scope),
                ("state", state),
            ],
        );
        Ok(LoginRedirect::new(url))
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        req.check_oauth_error("GitHub")?;
        let code = req
            .param("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConnectorError::BadRequest("GitHub's answer has no code".into()))?;
        let token = api::exchange_code(config, code, config.redirect_uri(&req.callback_url))?;
        let id = identity(config, scopes, &token)?;
        log::info(&format!("GitHub user {} logged in", id.preferred_username.as_deref().unwrap_or("?")));
        Ok(id)
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let data: RefreshData = data::decode(previous.connector_data.as_deref())
            .ok_or_else(|| ConnectorError::Denied("no GitHub access token is stored for this login".into()))?;
        let scopes = Scopes { offline_access: true, ..scopes };
        let id = identity(config, scopes, &data.access_token)?;
        portcullis_oauth2_core::flow::same_user("GitHub", &previous, id)
    }
}

portcullis_connector_sdk::export_connector!(GitHub);

#[cfg(test)]
mod tests {
    #[test]
    fn dex_connector_data_decodes() {
        let dex = br#"{"accessToken":"gho_abc","refreshToken":"ghr_x","expiry":"0001-01-01T00:00:00Z"}"#;
        let data: super::RefreshData = portcullis_connector_sdk::data::decode(Some(dex)).unwrap();
        assert_eq!(data.access_token, "gho_abc");
    }
}
