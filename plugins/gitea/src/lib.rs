//! The Gitea (and Forgejo) connector: OAuth2 login on gitea.com, codeberg.org or a self-hosted
//! instance, with Dex's keys and semantics: the numeric id (or the login, `useLoginAsID`),
//! teams as `org` and `org:team` groups (`/api/v1/user/teams`, paged until an empty page),
//! required `orgs` (and teams), and refresh that reuses a live access token and redeems the
//! refresh token once it has expired.
//!
//! One deliberate difference from Dex: an `orgs` entry with `teams` admits members of those
//! teams only (Dex lets in any member of any team of the org, since the bare org always
//! matches).
//!
//! # Security
//!
//! The access token travels only to `baseURL`'s origin; the login sends a PKCE challenge;
//! tokens are kept only with `offline_access`. No token, code or secret is logged.

mod config;

use portcullis_connector_sdk::{CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes};
use portcullis_oauth2_core::flow::{self, Authorize};
use portcullis_oauth2_core::{Api, AuthStyle, Client, Stored, claims};
use serde::Deserialize;

use config::Config;

const UPSTREAM: &str = "Gitea";
/// Dex's page size for `/user/teams` (Gitea's default maximum is 50).
const TEAMS_PER_PAGE: usize = 20;

/// `/api/v1/user`.
#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// An item of `/api/v1/user/teams`.
#[derive(Deserialize)]
struct Team {
    name: String,
    organization: Option<Organization>,
}

#[derive(Deserialize)]
struct Organization {
    /// A deprecated duplicate of `name` that Dex reads; `name` when it is missing.
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// Every team as `org` and `org:team`, without repeats (teams of no organisation skipped).
fn team_groups(teams: &[Team]) -> Vec<String> {
    let mut groups = Vec::new();
    for team in teams {
        let Some(org) =
            team.organization.as_ref().and_then(|o| o.username.clone().filter(|u| !u.is_empty()).or(o.name.clone()))
        else {
            continue;
        };
        groups.push(org.clone());
        groups.push(format!("{org}:{}", team.name));
    }
    claims::dedup(groups)
}

/// The groups `orgs` admits: `org` for an org without teams; for an org with teams, `org` and
/// the listed `org:team` entries, only when the user is in one of those teams.
fn admitted(config: &Config, groups: &[String]) -> Vec<String> {
    let mut keys = Vec::new();
    for org in &config.orgs {
        if org.teams.is_empty() {
            keys.push(org.name.clone());
            continue;
        }
        let teams: Vec<String> = org.teams.iter().map(|t| format!("{}:{t}", org.name)).collect();
        if groups.iter().any(|g| teams.contains(g)) {
            keys.push(org.name.clone());
            keys.extend(teams);
        }
    }
    claims::filter(groups.to_vec(), &keys)
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

fn identity(config: &Config, scopes: Scopes, stored: &Stored) -> Result<Identity, ConnectorError> {
    let base = config.base();
    let api = Api::new(UPSTREAM, stored.authorization(), &[base]);
    let user: User = api.get_json(&format!("{base}/api/v1/user"))?;
    let groups = if config.groups_required() {
        let teams: Vec<Team> =
            api.numbered_pages(|page| format!("{base}/api/v1/user/teams?page={page}&limit={TEAMS_PER_PAGE}"), 0)?;
        let all = team_groups(&teams);
        if config.orgs.is_empty() {
            all
        } else {
            let kept = admitted(config, &all);
            if kept.is_empty() {
                return Err(ConnectorError::Denied(format!(
                    "Gitea user {} is not a member of the required organizations or teams",
                    user.login
                )));
            }
            kept
        }
    } else {
        Vec::new()
    };
    let user_id = if config.use_login_as_id { user.login.clone() } else { user.id.to_string() };
    let email = user.email.filter(|e| !e.is_empty());
    let username = user.full_name.filter(|n| !n.is_empty()).or_else(|| email.clone()).unwrap_or_default();
    let connector_data = if scopes.offline_access { Some(stored.encode()?) } else { None };
    Ok(Identity::new(user_id, username)
        .preferred_username(user.login)
        .maybe_email(email, true)
        .groups(if scopes.groups { groups } else { Vec::new() })
        .connector_data(connector_data))
}

struct Gitea;

impl Connector for Gitea {
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
        let endpoint = format!("{}/login/oauth/authorize", config.base());
        // Dex sends no scope: Gitea grants its default access.
        Authorize {
            endpoint: &endpoint,
            client_id: &config.client_id,
            redirect_uri: Some(config.redirect_uri(callback_url)),
            scopes: &[],
            pkce: true,
            extra: &[],
        }
        .redirect(state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let token_url = format!("{}/login/oauth/access_token", config.base());
        flow::login_with_code(
            &req,
            &client(config, &token_url),
            Some(config.redirect_uri(&req.callback_url)),
            |stored| identity(config, scopes, stored),
        )
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let token_url = format!("{}/login/oauth/access_token", config.base());
        let scopes = Scopes { offline_access: true, ..scopes };
        flow::refresh_stored(
            &previous,
            UPSTREAM,
            || Ok(client(config, &token_url)),
            |stored| identity(config, scopes, stored),
        )
    }
}

portcullis_connector_sdk::export_connector!(Gitea);

#[cfg(test)]
mod tests {
    use super::*;

    fn team(org: Option<&str>, name: &str) -> Team {
        Team { name: name.into(), organization: org.map(|o| Organization { username: Some(o.into()), name: None }) }
    }

    #[test]
    fn teams_become_org_and_org_team_and_orgs_admit_listed_teams_only() {
        let teams =
            [team(Some("acme"), "Owners"), team(Some("acme"), "devs"), team(None, "x"), team(Some("side"), "ops")];
        let all = team_groups(&teams);
        assert_eq!(all, ["acme", "acme:Owners", "acme:devs", "side", "side:ops"]);
        let config: Config = serde_json::from_str(
            r#"{"clientID": "i", "clientSecret": "s", "orgs": [{"name": "acme", "teams": ["devs", "qa"]}, {"name": "side"}]}"#,
        )
        .unwrap();
        assert_eq!(admitted(&config, &all), ["acme", "acme:devs", "side"]);
        let only_owners = team_groups(&[team(Some("acme"), "Owners")]);
        assert!(admitted(&config, &only_owners).is_empty(), "acme without a listed team is not admitted");
    }
}
