//! The typed objects the broker stores, and `Store`: the typed API over any `Backend`.
//! Everything is serialised as JSON, so the three backends share one schema.

use std::sync::Arc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::backend::{Backend, Kind, Record, Result, StorageError, Swap};
use crate::connectors::Identity;
use crate::ids::{ClientId, ConnectorId, TokenKey};

/// A login in progress: created by the authorization endpoint, completed by a connector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthRequest {
    pub id: String,
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<crate::oidc::pkce::Method>,
    /// `prompt` values asked for (none, login, consent).
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    /// Hash of the browser-binding cookie: only the browser that started the login finishes it.
    pub browser_binding: TokenKey,
    /// Anti-CSRF token embedded in this login's forms.
    pub csrf: String,
    pub connector_id: Option<ConnectorId>,
    /// The registry generation the connector call was made with (hot reload).
    pub connector_generation: Option<u64>,
    pub connector_state: Option<Vec<u8>>,
    /// Set once a connector authenticated the user.
    pub identity: Option<Identity>,
    pub auth_time: Option<i64>,
    /// The SSO session this login started or used: logout revokes what it produced.
    #[serde(default)]
    pub session: Option<TokenKey>,
    /// Wrong passwords entered for this login so far (it ends at `MAX_FAILED_PER_LOGIN`).
    #[serde(default)]
    pub failed_logins: u32,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization code: single use, short-lived.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthCode {
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<crate::oidc::pkce::Method>,
    pub connector_id: ConnectorId,
    pub identity: Identity,
    pub auth_time: i64,
    /// Set when redeemed: the grant it created (revoked if the code is presented again).
    pub redeemed_grant: Option<String>,
    /// The SSO session of the login (the grant is filed under it, so logout revokes it).
    #[serde(default)]
    pub session: Option<TokenKey>,
    pub expires_at: i64,
}

impl AuthCode {
    /// What the token endpoint checks a presented code against.
    pub fn issued(&self) -> crate::oidc::token::IssuedCode<'_> {
        crate::oidc::token::IssuedCode {
            client_id: &self.client_id,
            redirect_uri: &self.redirect_uri,
            code_challenge: self.code_challenge.as_deref(),
            code_challenge_method: self.code_challenge_method,
            redeemed_grant: self.redeemed_grant.as_deref(),
        }
    }
}

/// A device authorization (RFC 8628): created at `/device/code`, approved (or denied) in a
/// browser, redeemed by the device's poll. Stored under the sha256 of its device code, in the
/// family of the sha256 of its user code (the browser finds it by the code the user typed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceRequest {
    /// This record's id: the sha256 of the device code.
    pub key: TokenKey,
    pub client_id: ClientId,
    pub scopes: Vec<String>,
    /// The device's PKCE challenge, if it sent one (Dex's extension of RFC 8628).
    #[serde(default)]
    pub code_challenge: Option<String>,
    #[serde(default)]
    pub code_challenge_method: Option<crate::oidc::pkce::Method>,
    pub status: DeviceStatus,
    /// The last poll of the token endpoint (Unix seconds), none before the first.
    pub last_poll: Option<i64>,
    /// Seconds the device must wait between polls (grows by 5 with every `slow_down`).
    pub interval: i64,
    pub created_at: i64,
    /// When the device code and the user code stop being valid (`expiry.deviceRequests`).
    pub expires_at: i64,
}

/// Polls after a device code expired are told `expired_token` (not "unknown") for this long;
/// then the record is garbage.
pub const DEVICE_EXPIRED_KEPT: i64 = 10 * 60;

impl DeviceRequest {
    /// When storage may drop the record.
    pub fn kept_until(&self) -> i64 {
        self.expires_at.saturating_add(DEVICE_EXPIRED_KEPT)
    }

