//! Clients, passwords and connectors that live in storage rather than in the config file:
//! created through the admin API (`api`), in Dex's shapes. They are validated by the same rules
//! as the file's entries (`Stored*::check`, when the API creates or updates one) and merged into
//! the file's config to make a generation (`Validated::with_stored`): the file's entries win
//! over stored ones with the same id, as Dex's static entries hide database rows.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::model::{ClientConfig, ConnectorConfig};
use super::validate::{Client, ConnectorEntry, StaticPassword, Validated, connectors};
use crate::connectors::LimitsConfig;
use crate::ids::{ClientId, ConnectorId};
use crate::secret::Secret;

/// A client created through the API. Empty strings and lists mean "not set", as in Dex's proto.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredClient {
    pub id: String,
    pub secret: String,
    pub redirect_uris: Vec<String>,
    pub trusted_peers: Vec<String>,
    pub public: bool,
    pub name: String,
    pub logo_url: String,
    pub allowed_connectors: Vec<String>,
    pub sso_shared_with: Vec<String>,
    pub backchannel_logout_uri: String,
    pub post_logout_redirect_uris: Vec<String>,
    /// "", "standalone" or "session".
    pub refresh_token_lifetime: String,
    /// Registered dynamically (RFC 7591): the sha256 (hex) of its registration access token,
    /// which RFC 7592's read, update and delete need.
    pub registration_token_sha256: String,
    /// When it was registered dynamically (Unix seconds; 0 when made through the gRPC API).
    pub registered_at: i64,
}

impl std::fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredClient").field("id", &self.id).field("secret", &"[redacted]").finish_non_exhaustive()
    }
}

fn some(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

impl StoredClient {
    fn as_config(&self) -> ClientConfig {
        ClientConfig {
            id: self.id.clone(),
            id_env: None,
            allowed_connectors: self.allowed_connectors.clone(),
            secret: some(&self.secret).map(Secret::new),
            secret_env: None,
            redirect_uris: self.redirect_uris.clone(),
            public: self.public,
            name: some(&self.name),
            logo_url: some(&self.logo_url),
            trusted_peers: self.trusted_peers.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: some(&self.backchannel_logout_uri),
            refresh_token_lifetime: some(&self.refresh_token_lifetime),
            // proto3 cannot tell an empty list from none: empty means the default sharing.
            sso_shared_with: (!self.sso_shared_with.is_empty()).then(|| self.sso_shared_with.clone()),
            mfa_chain: Vec::new(),
            client_credentials_claims: None,
        }
    }

    /// The client this entry makes, by the file's rules; the error says what to change.
    pub fn check(&self) -> Result<Client, String> {
        let at = format!("client {:?}", self.id);
        let (_, client) = super::validate::client(&at, &self.as_config(), &|_| None)
            .map_err(|e| e.replace(".redirectURIs", " redirect_uris"))?;
        Ok(client)
    }
}

/// A password created through the API: a bcrypt hash, as Dex stores it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredPassword {
    /// Lower-cased, as Dex stores it.
    pub email: String,
    pub hash: String,
    pub username: String,
    pub user_id: String,
    /// Dex v2.45's columns (imported from Dex's storage; the gRPC API does not set them).
    pub name: String,
    pub preferred_username: String,
    pub groups: Vec<String>,
    /// `None` reads as verified, as Dex reads a NULL.
    pub email_verified: Option<bool>,
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPassword")
            .field("email", &self.email)
            .field("hash", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The bcrypt costs the API accepts, as Dex: at least Go's default, at most 16 (a cost-17 hash
/// takes seconds to check, which a login flood turns into a denial of service).
pub const MIN_API_COST: u32 = 10;
pub const MAX_API_COST: u32 = 16;

impl StoredPassword {
    /// The user this entry makes; errors are Dex's texts where Dex has one.
    pub fn check(&self) -> Result<StaticPassword, String> {
        if self.user_id.is_empty() {
            return Err("no user ID supplied".into());
        }
        check_hash(&self.hash)?;
        Ok(StaticPassword {
            email: self.email.clone(),
            hash: Secret::new(self.hash.clone()),
            username: self.username.clone(),
            name: if self.name.is_empty() { self.username.clone() } else { self.name.clone() },
            preferred_username: (!self.preferred_username.is_empty()).then(|| self.preferred_username.clone()),
            email_verified: self.email_verified.unwrap_or(true),
            groups: self.groups.clone(),
            user_id: self.user_id.clone(),
        })
    }
}

/// Checks a hash the API was given: a bcrypt hash of a cost within [10, 16] (Dex's texts), or
/// an argon2id one within `password`'s bounds.
pub fn check_hash(hash: &str) -> Result<(), String> {
    if crate::password::Scheme::of(hash) == crate::password::Scheme::Argon2id {
        return match crate::password::parse(hash) {
            Ok(parsed) if parsed == hash => Ok(()),
            Ok(_) => Err("the hash is base64-encoded; give the argon2id text itself".into()),
            Err(e) => Err(e.to_string()),
        };
    }
    if !crate::password::parse(hash).is_ok_and(|parsed| parsed == hash) {
        return Err("the hash is not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters) nor an argon2id one; make one \
             with `portcullis hash-password` or any bcrypt library"
            .into());
    }
    let cost: u32 = hash.get(4..6).and_then(|c| c.parse().ok()).unwrap_or(0);
    if cost < MIN_API_COST {
        return Err(format!("given hash cost = {cost} does not meet minimum cost requirement = {MIN_API_COST}"));
    }
    if cost > MAX_API_COST {
        return Err(format!(
            "given hash cost = {cost} is above upper bound cost = {MAX_API_COST}, recommended cost = 12"
        ));
    }
    Ok(())
}

/// A connector created through the API: a shipped `type` and its config block as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredConnector {
    pub id: String,
    pub kind: String,
    pub name: String,
    /// The connector's config block (a JSON object).
    pub config: serde_json::Value,
    /// Dex's connector `grantTypes` (empty: no restriction).
    pub grant_types: Vec<String>,
    /// Grows by one on every update (Dex's `resource_version`).
    pub resource_version: String,
}

impl StoredConnector {
    fn as_config(&self) -> Result<ConnectorConfig, String> {
        let config = match &self.config {
            serde_json::Value::Object(map) => map.clone().into_iter().collect(),
            serde_json::Value::Null => Default::default(),
            _ => return Err(format!("connector {:?}: config must be a JSON object", self.id)),
        };
        Ok(ConnectorConfig {
            kind: Some(self.kind.clone()),
            plugin: None,
            sha256: None,
            id: self.id.clone(),
            name: self.name.clone(),
            allowed_hosts: None,
            signing_keys: None,
            limits: LimitsConfig::default(),
            config,
            grant_types: self.grant_types.clone(),
        })
    }

    /// The entry this connector makes with `config`'s plugin folders; a type whose plugin is
    /// not there is an error here (the API refuses it) rather than a connector that fails later.
    pub fn check(&self, config: &Validated) -> Result<ConnectorEntry, String> {
        let at = format!("connector {:?}", self.id);
        let mut made =
            connectors(&[self.as_config()?], config.enable_password_db, &config.base_dir, &config.plugin_dirs, &|_| {
                at.clone()
            })
            .map_err(|problems| problems.join("; "))?;
        let entry = made.pop().ok_or_else(|| format!("{at}: not a connector"))?;
        match &entry.missing {
            Some(missing) => Err(missing.clone()),
            None => Ok(entry),
        }
    }
}

/// Everything storage holds for the API, and the version counter it was read at.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub version: i64,
    pub clients: Vec<StoredClient>,
    pub passwords: Vec<StoredPassword>,
    pub connectors: Vec<StoredConnector>,
}

