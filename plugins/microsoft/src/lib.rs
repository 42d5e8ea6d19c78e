//! The Microsoft connector: Entra ID (Azure AD) login through the v2.0 endpoints of
//! `login.microsoftonline.com` (or a national cloud), the profile from Microsoft Graph's `/me`,
//! and the user's transitive groups from `getMemberGroups` (following `@odata.nextLink`), named
//! through `directoryObjects/getByIds` in chunks of at most 1000 IDs, Graph's limit, so a user
//! in more than 1000 groups can log in (dexidp/dex #4833). Dex's keys with Dex's meaning;
//! refresh reuses a live access token and redeems the refresh token once it has expired.
//!
//! # Security
//!
//! The access token travels only to `graphURL`'s origin (a next link elsewhere is refused);
//! the login sends a PKCE challenge; tokens are kept only with `offline_access`. No token, code
//! or secret goes into a log line or an error message.

mod config;

use portcullis_connector_sdk::{CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes};
use portcullis_oauth2_core::flow::{self, Authorize};
use portcullis_oauth2_core::{Api, AuthStyle, Client, Stored, claims};
use serde::Deserialize;
use serde_json::json;

use config::{Config, GroupNameFormat, PreferredUsernameField};

const UPSTREAM: &str = "Microsoft";
/// Graph's limit on IDs per `getByIds` request.
const IDS_PER_LOOKUP: usize = 1000;

/// Graph's `/me` with the fields Dex selects.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    mail_nickname: Option<String>,
    #[serde(default)]
    on_premises_sam_account_name: Option<String>,
}

/// A `getByIds` item.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryObject {
    #[serde(default)]
    display_name: Option<String>,
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

/// The user's groups (IDs or names), checked against `groups` and kept per
/// `useGroupsAsWhitelist`.
fn groups(config: &Config, api: &Api, me: &Me) -> Result<Vec<String>, ConnectorError> {
    let graph = config.graph_base();
    let ids: Vec<String> = api.next_link_pages(
        &format!("{graph}/v1.0/me/getMemberGroups"),
        Some(&json!({"securityEnabledOnly": config.only_security_groups})),
        "value",
        "@odata.nextLink",
    )?;
    let found = match config.group_name_format {
        GroupNameFormat::Id => ids,
        GroupNameFormat::Name => {
            let mut names = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(IDS_PER_LOOKUP) {
                let objects: Vec<DirectoryObject> = api.next_link_pages(
                    &format!("{graph}/v1.0/directoryObjects/getByIds"),
                    Some(&json!({"ids": chunk, "types": ["group"]})),
                    "value",
                    "@odata.nextLink",
                )?;
                names.extend(objects.into_iter().filter_map(|o| o.display_name).filter(|n| !n.is_empty()));
            }
            names
        }
    };
    if config.groups.is_empty() {
        return Ok(found);
    }
    let kept = claims::filter(found.clone(), &config.groups);
    if kept.is_empty() {
        return Err(ConnectorError::Denied(format!(
            "Microsoft user {} is not in any of the required groups ({})",
            me.user_principal_name.as_deref().unwrap_or(&me.id),
            config.groups.join(", ")
        )));
    }
    Ok(if config.use_groups_as_whitelist { kept } else { found })
}

/// Reads `/me` (and the groups when needed) with `stored`'s token.
fn identity(config: &Config, scopes: Scopes, stored: &Stored) -> Result<Identity, ConnectorError> {
    let graph = config.graph_base();
    let api = Api::new(UPSTREAM, stored.authorization(), &[graph]);
    let me: Me = api.get_json(&format!(
        "{graph}/v1.0/me?$select=id,displayName,userPrincipalName,mailNickname,onPremisesSamAccountName"
    ))?;
    let groups = if config.groups_required(scopes.groups) { groups(config, &api, &me)? } else { Vec::new() };
    let email = me
        .user_principal_name
        .clone()
        .filter(|e| !e.is_empty())
        .map(|e| if config.email_to_lowercase { e.to_lowercase() } else { e });
    let preferred = match config.preferred_username_field {
        None => None,
        Some(PreferredUsernameField::Name) => me.display_name.clone(),
        Some(PreferredUsernameField::Email) => email.clone(),
        Some(PreferredUsernameField::MailNickname) => me.mail_nickname.clone(),
        Some(PreferredUsernameField::OnPremisesSamAccountName) => me.on_premises_sam_account_name.clone(),
    };
    let connector_data = if scopes.offline_access { Some(stored.encode()?) } else { None };
    Ok(Identity::new(me.id, me.display_name.unwrap_or_default())
        .maybe_preferred_username(preferred.filter(|p| !p.is_empty()))
        .maybe_email(email, true)
        .groups(if scopes.groups { groups } else { Vec::new() })
        .connector_data(connector_data))
}

struct Microsoft;

impl Connector for Microsoft {
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
        let mut extra = Vec::new();
        if !config.prompt_type.is_empty() {
            extra.push(("prompt", config.prompt_type.as_str()));
        }
        if !config.domain_hint.is_empty() {
            extra.push(("domain_hint", config.domain_hint.as_str()));
        }
        Authorize {
            endpoint: &config.authorize_url(),
            client_id: &config.client_id,
            redirect_uri: Some(config.redirect_uri(callback_url)),
            scopes: &config.upstream_scopes(scopes.groups, scopes.offline_access),
            pkce: true,
            extra: &extra,
        }
        .redirect(state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let token_url = config.token_url();
        flow::login_with_code(
            &req,
            &client(config, &token_url),
            Some(config.redirect_uri(&req.callback_url)),
            |stored| identity(config, scopes, stored),
        )
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let token_url = config.token_url();
        let scopes = Scopes { offline_access: true, ..scopes };
        flow::refresh_stored(
            &previous,
            UPSTREAM,
            || Ok(client(config, &token_url)),
            |stored| identity(config, scopes, stored),
        )
    }
}

portcullis_connector_sdk::export_connector!(Microsoft);