    /// What a poll is decided on.
    pub fn poll_facts(&self) -> crate::oidc::device::PollFacts<'_> {
        use crate::oidc::device::Stage;
        crate::oidc::device::PollFacts {
            client_id: &self.client_id,
            stage: match &self.status {
                DeviceStatus::Pending => Stage::Pending,
                DeviceStatus::Approved { .. } => Stage::Approved,
                DeviceStatus::Denied => Stage::Denied,
                DeviceStatus::Redeemed { grant } => Stage::Redeemed { grant },
            },
            expires_at: self.expires_at,
            last_poll: self.last_poll,
            interval: self.interval,
            challenge: self
                .code_challenge
                .as_deref()
                .map(|c| (c, self.code_challenge_method.unwrap_or(crate::oidc::pkce::Method::S256))),
        }
    }
}

/// Where a device request stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum DeviceStatus {
    Pending,
    /// The user logged in and approved: the identity the tokens will be issued for, and the
    /// grant id the login's code was redeemed under (a replayed code revokes it).
    Approved {
        connector_id: ConnectorId,
        identity: Identity,
        auth_time: i64,
        grant: String,
    },
    Denied,
    /// The tokens went out under `grant`.
    Redeemed {
        grant: String,
    },
}

/// A refresh token; `family` groups the tokens rotated from one login.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefreshToken {
    pub family: String,
    pub client_id: ClientId,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub connector_id: ConnectorId,
    pub identity: Identity,
    pub auth_time: i64,
    pub created_at: i64,
    /// When the family began (absolute lifetime counts from here).
    pub family_created_at: i64,
    pub last_used: i64,
    /// Set when this token was redeemed and replaced.
    pub rotated_at: Option<i64>,
    /// The id of the token that replaced this one (reuse within the interval gets it again).
    pub successor: Option<TokenKey>,
    /// That token itself, sealed with a key only the holder of this token can derive
    /// (`oidc::token::seal_successor`), so a retry within the reuse interval gets the same
    /// successor while the database holds nothing usable.
    #[serde(default)]
    pub successor_sealed: Option<String>,
    /// The SSO session of the login the family began with (its `sid`; `refreshTokenLifetime: session`).
    #[serde(default)]
    pub session: Option<TokenKey>,
    pub expires_at: i64,
}

/// A browser session (single sign-on).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub connector_id: ConnectorId,
    pub identity: Identity,
    pub auth_time: i64,
    /// The absolute end (`sessions.absoluteLifetime` / `expiry.sessions` after the login).
    pub expires_at: i64,
    /// The idle end (`sessions.validIfNotUsedFor` after the last use); none without an idle timeout.
    #[serde(default)]
    pub idle_expires_at: Option<i64>,
    /// The clients this session logged the user into, and how.
    #[serde(default)]
    pub clients: std::collections::BTreeMap<ClientId, SessionClient>,
}

impl Session {
    /// When the record may go: the earlier of the absolute and the idle end.
    pub fn ends_at(&self) -> i64 {
        self.idle_expires_at.map_or(self.expires_at, |idle| idle.min(self.expires_at))
    }
}

/// One client of a session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct SessionClient {
    /// Logged in through another client's shared session, not by a login of its own: such a
    /// client never shares the session further (no transitive sharing, as in Dex).
    #[serde(default)]
    pub via_sso: bool,
}

/// The signing keys, one document shared by every replica.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct KeySet {
    pub current: StoredKey,
    /// The key access tokens are signed with when `signing.accessTokenAlgorithm` differs from
    /// `signing.algorithm`; absent: `current` signs them too. Rotated with `current`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<StoredKey>,
    /// Earlier keys, published until the tokens they signed expire.
    pub previous: Vec<PublicKey>,
    pub next_rotation: i64,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("current", &self.current.kid)
            .field("access", &self.access.as_ref().map(|k| &k.kid))
            .field("next_rotation", &self.next_rotation)
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 PEM of the private key.
    pub private_pem: String,
    /// The public key as a JWK (JSON).
    pub jwk: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicKey {
    pub kid: String,
    pub jwk: serde_json::Value,
    pub expires_at: i64,
}

