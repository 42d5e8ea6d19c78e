//! Signing keys: generated on first start, kept in storage (one document every replica
//! shares), rotated on a period by exactly one replica (compare-and-swap), and published in
//! the JWKS with earlier keys until the tokens they signed expire.

pub(crate) mod generate;
/// A fresh signing key for `alg` (what a rotation installs).
pub use generate::key as new_key;
mod signer;

use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::secs;
use crate::config::SigningAlgorithm;
use crate::storage::{KeySet, PublicKey, StorageError, Store};

/// Key failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot generate a {alg} key: {reason}")]
    Generate { alg: String, reason: String },
    #[error("stored signing key {kid} is unusable: {reason}")]
    Unusable { kid: String, reason: String },
    #[error("no signing key loaded yet")]
    NotLoaded,
    #[error("cannot sign: {0}")]
    Sign(String),
}

struct Loaded {
    set: KeySet,
    signer: signer::Signer,
    /// Signs access tokens when the set has an access key of its own.
    access: Option<signer::Signer>,
    decoding: Vec<(String, DecodingKey)>,
    /// The JWKS document, serialised once per key set (`/keys` hands out this buffer).
    jwks: bytes::Bytes,
    /// The current key's algorithm, parsed once.
    alg: SigningAlgorithm,
}

/// The broker's signing keys.
pub struct Keys {
    store: Store,
    alg: SigningAlgorithm,
    /// `signing.accessTokenAlgorithm` when it differs from `alg`: access tokens get a key of
    /// their own (e.g. ES256 beside RS256 ID tokens: one cheap signature instead of two RSA ones).
    access_alg: Option<SigningAlgorithm>,
    rotation: Duration,
    /// How long a retired key stays published: the longest a token it signed lives.
    keep_for: Duration,
    loaded: RwLock<Option<Loaded>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("alg", &self.alg).field("rotation", &self.rotation).finish_non_exhaustive()
    }
}

impl Keys {
    pub fn new(store: Store, alg: SigningAlgorithm, rotation: Duration, keep_for: Duration) -> Self {
        Self { store, alg, access_alg: None, rotation, keep_for, loaded: RwLock::new(None) }
    }

    /// Signs access tokens with a key of algorithm `alg` of their own (`None`, or the ID
    /// tokens' algorithm: the one key signs both). Takes effect at the next `refresh`, which
    /// rotates a stored set that does not match.
    pub fn with_access_algorithm(mut self, alg: Option<SigningAlgorithm>) -> Self {
        self.access_alg = alg.filter(|a| *a != self.alg);
        self
    }

    /// Whether a stored set signs as the config says (both keys' algorithms).
    fn matches(&self, set: &KeySet) -> bool {
        set.current.alg == self.alg.as_str()
            && set.access.as_ref().map(|k| k.alg.as_str()) == self.access_alg.map(SigningAlgorithm::as_str)
    }

    /// Loads the key set, creating it on first start and rotating it when due. Call at start-up
    /// and periodically; cheap when nothing changed.
    pub async fn refresh(&self, now: i64) -> Result<(), KeyError> {
        for _ in 0..5 {
            match self.store.keys(now).await? {
                None => {
                    let set = KeySet {
                        current: generate::key(self.alg)?,
                        access: self.access_alg.map(generate::key).transpose()?,
                        previous: Vec::new(),
                        next_rotation: now + secs(self.rotation),
                    };
                    if self.store.create_keys(&set, now).await? {
                        tracing::info!(kid = %set.current.kid, alg = %self.alg, "generated the first signing key");
                        return self.install(set);
                    }
                    // Another replica created it first: read theirs.
                }
                // Due, or signing with other algorithms than `signing` now says (the config
                // changed): rotate, keeping the old public keys in the JWKS (audit F13).
                Some((set, version)) if now >= set.next_rotation || !self.matches(&set) => {
                    let mut next = set.clone();
                    let retire = |k: &crate::storage::StoredKey| PublicKey {
                        kid: k.kid.clone(),
                        jwk: k.jwk.clone(),
                        expires_at: now + secs(self.keep_for),
                    };
                    next.previous.retain(|k| k.expires_at > now);
                    next.previous.splice(0..0, std::iter::once(&set.current).chain(&set.access).map(retire));
                    next.current = generate::key(self.alg)?;
                    next.access = self.access_alg.map(generate::key).transpose()?;
                    next.next_rotation = now + secs(self.rotation);
                    if self.store.rotate_keys(&next, version, now).await? {
                        tracing::info!(
                            kid = %next.current.kid,
                            retired = %set.current.kid,
                            alg = %self.alg,
                            "rotated the signing key"
                        );
                        return self.install(next);
                    }
                    // Another replica rotated first: read theirs.
                }
                Some((set, _)) => return self.install(set),
            }
        }
        Err(KeyError::Storage(StorageError::Unavailable("the key set kept changing while being read; retry".into())))
    }

