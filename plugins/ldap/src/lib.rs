//! The LDAP connector: password login against a directory through the host's LDAP bridge,
//! with Dex's LDAP semantics and config keys.
//!
//! A login binds as the service account (`bindDN`), finds the user with
//! `(&<userSearch.filter>(<userSearch.username>=<escaped login>))` (exactly one entry, or the
//! form again), checks the password by binding as that entry's DN on a second connection, then
//! reads the user's groups through each `groupSearch.userMatchers` entry. `refresh` repeats
//! the search and the group read with the service account; a user gone from the directory
//! fails the refresh.
//!
//! # Security
//!
//! - The login name is escaped (RFC 4515) before it enters a filter, so `*` or `)(` in it
//!   cannot widen the search.
//! - An empty password is refused before any bind: many servers accept a bind with a DN and
//!   no password as an unauthenticated (anonymous) bind.
//! - Passwords (the user's and `bindPW`) never reach a log line or an error message.

mod config;
mod filter;

use config::{Config, GroupSettings, Settings};
use portcullis_connector_sdk::ldap::{self, Connection, Entry};
use portcullis_connector_sdk::{Connector, ConnectorError, Identity, Metadata, Scopes, data, log};
use serde::{Deserialize, Serialize};

/// What the broker stores with an offline session, for `refresh`. It also reads what Dex's ldap
/// connector kept (`{"username", "entry": {"DN", "Attributes"}}`), for sessions `portcullis
/// import-dex` carried over.
#[derive(Serialize, Deserialize)]
#[serde(from = "StoredRefresh")]
struct RefreshData {
    /// The login name the user typed, searched for again on refresh.
    username: String,
    /// The entry it matched, which must still be the one found.
    dn: String,
}

/// [`RefreshData`] as stored: ours, or Dex's.
#[derive(Deserialize)]
struct StoredRefresh {
    username: String,
    #[serde(default)]
    dn: Option<String>,
    #[serde(default)]
    entry: Option<DexEntry>,
}

#[derive(Deserialize)]
struct DexEntry {
    #[serde(rename = "DN")]
    dn: String,
}

impl From<StoredRefresh> for RefreshData {
    fn from(s: StoredRefresh) -> Self {
        // No DN at all reads as "", which no entry has: the refresh is refused, never widened.
        let dn = s.dn.or(s.entry.map(|e| e.dn)).unwrap_or_default();
        Self { username: s.username, dn }
    }
}

/// The DN pseudo-attribute of Dex's `idAttr: DN` and `userAttr: DN`.
const DN: &str = "DN";

/// The values of `name` in `entry`; `DN` is the entry's DN unless the entry has such an attribute.
fn values<'a>(entry: &'a Entry, name: &str) -> Vec<&'a str> {
    let found = entry.attributes.iter().find(|(attr, _)| attr.eq_ignore_ascii_case(name));
    match found {
        Some((_, values)) => values.iter().map(String::as_str).collect(),
        None if name == DN => vec![entry.dn.as_str()],
        None => Vec::new(),
    }
}

fn first<'a>(entry: &'a Entry, name: &str) -> Option<&'a str> {
    values(entry, name).into_iter().find(|v| !v.is_empty())
}

fn missing(attr: &str, key: &str) -> ConnectorError {
    ConnectorError::Upstream(format!("the user's directory entry has no {attr:?} attribute (userSearch.{key})"))
}

impl Settings {
    /// A connection bound as the service account, or anonymous when there is none.
    fn service_connection(&self) -> Result<Connection, ConnectorError> {
        let conn = ldap::connect(&self.connect)?;
        if let Some((dn, password)) = &self.bind
            && !conn.simple_bind(dn, password)?
        {
            return Err(ConnectorError::Upstream(
                "the directory refused the service account's credentials: check bindDN and bindPW".into(),
            ));
        }
        Ok(conn)
    }

