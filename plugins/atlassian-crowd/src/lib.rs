//! The Atlassian Crowd connector: password login with Dex's `atlassian-crowd` semantics and
//! config keys (`baseURL`, `clientID`, `clientSecret`, `groups`, `preferredUsernameField`,
//! `usernamePrompt`).
//!
//! A login creates a Crowd session with the password (`POST /session`), reads the user
//! (`GET /user`) and, when needed, their nested groups (`GET /user/group/nested`, paged). The
//! user's Crowd `key` is the user id, `name` the username, `email` the (verified) email.
//! `refresh` re-reads the user, creates a session without the password (so a deactivated user
//! fails) and re-reads the groups.
//!
//! Where Dex's behaviour is arguably a bug, this connector differs on purpose (each is in
//! docs/connectors/atlassian-crowd.md): `groups` restricts every login, not only those asking
//! for the groups scope; the username is URL-encoded; an unknown user shows the form again like
//! a wrong password; an unknown `preferredUsernameField` is a config error.
//!
//! # Security
//!
//! Neither the user's password nor `clientSecret` reaches a log line or an error message. The
//! username is percent-encoded in every query, so `&` or `+` in it cannot add parameters.

mod api;
mod config;

use api::{Crowd, Session, User};
use config::{Config, PreferredField, Settings};
use portcullis_connector_sdk::{Connector, ConnectorError, Identity, Metadata, Scopes, data, groups, log};
use serde::{Deserialize, Serialize};

/// What the broker stores with an offline session for `refresh`: Dex's shape, so a refresh
/// token imported from Dex keeps working.
#[derive(Serialize, Deserialize)]
struct RefreshData {
    username: String,
}

impl Settings {
    /// The identity of `user`, with `groups` and `connector_data`.
    fn identity(&self, user: User, groups: Vec<String>, connector_data: Option<Vec<u8>>) -> Identity {
        let preferred = match self.preferred {
            Some(PreferredField::Key) => Some(user.key.clone()),
            Some(PreferredField::Name) => Some(user.name.clone()),
            Some(PreferredField::Email) => Some(user.email.clone()),
            None => None,
        };
        let email = Some(user.email).filter(|e| !e.is_empty());
        Identity::new(user.key, user.name)
            .maybe_preferred_username(preferred.filter(|p| !p.is_empty()))
            .maybe_email(email, true)
            .groups(groups)
            .connector_data(connector_data)
    }

    /// The groups for the token: with `groups` configured the user must be in one of them
    /// (whatever the scopes) and only those are kept; the claim is filled only for the groups scope.
    fn groups(&self, crowd: &Crowd, scopes: Scopes, username: &str) -> Result<Vec<String>, ConnectorError> {
        if self.required_groups.is_empty() && !scopes.groups {
            return Ok(Vec::new());
        }
        let all = crowd.nested_groups(username)?;
        let groups = if self.required_groups.is_empty() {
            all
        } else {
            let kept = groups::filter(&all, &self.required_groups);
            if kept.is_empty() {
                log::info(&format!("Crowd user {username} is in none of the required groups"));
                return Err(ConnectorError::Denied(
                    "you are not in any of the Crowd groups allowed to log in here".into(),
                ));
            }
            kept
        };
        Ok(if scopes.groups { groups } else { Vec::new() })
    }
}

/// The user the password was checked for; Crowd answering 404 right after is its failure.
fn user_after_login(crowd: &Crowd, username: &str) -> Result<User, ConnectorError> {
    let user = crowd.user(username)?.ok_or_else(|| {
        ConnectorError::Upstream("Crowd authenticated the user but then did not find them (GET /user: 404)".into())
    })?;
    if user.key.is_empty() {
        return Err(ConnectorError::Upstream("Crowd's user has no key, which is this connector's user id".into()));
    }
    Ok(user)
}

struct AtlassianCrowd;

impl Connector for AtlassianCrowd {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        Ok(Metadata::password(config.settings()?.prompt).with_refresh())
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
        let crowd = Crowd { settings: &settings };
        match crowd.session(username, Some(password))? {
            Session::Created => {}
            Session::Invalid => {
                log::info("Crowd refused the credentials");
                return Ok(None);
            }
            Session::Refused(why) => return Err(ConnectorError::Denied(why)),
        }
        let user = user_after_login(&crowd, username)?;
        let groups = settings.groups(&crowd, scopes, &user.name)?;
        let connector_data = match scopes.offline_access {
            true => Some(data::encode(&RefreshData { username: username.to_string() })?),
            false => None,
        };
        log::info(&format!("Crowd user {} logged in", user.name));
        Ok(Some(settings.identity(user, groups, connector_data)))
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let settings = config.settings()?;
        let data: RefreshData = data::decode(previous.connector_data.as_deref()).ok_or_else(|| {
            ConnectorError::Denied("no Crowd username is stored with this session; log in again".into())
        })?;
        let crowd = Crowd { settings: &settings };
        let user = crowd
            .user(&data.username)?
            .ok_or_else(|| ConnectorError::Denied("the user no longer exists in Crowd".into()))?;
        if user.key != previous.user_id {
            return Err(ConnectorError::Denied("the Crowd username now belongs to another user".into()));
        }
        // A session without the password: Crowd refuses it for a deactivated user.
        match crowd.session(&data.username, None)? {
            Session::Created => {}
            Session::Invalid => return Err(ConnectorError::Denied("the user no longer exists in Crowd".into())),
            Session::Refused(why) => return Err(ConnectorError::Denied(why)),
        }
        let groups = settings.groups(&crowd, scopes, &user.name)?;
        Ok(settings.identity(user, groups, previous.connector_data))
    }
}

portcullis_connector_sdk::export_connector!(AtlassianCrowd);
