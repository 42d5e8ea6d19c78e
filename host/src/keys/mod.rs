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
    decoding: Vec<(String, DecodingKey)>,
    jwks: String,
}

/// The broker's signing keys.
pub struct Keys {
    store: Store,
    alg: SigningAlgorithm,
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
        Self { store, alg, rotation, keep_for, loaded: RwLock::new(None) }
    }

    /// Loads the key set, creating it on first start and rotating it when due. Call at start-up
    /// and periodically; cheap when nothing changed.
    pub async fn refresh(&self, now: i64) -> Result<(), KeyError> {
        for _ in 0..5 {
            match self.store.keys(now).await? {
                None => {
                    let set = KeySet {
                        current: generate::key(self.alg)?,
                        previous: Vec::new(),
                        next_rotation: now + secs(self.rotation),
                    };
                    if self.store.create_keys(&set, now).await? {
                        tracing::info!(kid = %set.current.kid, alg = %self.alg, "generated the first signing key");
                        return self.install(set);
                    }
                    // Another replica created it first: read theirs.
                }
                // Due, or signing with another algorithm than `signing.algorithm` now says (the
                // config changed): rotate, keeping the old public key in the JWKS (audit F13).
                Some((set, version)) if now >= set.next_rotation || set.current.alg != self.alg.as_str() => {
                    let mut next = set.clone();
                    let retired = PublicKey {
                        kid: set.current.kid.clone(),
                        jwk: set.current.jwk.clone(),
                        expires_at: now + secs(self.keep_for),
                    };
                    next.previous.retain(|k| k.expires_at > now);
                    next.previous.insert(0, retired);
                    next.current = generate::key(self.alg)?;
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
        let jwks: Vec<Jwk> = std::iter::once(&set.current.jwk)
            .chain(set.previous.iter().map(|k| &k.jwk))
            .filter_map(|j| serde_json::from_value(j.clone()).ok())
            .collect();
        let decoding = jwks
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        let jwks = serde_json::to_string(&JwkSet { keys: jwks }).map_err(|e| unusable(e.to_string()))?;
        if let Ok(mut guard) = self.loaded.write() {
            *guard = Some(Loaded { set, signer, decoding, jwks });
        }
        Ok(())
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Result<String, KeyError> {
        let guard = self.loaded.read().map_err(|_| KeyError::NotLoaded)?;
        guard.as_ref().map(|l| l.jwks.clone()).ok_or(KeyError::NotLoaded)
    }

    /// The algorithm of the key tokens are signed with now (for discovery and `at_hash`): the
    /// configured one once the key set is loaded, since a different one is rotated away.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.loaded
            .read()
            .ok()
            .and_then(|g| g.as_ref().and_then(|l| l.set.current.alg.parse().ok()))
            .unwrap_or(self.alg)
    }

    /// Signs `claims` with the current key; `typ` is the JOSE header type (`JWT`, `at+jwt`).
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, KeyError> {
        let guard = self.loaded.read().map_err(|_| KeyError::NotLoaded)?;
        let loaded = guard.as_ref().ok_or(KeyError::NotLoaded)?;
        loaded.signer.sign(claims, typ)
    }

    /// Verifies a token this broker signed (any published key) and returns its claims.
    /// `audience`: the required `aud`, if any. Expiry is always checked.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str, audience: Option<&str>) -> Option<T> {
        self.check(token, issuer, audience, true)
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
