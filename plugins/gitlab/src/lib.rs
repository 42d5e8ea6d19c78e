//! The GitLab connector: OAuth login on gitlab.com or a self-managed instance, with Dex's
//! config keys and semantics: the numeric user id (or the username, `useLoginAsID`), group
//! full paths from `/oauth/userinfo` (or every group the user can see with `inheritedGroups`),
//! `path:role` entries with `getGroupsPermission`, required `groups`, and refresh: the stored
//! access token while it lives (GitLab's last 2 hours), then the upstream refresh token (GitLab's
//! are single-use, so the new pair is kept). Dex redeems the refresh token on every refresh;
//! reusing a live token spares it, so a refresh failing on a rate limit does not burn it.
//! Token exchange (RFC 8693) takes a GitLab access token, as Dex's does.
//!
//! # Security
//!
//! The access token travels only to `baseURL`'s origin; the login sends a PKCE challenge
//! (GitLab checks it), and the tokens are kept in `connector-data` only when the client asked
//! for `offline_access`. No token, code or secret goes into a log line or an error message.

mod config;
mod groups;

use portcullis_connector_sdk::{CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes};
use portcullis_oauth2_core::flow::{self, Authorize};
use portcullis_oauth2_core::{Api, AuthStyle, Client, Stored, claims};
use serde::Deserialize;

use config::Config;
use groups::{Group, UserInfo};

const UPSTREAM: &str = "GitLab";

/// `/api/v4/user`.
#[derive(Deserialize)]
struct User {
    id: u64,
    username: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// `/api/v4/groups/{id}/members/all/{user}`.
#[derive(Deserialize)]
struct Member {
    access_level: u64,
}

fn client<'a>(config: &'a Config, token_url: &'a str) -> Client<'a> {
    Client {
        client_id: &config.client_id,
        client_secret: &config.client_secret,
        auth: AuthStyle::Basic,
        token_url,
        upstream: UPSTREAM,
    }
}

/// The user's groups as Dex derives them, filtered by `groups`.
fn groups(config: &Config, api: &Api, user: &User) -> Result<Vec<String>, ConnectorError> {
    let base = config.base();
    let userinfo = || api.get_json::<UserInfo>(&format!("{base}/oauth/userinfo"));
    let found = if config.inherited_groups {
        let records: Vec<Group> = api
            .numbered_pages(|page| format!("{base}/api/v4/groups?all_available=false&page={page}&per_page=100"), 100)?;
        let paths: Vec<String> = records.iter().map(|g| g.name().to_string()).filter(|p| !p.is_empty()).collect();
        if config.get_groups_permission {
            let info = userinfo()?;
            let mut out = groups::with_roles(paths, &info);
            for record in &records {
                let path = record.name();
                if path.is_empty() || groups::role(path, &info).is_some() {
                    continue;
                }
                let url = format!("{base}/api/v4/groups/{}/members/all/{}", record.id, user.id);
                let resp = api.get_raw(&url)?;
                if matches!(resp.status, 403 | 404) {
                    continue;
                }
                let member: Member = portcullis_oauth2_core::api::check(resp, "GET", &url, UPSTREAM)?.json()?;
                if let Some(role) = groups::access_level(member.access_level) {
                    out.push(format!("{path}:{role}"));
                }
            }
            out
        } else {
            paths
        }
    } else {
        let info = userinfo()?;
        if config.get_groups_permission { groups::with_roles(info.groups.clone(), &info) } else { info.groups }
    };
    if config.groups.is_empty() {
        return Ok(found);
    }
    let kept = claims::filter(found, &config.groups);
    if kept.is_empty() {
        return Err(ConnectorError::Denied(format!(
            "GitLab user {} is not in any of the required groups ({})",
            user.username,
            config.groups.join(", ")
        )));
    }
    Ok(kept)
}

/// Reads the user (and their groups when needed) with `stored`'s token.
fn identity(config: &Config, scopes: Scopes, stored: &Stored) -> Result<Identity, ConnectorError> {
    let base = config.base();
    let api = Api::new(UPSTREAM, stored.authorization(), &[base]);
    let user: User = api.get_json(&format!("{base}/api/v4/user"))?;
    let groups = if config.groups_required(scopes.groups) { groups(config, &api, &user)? } else { Vec::new() };
    let user_id = if config.use_login_as_id { user.username.clone() } else { user.id.to_string() };
    let username = user.name.clone().filter(|n| !n.is_empty()).or_else(|| user.email.clone()).unwrap_or_default();
    let connector_data = if scopes.offline_access { Some(stored.encode()?) } else { None };
    Ok(Identity::new(user_id, username)
        .preferred_username(user.username)
        .maybe_email(user.email.filter(|e| !e.is_empty()), true)
        .groups(if scopes.groups { groups } else { Vec::new() })
        .connector_data(connector_data))
}

struct GitLab;

impl Connector for GitLab {
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
        let endpoint = format!("{}/oauth/authorize", config.base());
        Authorize {
            endpoint: &endpoint,
            client_id: &config.client_id,
            redirect_uri: Some(config.redirect_uri(callback_url)),
            scopes: &config.scopes(scopes.groups),
            pkce: true,
            extra: &[],
        }
        .redirect(state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let token_url = format!("{}/oauth/token", config.base());
        flow::login_with_code(
            &req,
            &client(config, &token_url),
            Some(config.redirect_uri(&req.callback_url)),
            |stored| identity(config, scopes, stored),
        )
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let token_url = format!("{}/oauth/token", config.base());
        let scopes = Scopes { offline_access: true, ..scopes };
        flow::refresh_stored(
            &previous,
            UPSTREAM,
            || Ok(client(config, &token_url)),
            |stored| identity(config, scopes, stored),
        )
    }

    /// Token exchange (RFC 8693), as Dex's GitLab connector takes it: a GitLab access token,
    /// checked by using it (`/api/v4/user`, and the groups when configured); a revoked or
    /// foreign token gets GitLab's 401, which is `Denied`.
    fn token_identity(
        config: &Config,
        scopes: Scopes,
        subject_token_type: &str,
        subject_token: &str,
    ) -> Result<Identity, ConnectorError> {
        if subject_token_type != ACCESS_TOKEN_TYPE {
            return Err(ConnectorError::Unsupported(format!(
                "the gitlab connector takes GitLab access tokens ({ACCESS_TOKEN_TYPE}) only"
            )));
        }
        let stored =
            Stored { access_token: subject_token.to_string(), refresh_token: None, expiry: None, token_type: None };
        identity(config, Scopes { offline_access: false, ..scopes }, &stored)
    }
}

/// RFC 8693's URN for an OAuth 2.0 access token.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

portcullis_connector_sdk::export_connector!(GitLab);