    fn install(&self, set: KeySet) -> Result<(), KeyError> {
        if let Ok(guard) = self.loaded.read()
            && guard.as_ref().is_some_and(|l| l.set == set)
        {
            return Ok(());
        }
        let unusable = |reason: String| KeyError::Unusable { kid: set.current.kid.clone(), reason };
        let alg: Algorithm =
            set.current.alg.parse().map_err(|_| unusable(format!("unknown algorithm {}", set.current.alg)))?;
        let signer = signer::Signer::new(alg, &set.current.kid, &set.current.private_pem).map_err(unusable)?;
        let access = match &set.access {
            Some(key) => {
                let unusable = |reason: String| KeyError::Unusable { kid: key.kid.clone(), reason };
                let alg: Algorithm = key.alg.parse().map_err(|_| unusable(format!("unknown algorithm {}", key.alg)))?;
                Some(signer::Signer::new(alg, &key.kid, &key.private_pem).map_err(unusable)?)
            }
            None => None,
        };
        let jwks: Vec<Jwk> = std::iter::once(&set.current.jwk)
            .chain(set.access.iter().map(|k| &k.jwk))
            .chain(set.previous.iter().map(|k| &k.jwk))
            .filter_map(|j| serde_json::from_value(j.clone()).ok())
            .collect();
        let decoding = jwks
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        let jwks = serde_json::to_vec(&JwkSet { keys: jwks }).map_err(|e| unusable(e.to_string()))?.into();
        let current_alg: SigningAlgorithm =
            set.current.alg.parse().map_err(|_| unusable(format!("unknown algorithm {}", set.current.alg)))?;
        if let Ok(mut guard) = self.loaded.write() {
            *guard = Some(Loaded { set, signer, access, decoding, jwks, alg: current_alg });
        }
        Ok(())
    }

    /// The JWKS document as text.
    pub fn jwks(&self) -> Result<String, KeyError> {
        Ok(String::from_utf8_lossy(&self.jwks_document()?.0).into_owned())
    }

    /// The JWKS document's bytes, serialised when the key set was installed (a cheap clone), and
    /// when the set is next due to rotate (Unix seconds).
    pub fn jwks_document(&self) -> Result<(bytes::Bytes, i64), KeyError> {
        let guard = self.loaded.read().map_err(|_| KeyError::NotLoaded)?;
        guard.as_ref().map(|l| (l.jwks.clone(), l.set.next_rotation)).ok_or(KeyError::NotLoaded)
    }