    /// The attributes a user search asks for.
    fn user_attributes(&self) -> Vec<String> {
        let u = &self.user;
        let mut attrs: Vec<String> = Vec::new();
        let wanted = [Some(&u.id_attr), Some(&u.username_attr), Some(&u.email_attr), u.name_attr.as_ref()]
            .into_iter()
            .flatten()
            .chain(u.preferred_username_attr.as_ref())
            .chain(self.groups.iter().flat_map(|g| g.matchers.iter().map(|m| &m.user_attr)));
        for attr in wanted {
            if !attr.is_empty() && attr != DN && !attrs.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
                attrs.push(attr.clone());
            }
        }
        attrs
    }

    /// The one entry `username` names, or `None` when none or several do.
    fn find_user(&self, conn: &Connection, username: &str) -> Result<Option<Entry>, ConnectorError> {
        let u = &self.user;
        let filter = filter::equality(u.filter.as_deref(), &u.username_attr, username);
        let mut entries = conn.search(&u.base_dn, u.scope, &filter, &self.user_attributes())?;
        match entries.len() {
            0 => {
                log::info("user search: no entry matches the login name");
                Ok(None)
            }
            1 => Ok(entries.pop()),
            n => {
                log::warn(&format!(
                    "user search: {n} entries match the login name, a login name must match exactly one; \
                     refusing the login (make userSearch.filter or userSearch.username more specific)"
                ));
                Ok(None)
            }
        }
    }

    /// The identity of a user entry, following Dex: `name` from nameAttr, email from
    /// emailAttr or `<name>@<emailSuffix>`, always verified.
    fn identity(&self, entry: &Entry, groups: Vec<String>, data: Option<Vec<u8>>) -> Result<Identity, ConnectorError> {
        let u = &self.user;
        let user_id = first(entry, &u.id_attr).ok_or_else(|| missing(&u.id_attr, "idAttr"))?;
        let login = first(entry, &u.username_attr).ok_or_else(|| missing(&u.username_attr, "username"))?;
        let name = match &u.name_attr {
            Some(attr) => first(entry, attr).ok_or_else(|| missing(attr, "nameAttr"))?,
            None => login,
        };
        let email = match &u.email_suffix {
            Some(suffix) => format!("{name}@{suffix}"),
            None => first(entry, &u.email_attr).ok_or_else(|| missing(&u.email_attr, "emailAttr"))?.to_string(),
        };
        let preferred_username = u.preferred_username_attr.as_ref().and_then(|a| first(entry, a)).map(str::to_string);
        Ok(Identity::new(user_id, name)
            .maybe_preferred_username(preferred_username)
            .email(email, true)
            .groups(groups)
            .connector_data(data))
    }

    /// The names of the groups `entry` belongs to, sorted (servers return entries in no fixed
    /// order), without repeats; with a matcher's `recursionGroupAttr`, the groups those groups are
    /// in as well, up the tree (each group read once, so a cycle ends).
    fn groups(&self, conn: &Connection, entry: &Entry) -> Result<Vec<String>, ConnectorError> {
        let Some(g) = &self.groups else { return Ok(Vec::new()) };
        let mut names: Vec<String> = Vec::new();
        for matcher in &g.matchers {
            let mut level = Vec::new();
            for value in values(entry, &matcher.user_attr) {
                level.extend(group_entries(conn, g, &matcher.group_attr, value)?);
            }
            let Some(parent_attr) = &matcher.recursion_group_attr else {
                for group in &level {
                    names.push(group_name(g, group)?);
                }
                continue;
            };
            let mut seen = std::collections::BTreeSet::new();
            while !level.is_empty() {
                let mut parents = Vec::new();
                for group in level {
                    if !seen.insert(group.dn.clone()) {
                        continue;
                    }
                    if seen.len() > MAX_NESTED_GROUPS {
                        return Err(ConnectorError::Upstream(format!(
                            "the user is in more than {MAX_NESTED_GROUPS} groups counting nested ones \
                             (groupSearch recursionGroupAttr); narrow groupSearch.baseDN or groupSearch.filter"
                        )));
                    }
                    names.push(group_name(g, &group)?);
                    parents.extend(group_entries(conn, g, parent_attr, &group.dn)?);
                }
                level = parents;
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// How many groups a nested-group walk reads at most (one search each).
const MAX_NESTED_GROUPS: usize = 256;

/// The group entries whose `group_attr` holds `value`.
fn group_entries(
    conn: &Connection,
    g: &GroupSettings,
    group_attr: &str,
    value: &str,
) -> Result<Vec<Entry>, ConnectorError> {
    let filter = filter::equality(g.filter.as_deref(), group_attr, value);
    Ok(conn.search(&g.base_dn, g.scope, &filter, std::slice::from_ref(&g.name_attr))?)
}

/// A group entry's `groupSearch.nameAttr`, which it must have.
fn group_name(g: &GroupSettings, group: &Entry) -> Result<String, ConnectorError> {
    first(group, &g.name_attr).map(str::to_string).ok_or_else(|| {
        log::warn(&format!("group entry {:?} has no {:?} attribute (groupSearch.nameAttr)", group.dn, g.name_attr));
        ConnectorError::Upstream(format!("a group entry has no {:?} attribute (groupSearch.nameAttr)", g.name_attr))
    })
}

struct Ldap;

impl Connector for Ldap {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        let settings = config.settings()?;
        Ok(Metadata::password(settings.prompt).with_refresh())
    }

    fn login(
        config: &Config,
        scopes: Scopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        // An empty password would make the user bind an unauthenticated (anonymous) bind.
        if password.is_empty() || username.is_empty() {
            return Ok(None);
        }
        let settings = config.settings()?;
        let service = settings.service_connection()?;
        let Some(entry) = settings.find_user(&service, username)? else { return Ok(None) };
        // The user's bind on a connection of its own, so the service connection keeps its rights.
        let user_conn = ldap::connect(&settings.connect)?;
        if !user_conn.simple_bind(&entry.dn, password)? {
            log::info("user bind refused: wrong password");
            return Ok(None);
        }
        drop(user_conn);
        let groups = if scopes.groups { settings.groups(&service, &entry)? } else { Vec::new() };
        let data = if scopes.offline_access {
            let data = RefreshData { username: username.to_string(), dn: entry.dn.clone() };
            Some(data::encode(&data)?)
        } else {
            None
        };
        settings.identity(&entry, groups, data).map(Some)
    }

    fn refresh(config: &Config, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let settings = config.settings()?;
        let data: RefreshData = data::decode(identity.connector_data.as_deref())
            .ok_or_else(|| ConnectorError::BadRequest("no LDAP refresh data with this session; log in again".into()))?;
        let service = settings.service_connection()?;
        let entry = settings
            .find_user(&service, &data.username)?
            .ok_or_else(|| ConnectorError::Denied("the user is no longer in the directory".into()))?;
        if entry.dn != data.dn {
            log::warn("refresh: the login name now names another directory entry; refusing");
            return Err(ConnectorError::Denied("the login name now belongs to another directory entry".into()));
        }
        let groups = if scopes.groups { settings.groups(&service, &entry)? } else { Vec::new() };
        let refreshed = settings.identity(&entry, groups, identity.connector_data)?;
        // Same DN, other person (deleted and re-created with a new idAttr such as entryUUID).
        if refreshed.user_id != identity.user_id {
            log::warn("refresh: the directory entry now has another id; refusing");
            return Err(ConnectorError::Denied("the directory entry now belongs to another user".into()));
        }
        Ok(refreshed)
    }
}

portcullis_connector_sdk::export_connector!(Ldap);

#[cfg(test)]
mod tests {
    use super::RefreshData;

    #[test]
    fn refresh_data_reads_ours_and_dexs() {
        let ours: RefreshData = serde_json::from_str(r#"{"username":"jane","dn":"uid=jane,dc=x"}"#).unwrap();
        assert_eq!((ours.username.as_str(), ours.dn.as_str()), ("jane", "uid=jane,dc=x"));
        // Dex's ldap connector keeps the whole entry (go-ldap's Entry).
        let dex = r#"{"username":"jane","entry":{"DN":"uid=jane,dc=x","Attributes":[{"Name":"uid","Values":["jane"],"ByteValues":["amFuZQ=="]}]}}"#;
        let dex: RefreshData = serde_json::from_str(dex).unwrap();
        assert_eq!((dex.username.as_str(), dex.dn.as_str()), ("jane", "uid=jane,dc=x"));
        let encoded = serde_json::to_value(&dex).unwrap();
        assert_eq!(encoded, serde_json::json!({"username": "jane", "dn": "uid=jane,dc=x"}), "written in our form");
        let no_dn: RefreshData = serde_json::from_str(r#"{"username":"jane"}"#).unwrap();
        assert_eq!(no_dn.dn, "", "matches no entry");
    }
}