/// The ids in a generation that came from storage (`Validated::stored`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredIds {
    pub clients: BTreeSet<ClientId>,
    /// Lower-cased emails.
    pub passwords: BTreeSet<String>,
    pub connectors: BTreeSet<ConnectorId>,
}

impl Validated {
    /// Whether `id` is a client of the config file (read-only through the API).
    pub fn is_static_client(&self, id: &str) -> bool {
        self.clients.contains_key(id) && !self.stored.clients.contains(id)
    }

    pub fn is_static_password(&self, email: &str) -> bool {
        let email = email.to_lowercase();
        self.passwords.iter().any(|p| p.email.to_lowercase() == email) && !self.stored.passwords.contains(&email)
    }

    pub fn is_static_connector(&self, id: &str) -> bool {
        self.connectors.iter().any(|c| c.spec.id == id) && !self.stored.connectors.contains(id)
    }

    /// This file's config with the stored entries added. The file's entries win over stored
    /// ones with the same id; a stored entry that no longer passes (a type whose plugin went
    /// away, say) is left out with an error in the log, never failing the generation.
    pub fn with_stored(mut self, stored: &Stored) -> Validated {
        for c in &stored.clients {
            if self.clients.contains_key(c.id.as_str()) {
                continue;
            }
            match c.check() {
                Ok(client) => {
                    self.stored.clients.insert(client.id.clone());
                    self.clients.insert(client.id.clone(), client);
                }
                Err(e) => tracing::error!("stored client left out: {e}"),
            }
        }
        if self.enable_password_db {
            for p in &stored.passwords {
                let email = p.email.to_lowercase();
                if self.passwords.iter().any(|s| s.email.to_lowercase() == email) {
                    continue;
                }
                match p.check() {
                    Ok(password) => {
                        self.stored.passwords.insert(email);
                        self.passwords.push(password);
                    }
                    Err(e) => tracing::error!("stored password of {email:?} left out: {e}"),
                }
            }
        }
        for c in &stored.connectors {
            if self.connectors.iter().any(|e| e.spec.id == c.id.as_str()) {
                continue;
            }
            match c.check(&self) {
                Ok(entry) => {
                    self.stored.connectors.insert(entry.spec.id.clone());
                    self.connectors.push(entry);
                }
                Err(e) => tracing::error!("stored connector left out: {e}"),
            }
        }
        self
    }
}
