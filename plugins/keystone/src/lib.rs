//! The OpenStack Keystone (v3) connector: password login with Dex's Keystone semantics and
//! config keys (`keystoneHost`, `domain`, `keystoneUsername`, `keystonePassword`).
//!
//! A login asks Keystone for an unscoped token with the user's password
//! (`POST /v3/auth/tokens`), reads the user's groups (groups scope) and email with that token,
//! and names the user by their Keystone id (`sub`) and the login as typed (`name`). `refresh`
//! takes a token for the admin account and re-reads the user and their groups: a user deleted
//! (404) or disabled in Keystone loses the session.
//!
//! Where Dex's behaviour is arguably a bug, this connector differs on purpose (each is in
//! docs/connectors/keystone.md): a wrong password (401) shows the form again instead of an
//! error page; a failed group list fails the login instead of giving no groups; a refresh whose
//! admin token or user read fails for another reason than 404 is an upstream error (the
//! refresh token survives) rather than "the user does not exist"; without
//! `keystoneUsername` there are no refresh tokens.
//!
//! # Security
//!
//! Neither the user's password, `keystonePassword` nor a Keystone token reaches a log line or
//! an error message; tokens go only to `keystoneHost`.

mod api;
mod config;

use api::{Auth, Keystone};
use config::Config;
use portcullis_connector_sdk::{Connector, ConnectorError, Identity, Metadata, Scopes, log};

struct KeystoneConnector;

impl Connector for KeystoneConnector {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        let settings = config.settings()?;
        let metadata = Metadata::password("Username");
        Ok(if settings.admin.is_some() { metadata.with_refresh() } else { metadata })
    }

    fn login(
        config: &Config,
        scopes: Scopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        if username.is_empty() || password.is_empty() {
            return Ok(None);
        }
        let settings = config.settings()?;
        let keystone = Keystone { settings: &settings };
        let Auth::Token { token, user_id } = keystone.authenticate(username, password)? else {
            log::info("Keystone refused the credentials");
            return Ok(None);
        };
        let groups = if scopes.groups { keystone.groups(&user_id, &token)? } else { Vec::new() };
        // The user's own record gives the email; without it (a policy refusing the read) the
        // login goes on without an email, where Dex's request would fail.
        let email = match keystone.user(&user_id, &token) {
            Ok(user) => user.and_then(|u| u.email).filter(|e| !e.is_empty()),
            Err(e) => {
                log::warn(&format!("no email for Keystone user {user_id}: {}", e.message()));
                None
            }
        };
        log::info(&format!("Keystone user {user_id} logged in"));
        let verified = email.is_some();
        Ok(Some(Identity::new(user_id, username).maybe_email(email, verified).groups(groups)))
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let settings = config.settings()?;
        let Some((admin, admin_password)) = &settings.admin else {
            return Err(ConnectorError::Unsupported("refresh needs keystoneUsername and keystonePassword".into()));
        };
        let keystone = Keystone { settings: &settings };
        let Auth::Token { token, .. } = keystone.authenticate(admin, admin_password)? else {
            return Err(ConnectorError::Upstream(
                "Keystone refused the admin account's credentials: check keystoneUsername and keystonePassword".into(),
            ));
        };
        let user = keystone
            .user(&previous.user_id, &token)?
            .ok_or_else(|| ConnectorError::Denied("the user no longer exists in Keystone".into()))?;
        if user.id != previous.user_id {
            return Err(ConnectorError::Upstream("Keystone answered with another user".into()));
        }
        if !user.enabled {
            return Err(ConnectorError::Denied("the user is disabled in Keystone".into()));
        }
        let groups = if scopes.groups { keystone.groups(&previous.user_id, &token)? } else { Vec::new() };
        let email = user.email.filter(|e| !e.is_empty());
        let verified = email.is_some();
        Ok(previous.groups(groups).maybe_email(email, verified))
    }
}

portcullis_connector_sdk::export_connector!(KeystoneConnector);
