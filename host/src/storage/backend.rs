//! The storage backend contract: a small set of atomic operations on typed-by-kind JSON
//! records, implemented by memory, SQLite and PostgreSQL. The typed API the broker uses
//! (auth requests, codes, refresh tokens, sessions, keys, device requests) is built once on top of it.

use async_trait::async_trait;

/// What a record is; each kind is its own namespace of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    AuthRequest,
    AuthCode,
    RefreshToken,
    Session,
    Keys,
    /// One successful code redemption; refresh and access tokens die with it.
    Grant,
    /// A device authorization (RFC 8628), keyed by its device code's hash, in the family of
    /// its user code's hash.
    DeviceRequest,
    /// A client, password or connector created through the admin API (family `api`).
    ApiClient,
    ApiPassword,
    ApiConnector,
    /// The admin API's change counter: replicas rebuild their generation when it moves.
    ApiVersion,
    /// A user's refresh-token grant, filed under the user's `sub` (the API's ListRefresh).
    UserGrant,
    /// The revocation of a grant that is never stored (client_credentials'), kept until its
    /// token expires.
    RevokedGrant,
}

impl Kind {
    /// Stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AuthRequest => "auth_request",
            Kind::AuthCode => "auth_code",
            Kind::RefreshToken => "refresh_token",
            Kind::Session => "session",
            Kind::Keys => "keys",
            Kind::Grant => "grant",
            Kind::DeviceRequest => "device_request",
            Kind::ApiClient => "api_client",
            Kind::ApiPassword => "api_password",
            Kind::ApiConnector => "api_connector",
            Kind::ApiVersion => "api_version",
            Kind::UserGrant => "user_grant",
            Kind::RevokedGrant => "revoked_grant",
        }
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// JSON document.
    pub data: String,
    /// Optional grouping key (a refresh token family, a user's sessions, ...).
    pub family: Option<String>,
    /// Starts at 1 and grows by one on every successful `update`.
    pub version: i64,
    /// Unix seconds after which the record no longer exists for `get`, `take` and `update`.
    pub expires_at: i64,
}

/// Storage failures. Messages name the backend and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("a {kind} with this id already exists")]
    Conflict { kind: &'static str },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("stored {kind} is corrupt: {reason}")]
    Corrupt { kind: &'static str, reason: String },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One compare-and-swap, as [`Backend::update`] takes it: replace the data and expiry of the live
/// record `kind`/`id` if its version is `expected_version`.
#[derive(Debug, Clone, Copy)]
pub struct Swap<'a> {
    pub kind: Kind,
    pub id: &'a str,
    pub expected_version: i64,
    pub data: &'a str,
    pub expires_at: i64,
}

/// The operations every backend implements. Each is atomic on its own; `now` is passed in
/// (Unix seconds) so tests control time and replicas agree on it.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Inserts a new record with version 1. An existing live record with the same id is a
    /// `Conflict`; an expired one is replaced.
    async fn insert(&self, kind: Kind, id: &str, record: &Record, now: i64) -> Result<()>;

    /// Inserts new records with version 1, in one statement where the backend can (a login
    /// step's grant, refresh token and index entry are one write). Each record follows
    /// `insert`'s rule; if any id is taken by a live record the answer is `Conflict`, and the
    /// records that did not conflict may have been written: callers give fresh random ids, so
    /// such records are unreachable (nobody holds their ids) and expire as garbage.
    async fn insert_many(&self, records: &[(Kind, &str, &Record)], now: i64) -> Result<()> {
        for (kind, id, record) in records {
            self.insert(*kind, id, record, now).await?;
        }
        Ok(())
    }

    /// The live record, if any.
    async fn get(&self, kind: Kind, id: &str, now: i64) -> Result<Option<Record>>;

    /// The live record, and whether the live record of kind `parent` whose id is the record's
    /// family exists (a refresh token and its grant), in one statement where the backend can.
    /// A record without a family has no live parent.
    async fn get_with_parent(&self, kind: Kind, id: &str, parent: Kind, now: i64) -> Result<Option<(Record, bool)>> {
        let Some(record) = self.get(kind, id, now).await? else { return Ok(None) };
        let live = match &record.family {
            Some(family) => self.get(parent, family, now).await?.is_some(),
            None => false,
        };
        Ok(Some((record, live)))
    }

    /// Replaces data and expiry if the live record's version is `expected_version`; the new
    /// version is `expected_version + 1`. Returns false (changing nothing) otherwise: this is the
    /// compare-and-swap that makes codes single-use, refresh rotation race-free and key rotation
    /// happen once across replicas.
    async fn update(
        &self,
        kind: Kind,
        id: &str,
        expected_version: i64,
        data: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool>;

    /// Inserts a new record (`insert`'s rule) and applies `swap` (`update`'s rule) as one change:
    /// a refresh rotation's successor and the parent that points at it. `Ok(false)` when the
    /// swap's version no longer matches, and then the new record is not kept either.
    ///
    /// SQLite and the memory storage commit both or neither; PostgreSQL runs both in one
    /// statement, where a new id taken by any row (live or expired) is a `Conflict` that writes
    /// nothing. Elsewhere (this default, MySQL) the new record is written first and deleted after
    /// a lost swap: a crash between the two leaves an unreachable record for garbage collection,
    /// never a swapped record pointing at one that does not exist.
    async fn insert_and_update(&self, kind: Kind, id: &str, record: &Record, swap: Swap<'_>, now: i64) -> Result<bool> {
        insert_then_update(self, kind, id, record, swap, now).await
    }

    /// Atomically deletes and returns the live record: exactly one of several concurrent
    /// callers gets it.
    async fn take(&self, kind: Kind, id: &str, now: i64) -> Result<Option<Record>>;

    /// Deletes the record (live or expired); true if there was one.
    async fn delete(&self, kind: Kind, id: &str) -> Result<bool>;

    /// Deletes every record of `kind` in `family`; returns how many.
    async fn delete_family(&self, kind: Kind, family: &str) -> Result<u64>;

    /// Ids of the live records of `kind` in `family`.
    async fn list_family(&self, kind: Kind, family: &str, now: i64) -> Result<Vec<String>>;

    /// Deletes every expired record; returns how many.
    async fn collect_garbage(&self, now: i64) -> Result<u64>;

    /// Checks the backend is reachable (for readiness).
    async fn ping(&self) -> Result<()>;
}

/// [`Backend::insert_and_update`] in two steps: the insert, then the swap, and the inserted
/// record deleted again after a lost swap (it was never handed out).
pub(super) async fn insert_then_update<B: Backend + ?Sized>(
    backend: &B,
    kind: Kind,
    id: &str,
    record: &Record,
    swap: Swap<'_>,
    now: i64,
) -> Result<bool> {
    backend.insert(kind, id, record, now).await?;
    if backend.update(swap.kind, swap.id, swap.expected_version, swap.data, swap.expires_at, now).await? {
        return Ok(true);
    }
    let _ = backend.delete(kind, id).await;
    Ok(false)
}