/// The typed API the broker uses, over any backend.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

/// New records written together by [`Store::write`] (one statement in SQL): what a code
/// redemption creates — the grant, its refresh token, the user's index entry.
#[derive(Debug, Default)]
pub struct Batch {
    records: Vec<(Kind, String, Record)>,
}

impl Batch {
    pub(super) fn push<T: Serialize>(
        &mut self,
        kind: Kind,
        id: &str,
        family: Option<&str>,
        value: &T,
        expires_at: i64,
    ) -> Result<()> {
        self.records.push((kind, id.to_string(), new_record(kind, family, value, expires_at)?));
        Ok(())
    }

    /// A grant (see [`Store::create_grant`]).
    pub fn grant(&mut self, id: &str, session: Option<&TokenKey>, expires_at: i64) -> Result<()> {
        self.push(Kind::Grant, id, session.map(TokenKey::as_str), &serde_json::Value::Null, expires_at)
    }

    /// A refresh token (see [`Store::create_refresh_token`]).
    pub fn refresh_token(&mut self, id: &TokenKey, token: &RefreshToken) -> Result<()> {
        self.push(Kind::RefreshToken, id.as_str(), Some(&token.family), token, token.expires_at)
    }
}

/// What the id of a grant that is never stored starts with. A client_credentials grant is one
/// access token and nothing else (no refresh token, no session, no user), so issuing it writes
/// nothing, as in Dex; it is live until revoked, and revoking it stores the revocation instead
/// (`Kind::RevokedGrant`, kept until the token expires), so introspection, userinfo and
/// `/token/revoke` treat it as any other grant. The other grants' ids are base64url or Dex's
/// base32 and never hold a `.`.
const UNSTORED_GRANT: &str = "cc.";

/// A fresh id for a grant that is never stored (see [`UNSTORED_GRANT`]), from a random token.
pub fn unstored_grant_id(random: &str) -> String {
    format!("{UNSTORED_GRANT}{random}")
}

/// The id of the one key set document.
const KEYS_ID: &str = "signing";

fn encode<T: Serialize>(kind: Kind, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt { kind: kind.as_str(), reason: e.to_string() })
}

/// A record to insert (version 1) holding `value`.
fn new_record<T: Serialize>(kind: Kind, family: Option<&str>, value: &T, expires_at: i64) -> Result<Record> {
    Ok(Record { data: encode(kind, value)?, family: family.map(str::to_string), version: 1, expires_at })
}