    /// The algorithm of the key tokens are signed with now (for discovery and `at_hash`): the
    /// configured one once the key set is loaded, since a different one is rotated away.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.loaded.read().ok().and_then(|g| g.as_ref().map(|l| l.alg)).unwrap_or(self.alg)
    }

    /// Signs `claims` with the current key; `typ` is the JOSE header type (`JWT`, `at+jwt`).
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, KeyError> {
        let guard = self.loaded.read().map_err(|_| KeyError::NotLoaded)?;
        let loaded = guard.as_ref().ok_or(KeyError::NotLoaded)?;
        loaded.signer.sign(claims, typ)
    }

    /// Signs access-token `claims` (`typ` `at+jwt`): with the access key when
    /// `signing.accessTokenAlgorithm` gave them one, else with the current key.
    pub fn sign_access<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let guard = self.loaded.read().map_err(|_| KeyError::NotLoaded)?;
        let loaded = guard.as_ref().ok_or(KeyError::NotLoaded)?;
        loaded.access.as_ref().unwrap_or(&loaded.signer).sign(claims, "at+jwt")
    }

    /// Verifies a token this broker signed (any published key) and returns its claims.
    /// `audience`: the required `aud`, if any. Expiry is always checked.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str, audience: Option<&str>) -> Option<T> {
        self.check(token, issuer, audience, true)
    }

    /// Like `verify`, for a token Dex signed: no JOSE `typ` (Dex sets none, and we always set
    /// one), so only a token signed with a key `import-dex` brought over passes. Never one of
    /// ours: our ID tokens (`JWT`) stay unusable as bearer tokens, and an access token
    /// (`at+jwt`) or a logout token (`logout+jwt`) is never read as anything else.
    pub fn verify_dex_signed<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        if jsonwebtoken::decode_header(token).ok()?.typ.is_some() {
            return None;
        }
        self.check(token, issuer, None, true)
    }

    /// Like `verify` but accepts an expired token (logout's `id_token_hint`).
    pub fn verify_allow_expired<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        self.check(token, issuer, None, false)
    }

    fn check<T: DeserializeOwned>(&self, token: &str, issuer: &str, audience: Option<&str>, exp: bool) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid?;
        let guard = self.loaded.read().ok()?;
        let loaded = guard.as_ref()?;
        let (_, key) = loaded.decoding.iter().find(|(k, _)| *k == kid)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_exp = exp;
        if !exp {
            validation.required_spec_claims.remove("exp");
        }
        validation.set_issuer(&[issuer]);
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        jsonwebtoken::decode::<T>(token, key, &validation).ok().map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::MemoryBackend;

    const HOUR: Duration = Duration::from_secs(3600);

    fn alg_of(token: &str) -> String {
        format!("{:?}", jsonwebtoken::decode_header(token).unwrap().alg)
    }

    fn kids(keys: &Keys) -> Vec<String> {
        let jwks: serde_json::Value = serde_json::from_str(&keys.jwks().unwrap()).unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
    }

    #[tokio::test]
    async fn access_tokens_get_a_key_of_their_own_when_asked() {
        let store = Store::new(Arc::new(MemoryBackend::new()));
        let claims = serde_json::json!({"iss": "https://op", "sub": "u", "exp": 4_000_000_000u64});
        let keys = Keys::new(store.clone(), SigningAlgorithm::Rs256, HOUR, HOUR)
            .with_access_algorithm(Some(SigningAlgorithm::Es256));
        keys.refresh(0).await.unwrap();
        let (id, access) = (keys.sign(&claims, "JWT").unwrap(), keys.sign_access(&claims).unwrap());
        assert_eq!((alg_of(&id), alg_of(&access)), ("RS256".into(), "ES256".into()));
        assert_eq!(jsonwebtoken::decode_header(&access).unwrap().typ.as_deref(), Some("at+jwt"));
        assert_eq!(kids(&keys).len(), 2, "both public keys are published");
        let verified: serde_json::Value = keys.verify(&access, "https://op", None).unwrap();
        assert_eq!(verified["sub"], "u");
        assert_eq!(keys.algorithm(), SigningAlgorithm::Rs256, "ID tokens keep signing.algorithm");

        // The same algorithm twice is one key; a config without the access key rotates the set,
        // keeping both old public keys published (tokens they signed still verify).
        let plain = Keys::new(store.clone(), SigningAlgorithm::Rs256, HOUR, HOUR)
            .with_access_algorithm(Some(SigningAlgorithm::Rs256));
        plain.refresh(10).await.unwrap();
        assert_eq!(alg_of(&plain.sign_access(&claims).unwrap()), "RS256");
        assert_eq!(kids(&plain).len(), 3, "the new key, and the two retired ones");
        assert!(plain.verify::<serde_json::Value>(&access, "https://op", None).is_some());
        let (set, _) = store.keys(10).await.unwrap().unwrap();
        assert!(set.access.is_none());
    }

    /// Only a token without `typ` (Dex's) verifies as Dex-signed: none of the tokens we sign
    /// passes for one (a Dex-signed token passing: `e2e migrate::`).
    #[tokio::test]
    async fn none_of_our_tokens_verifies_as_dex_signed() {
        let keys = Keys::new(Store::new(Arc::new(MemoryBackend::new())), SigningAlgorithm::Es256, HOUR, HOUR);
        keys.refresh(0).await.unwrap();
        let claims = serde_json::json!({"iss": "https://op", "sub": "u", "exp": 4_000_000_000u64});
        let ours = [
            keys.sign(&claims, "JWT").unwrap(),
            keys.sign_access(&claims).unwrap(),
            keys.sign(&claims, "logout+jwt").unwrap(),
        ];
        for other in ours {
            assert!(keys.verify_dex_signed::<serde_json::Value>(&other, "https://op").is_none());
            assert!(keys.verify::<serde_json::Value>(&other, "https://op", None).is_some(), "valid all the same");
        }
    }
}
