//! What the admin API keeps: clients, passwords and connectors (family `api`, never expiring),
//! a change counter replicas watch to rebuild their generation, and the index of each user's
//! refresh-token grants that `ListRefresh` and `RevokeRefresh` read.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::backend::{Kind, Record, Result, StorageError};
use super::objects::{Batch, Store};
use crate::config::stored::{Stored, StoredClient, StoredConnector, StoredPassword};

/// The family every API object is filed under, so one kind can be listed.
const API: &str = "api";
/// The id of the change counter (its record's version is the counter).
const COUNTER: &str = "api";

/// An object the API stores, under its id.
pub trait ApiObject: Serialize + DeserializeOwned {
    const KIND: Kind;
    fn key(&self) -> String;
}

impl ApiObject for StoredClient {
    const KIND: Kind = Kind::ApiClient;
    fn key(&self) -> String {
        self.id.clone()
    }
}

impl ApiObject for StoredPassword {
    const KIND: Kind = Kind::ApiPassword;
    fn key(&self) -> String {
        self.email.to_lowercase()
    }
}

impl ApiObject for StoredConnector {
    const KIND: Kind = Kind::ApiConnector;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// One grant with a refresh token, in the index of its user's grants.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserGrant {
    pub client_id: String,
    pub created_at: i64,
}

fn corrupt(kind: Kind, e: serde_json::Error) -> StorageError {
    StorageError::Corrupt { kind: kind.as_str(), reason: e.to_string() }
}

impl Store {
    /// The change counter: 0 before the API stored anything.
    pub async fn api_version(&self, now: i64) -> Result<i64> {
        Ok(self.backend().get(Kind::ApiVersion, COUNTER, now).await?.map_or(0, |r| r.version))
    }

    /// Moves the counter on (after every change), so every replica rebuilds.
    async fn bump_api_version(&self, now: i64) -> Result<i64> {
        loop {
            match self.backend().get(Kind::ApiVersion, COUNTER, now).await? {
                Some(r) => {
                    if self.backend().update(Kind::ApiVersion, COUNTER, r.version, "null", i64::MAX, now).await? {
                        return Ok(r.version + 1);
                    }
                }
                None => {
                    let record = Record { data: "null".into(), family: None, version: 1, expires_at: i64::MAX };
                    match self.backend().insert(Kind::ApiVersion, COUNTER, &record, now).await {
                        Ok(()) => return Ok(1),
                        Err(StorageError::Conflict { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Everything the API stored, and the counter it was read at (read first: a change made
    /// while reading moves the counter past it, so the next look reads again).
    pub async fn stored(&self, now: i64) -> Result<Stored> {
        let version = self.api_version(now).await?;
        Ok(Stored {
            version,
            clients: self.api_list(now).await?,
            passwords: self.api_list(now).await?,
            connectors: self.api_list(now).await?,
        })
    }

    /// Every stored object of one kind, in id order.
    pub async fn api_list<T: ApiObject>(&self, now: i64) -> Result<Vec<T>> {
        let mut ids = self.backend().list_family(T::KIND, API, now).await?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((value, _)) = self.api_get::<T>(&id, now).await? {
                out.push(value);
            }
        }
        Ok(out)
    }

    /// The stored object and its version (for `api_update`).
    pub async fn api_get<T: ApiObject>(&self, id: &str, now: i64) -> Result<Option<(T, i64)>> {
        match self.backend().get(T::KIND, id, now).await? {
            Some(r) => Ok(Some((serde_json::from_str(&r.data).map_err(|e| corrupt(T::KIND, e))?, r.version))),
            None => Ok(None),
        }
    }

    /// Stores a new object; false when one with its id exists.
    pub async fn api_create<T: ApiObject>(&self, value: &T, now: i64) -> Result<bool> {
        let data = serde_json::to_string(value).map_err(|e| corrupt(T::KIND, e))?;
        let record = Record { data, family: Some(API.into()), version: 1, expires_at: i64::MAX };
        match self.backend().insert(T::KIND, &value.key(), &record, now).await {
            Ok(()) => {
                self.bump_api_version(now).await?;
                Ok(true)
            }
            Err(StorageError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces the object if it is still at `version`; false when someone changed it meanwhile.
    pub async fn api_update<T: ApiObject>(&self, value: &T, version: i64, now: i64) -> Result<bool> {
        let data = serde_json::to_string(value).map_err(|e| corrupt(T::KIND, e))?;
        let updated = self.backend().update(T::KIND, &value.key(), version, &data, i64::MAX, now).await?;
        if updated {
            self.bump_api_version(now).await?;
        }
        Ok(updated)
    }

    /// Deletes the object; false when there was none.
    pub async fn api_delete<T: ApiObject>(&self, id: &str, now: i64) -> Result<bool> {
        let deleted = self.backend().delete(T::KIND, id).await?;
        if deleted {
            self.bump_api_version(now).await?;
        }
        Ok(deleted)
    }

    /// Files a grant that issued a refresh token under its user (`sub`), until it expires.
    pub async fn file_user_grant(
        &self,
        sub: &str,
        grant: &str,
        entry: &UserGrant,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        let data = serde_json::to_string(entry).map_err(|e| corrupt(Kind::UserGrant, e))?;
        let record = Record { data, family: Some(sub.into()), version: 1, expires_at };
        self.backend().insert(Kind::UserGrant, grant, &record, now).await
    }

    /// The user's filed grants (grant id and entry); a grant revoked since may still be listed.
    pub async fn user_grants(&self, sub: &str, now: i64) -> Result<Vec<(String, UserGrant)>> {
        let mut out = Vec::new();
        for grant in self.backend().list_family(Kind::UserGrant, sub, now).await? {
            if let Some(r) = self.backend().get(Kind::UserGrant, &grant, now).await? {
                out.push((grant, serde_json::from_str(&r.data).map_err(|e| corrupt(Kind::UserGrant, e))?));
            }
        }
        Ok(out)
    }

    /// The refresh tokens of a grant still live and unrotated, with when each was last used.
    pub async fn grant_refresh_last_used(&self, grant: &str, now: i64) -> Result<Option<i64>> {
        let mut last = None;
        for id in self.backend().list_family(Kind::RefreshToken, grant, now).await? {
            if let Some(r) = self.backend().get(Kind::RefreshToken, &id, now).await? {
                let token: super::RefreshToken =
                    serde_json::from_str(&r.data).map_err(|e| corrupt(Kind::RefreshToken, e))?;
                last = Some(last.unwrap_or(0).max(token.last_used));
            }
        }
        Ok(last)
    }

    /// Drops a grant from its user's index.
    pub async fn unfile_user_grant(&self, grant: &str) -> Result<bool> {
        self.backend().delete(Kind::UserGrant, grant).await
    }
}

impl Batch {
    /// Files a grant under its user, as [`Store::file_user_grant`] does.
    pub fn user_grant(&mut self, sub: &str, grant: &str, entry: &UserGrant, expires_at: i64) -> Result<()> {
        self.push(Kind::UserGrant, grant, Some(sub), entry, expires_at)
    }
}