fn decode<T: DeserializeOwned>(kind: Kind, record: &Record) -> Result<T> {
    serde_json::from_str(&record.data).map_err(|e| StorageError::Corrupt { kind: kind.as_str(), reason: e.to_string() })
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    async fn insert<T: Serialize>(
        &self,
        kind: Kind,
        id: &str,
        family: Option<&str>,
        value: &T,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        self.backend.insert(kind, id, &new_record(kind, family, value, expires_at)?, now).await
    }

    /// Inserts every record of `batch` at once (`Backend::insert_many`).
    pub async fn write(&self, batch: &Batch, now: i64) -> Result<()> {
        let records: Vec<(Kind, &str, &Record)> = batch.records.iter().map(|(k, id, r)| (*k, id.as_str(), r)).collect();
        self.backend.insert_many(&records, now).await
    }

    async fn get<T: DeserializeOwned>(&self, kind: Kind, id: &str, now: i64) -> Result<Option<(T, i64)>> {
        match self.backend.get(kind, id, now).await? {
            Some(record) => Ok(Some((decode(kind, &record)?, record.version))),
            None => Ok(None),
        }
    }

    pub async fn create_auth_request(&self, req: &AuthRequest, now: i64) -> Result<()> {
        self.insert(Kind::AuthRequest, &req.id, None, req, req.expires_at, now).await
    }

    pub async fn auth_request(&self, id: &str, now: i64) -> Result<Option<(AuthRequest, i64)>> {
        self.get(Kind::AuthRequest, id, now).await
    }

    /// Saves `req` if nobody changed it since `version` was read.
    pub async fn update_auth_request(&self, req: &AuthRequest, version: i64, now: i64) -> Result<bool> {
        let data = encode(Kind::AuthRequest, req)?;
        self.backend.update(Kind::AuthRequest, &req.id, version, &data, req.expires_at, now).await
    }

    /// Removes the auth request and returns it: exactly one caller finishes a login.
    pub async fn take_auth_request(&self, id: &str, now: i64) -> Result<Option<AuthRequest>> {
        match self.backend.take(Kind::AuthRequest, id, now).await? {
            Some(record) => Ok(Some(decode(Kind::AuthRequest, &record)?)),
            None => Ok(None),
        }
    }

    pub async fn create_auth_code(&self, code: &TokenKey, value: &AuthCode, now: i64) -> Result<()> {
        self.insert(Kind::AuthCode, code.as_str(), None, value, value.expires_at, now).await
    }

    pub async fn auth_code(&self, code: &TokenKey, now: i64) -> Result<Option<(AuthCode, i64)>> {
        self.get(Kind::AuthCode, code.as_str(), now).await
    }

    /// Marks the code redeemed under `grant` if still at `version`; false if someone else did.
    pub async fn redeem_auth_code(&self, code: &TokenKey, value: &AuthCode, version: i64, now: i64) -> Result<bool> {
        let data = encode(Kind::AuthCode, value)?;
        self.backend.update(Kind::AuthCode, code.as_str(), version, &data, value.expires_at, now).await
    }

    pub async fn create_refresh_token(&self, id: &TokenKey, token: &RefreshToken, now: i64) -> Result<()> {
        self.insert(Kind::RefreshToken, id.as_str(), Some(&token.family), token, token.expires_at, now).await
    }

    pub async fn refresh_token(&self, id: &TokenKey, now: i64) -> Result<Option<(RefreshToken, i64)>> {
        self.get(Kind::RefreshToken, id.as_str(), now).await
    }

    /// The refresh token, its version, and whether its grant (its family) is live: one read.
    pub async fn refresh_token_and_grant(&self, id: &TokenKey, now: i64) -> Result<Option<(RefreshToken, i64, bool)>> {
        match self.backend.get_with_parent(Kind::RefreshToken, id.as_str(), Kind::Grant, now).await? {
            Some((record, grant_live)) => Ok(Some((decode(Kind::RefreshToken, &record)?, record.version, grant_live))),
            None => Ok(None),
        }
    }

    pub async fn update_refresh_token(
        &self,
        id: &TokenKey,
        token: &RefreshToken,
        version: i64,
        now: i64,
    ) -> Result<bool> {
        let data = encode(Kind::RefreshToken, token)?;
        self.backend.update(Kind::RefreshToken, id.as_str(), version, &data, token.expires_at, now).await
    }

    /// Rotates a refresh token: creates `successor` under `successor_id` and swaps the parent
    /// `id` (at `version`) to `parent`, which points at it, as one change
    /// (`Backend::insert_and_update`). False when another request rotated the parent first; the
    /// successor is then not kept.
    pub async fn rotate_refresh_token(
        &self,
        id: &TokenKey,
        parent: &RefreshToken,
        version: i64,
        successor_id: &TokenKey,
        successor: &RefreshToken,
        now: i64,
    ) -> Result<bool> {
        let kind = Kind::RefreshToken;
        let record = new_record(kind, Some(&successor.family), successor, successor.expires_at)?;
        let data = encode(kind, parent)?;
        let swap =
            Swap { kind, id: id.as_str(), expected_version: version, data: &data, expires_at: parent.expires_at };
        self.backend.insert_and_update(kind, successor_id.as_str(), &record, swap, now).await
    }

    /// Revokes every token of a family (reuse detected, or logout).
    pub async fn revoke_refresh_family(&self, family: &str) -> Result<u64> {
        self.backend.delete_family(Kind::RefreshToken, family).await
    }

    pub async fn create_session(&self, id: &TokenKey, session: &Session, now: i64) -> Result<()> {
        self.insert(Kind::Session, id.as_str(), None, session, session.ends_at(), now).await
    }

    pub async fn session(&self, id: &TokenKey, now: i64) -> Result<Option<Session>> {
        Ok(self.session_versioned(id, now).await?.map(|(s, _)| s))
    }

    /// The session and its version, for `update_session`.
    pub async fn session_versioned(&self, id: &TokenKey, now: i64) -> Result<Option<(Session, i64)>> {
        self.get(Kind::Session, id.as_str(), now).await
    }

    /// Replaces the session if it is still at `version`.
    pub async fn update_session(&self, id: &TokenKey, session: &Session, version: i64, now: i64) -> Result<bool> {
        let data = encode(Kind::Session, session)?;
        self.backend.update(Kind::Session, id.as_str(), version, &data, session.ends_at(), now).await
    }

    pub async fn delete_session(&self, id: &TokenKey) -> Result<bool> {
        self.backend.delete(Kind::Session, id.as_str()).await
    }

    pub async fn keys(&self, now: i64) -> Result<Option<(KeySet, i64)>> {
        self.get(Kind::Keys, KEYS_ID, now).await
    }

    /// Stores the first key set; false if another replica got there first.
    pub async fn create_keys(&self, keys: &KeySet, now: i64) -> Result<bool> {
        match self.insert(Kind::Keys, KEYS_ID, None, keys, i64::MAX, now).await {
            Ok(()) => Ok(true),
            Err(StorageError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces the key set if it is still at `version`: only one replica rotates.
    pub async fn rotate_keys(&self, keys: &KeySet, version: i64, now: i64) -> Result<bool> {
        let data = encode(Kind::Keys, keys)?;
        self.backend.update(Kind::Keys, KEYS_ID, version, &data, i64::MAX, now).await
    }

    /// Records a grant (one code redemption) until `expires_at`.
    /// Records a live grant, filed under the SSO session it came from (if any).
    pub async fn create_grant(&self, id: &str, session: Option<&TokenKey>, expires_at: i64, now: i64) -> Result<()> {
        let family = session.map(TokenKey::as_str);
        self.insert(Kind::Grant, id, family, &serde_json::Value::Null, expires_at, now).await
    }

    /// Revokes every live grant of an SSO session (logout); returns how many.
    pub async fn revoke_session_grants(&self, session: &TokenKey, now: i64) -> Result<usize> {
        let grants = self.backend.list_family(Kind::Grant, session.as_str(), now).await?;
        for grant in &grants {
            self.revoke_grant(grant).await?;
        }
        Ok(grants.len())
    }

    /// Whether the grant is still live (its tokens are honoured): stored, or never stored and
    /// not revoked.
    pub async fn grant_live(&self, id: &str, now: i64) -> Result<bool> {
        if id.starts_with(UNSTORED_GRANT) {
            return Ok(self.backend.get(Kind::RevokedGrant, id, now).await?.is_none());
        }
        Ok(self.backend.get(Kind::Grant, id, now).await?.is_some())
    }

    /// Revokes a grant and every refresh token issued under it.
    pub async fn revoke_grant(&self, id: &str) -> Result<()> {
        self.backend.delete(Kind::Grant, id).await?;
        self.backend.delete_family(Kind::RefreshToken, id).await?;
        Ok(())
    }

    /// Revokes the grant of an access token that expires at `token_expires_at`: a stored grant
    /// as [`Self::revoke_grant`] does, one never stored by storing its revocation until then.
    pub async fn revoke_token_grant(&self, id: &str, token_expires_at: i64, now: i64) -> Result<()> {
        if !id.starts_with(UNSTORED_GRANT) {
            return self.revoke_grant(id).await;
        }
        let record = Record { data: "null".into(), family: None, version: 1, expires_at: token_expires_at };
        match self.backend.insert(Kind::RevokedGrant, id, &record, now).await {
            Ok(()) | Err(StorageError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stores a new device request, in the family of its user code's key.
    pub async fn create_device_request(&self, user_code: &TokenKey, req: &DeviceRequest, now: i64) -> Result<()> {
        self.insert(Kind::DeviceRequest, req.key.as_str(), Some(user_code.as_str()), req, req.kept_until(), now).await
    }

    /// The device request of a device code's key, and its version.
    pub async fn device_request(&self, key: &TokenKey, now: i64) -> Result<Option<(DeviceRequest, i64)>> {
        self.get(Kind::DeviceRequest, key.as_str(), now).await
    }

    /// The device request a user code's key names (at most one is live: `/device/code` draws
    /// again on a collision).
    pub async fn device_request_by_user_code(
        &self,
        user_code: &TokenKey,
        now: i64,
    ) -> Result<Option<(DeviceRequest, i64)>> {
        let ids = self.backend.list_family(Kind::DeviceRequest, user_code.as_str(), now).await?;
        match ids.first() {
            Some(id) => self.get(Kind::DeviceRequest, id, now).await,
            None => Ok(None),
        }
    }

    /// Saves `req` if nobody changed it since `version` was read.
    pub async fn update_device_request(&self, req: &DeviceRequest, version: i64, now: i64) -> Result<bool> {
        let data = encode(Kind::DeviceRequest, req)?;
        self.backend.update(Kind::DeviceRequest, req.key.as_str(), version, &data, req.kept_until(), now).await
    }

    pub async fn collect_garbage(&self, now: i64) -> Result<u64> {
        self.backend.collect_garbage(now).await
    }

    pub async fn ping(&self) -> Result<()> {
        self.backend.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device request is found by its device code and by its user code, updated with
    /// compare-and-swap, and garbage once `DEVICE_EXPIRED_KEPT` past its expiry.
    #[tokio::test]
    async fn device_requests_by_either_code_until_collected() {
        let store = Store::new(Arc::new(crate::storage::MemoryBackend::new()));
        let (key, user) = (TokenKey::of("device-code"), TokenKey::of("BCDFGHJK"));
        let mut request = DeviceRequest {
            key: key.clone(),
            client_id: "tv".into(),
            scopes: vec!["openid".into()],
            code_challenge: None,
            code_challenge_method: None,
            status: DeviceStatus::Pending,
            last_poll: None,
            interval: 5,
            created_at: 100,
            expires_at: 400,
        };
        store.create_device_request(&user, &request, 100).await.unwrap();
        let (by_user, version) = store.device_request_by_user_code(&user, 200).await.unwrap().unwrap();
        assert_eq!((&by_user, version), (&request, 1));
        request.status = DeviceStatus::Denied;
        assert!(store.update_device_request(&request, 1, 200).await.unwrap());
        assert!(!store.update_device_request(&request, 1, 200).await.unwrap(), "a stale version loses");
        let (by_key, _) = store.device_request(&key, 500).await.unwrap().expect("kept past its expiry");
        assert_eq!(by_key.status, DeviceStatus::Denied);
        assert_eq!(store.collect_garbage(400 + DEVICE_EXPIRED_KEPT - 1).await.unwrap(), 0);
        assert_eq!(store.collect_garbage(400 + DEVICE_EXPIRED_KEPT).await.unwrap(), 1);
        assert!(store.device_request_by_user_code(&user, 100).await.unwrap().is_none());
    }
}
