//! The `signing` import (contract 0.3.0): signs JWTs with private keys the operator gave the
//! host, so a connector authenticates to an upstream as a service (Google's JWT-bearer flow)
//! without ever holding the key.
//!
//! A key is named by the connector config key whose value is the key file's path. Only the
//! config keys the operator granted are read ([`granted`]: the entry's `signingKeys`, or for a
//! shipped type the key its documentation names), when the connector is loaded: a Google
//! service-account JSON file (its `private_key`) or a PEM private key (PKCS#8, or PKCS#1 RSA).
//! The guest learns the key's public fields ([`SigningKey::attributes`]) and gets signatures;
//! any other name is denied with the line that would grant it.
//!
//! Signing uses `ring` (constant-time RSA), as the broker's own token signing does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use serde_json::Value;
use wasmtime::component::{HasData, Linker};

use super::budget::CallBudget;
use crate::connectors::bindings::HostError;
use crate::connectors::bindings::current::signing::{self as wit, Host, KeyInfo};

/// The config key each shipped type's documentation names as a key file, granted without a
/// `signingKeys` line (as `implied.rs` grants documented hosts).
const DOCUMENTED: &[(&str, &str)] = &[("google", "serviceAccountFilePath"), ("saml", "authnRequestSigningKey")];

/// Largest key file read (a service-account JSON is about 2.3 KiB).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Largest claims set a connector may have signed.
const MAX_CLAIMS_BYTES: usize = 16 * 1024;

/// The service-account fields a connector may see: every one but `private_key`.
const PUBLIC_FIELDS: &[&str] =
    &["type", "client_email", "client_id", "token_uri", "project_id", "auth_uri", "universe_domain"];

/// The config keys whose files are signing keys of a connector: `explicit` (the entry's
/// `signingKeys`) when written, else the documented key of its shipped `kind`, if any.
pub fn granted(kind: Option<&str>, explicit: Option<&[String]>) -> Vec<String> {
    match explicit {
        Some(list) => list.to_vec(),
        None => DOCUMENTED.iter().filter(|(k, _)| Some(*k) == kind).map(|(_, key)| key.to_string()).collect(),
    }
}

enum Pair {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

/// One private key, parsed once when the connector is loaded. Its `Debug` shows no key.
pub struct SigningKey {
    pair: Pair,
    key_id: Option<String>,
    attributes: Vec<(String, String)>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("algorithm", &self.algorithm()).field("key_id", &self.key_id).finish()
    }
}

impl SigningKey {
    /// Reads a service-account JSON file or a PEM private key; the error says what is wrong
    /// with the file, never its content.
    pub fn read(path: &Path) -> Result<Self, String> {
        let len = std::fs::metadata(path).map_err(|e| format!("cannot read {} ({e})", path.display()))?.len();
        if len > MAX_KEY_FILE_BYTES {
            return Err(format!("{} is {len} bytes, more than a key file has ({MAX_KEY_FILE_BYTES})", path.display()));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {} ({e})", path.display()))?;
        Self::parse(&bytes).map_err(|reason| format!("{}: {reason}", path.display()))
    }

    /// Parses a service-account JSON document (`{"type": "service_account", "private_key": ...}`)
    /// or a PEM private key.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        if text.trim_start().starts_with('{') {
            let doc: serde_json::Map<String, Value> =
                serde_json::from_str(text).map_err(|e| format!("not a service-account JSON key file ({e})"))?;
            let pem = doc
                .get("private_key")
                .and_then(Value::as_str)
                .ok_or("the JSON has no private_key (download a JSON key of the service account)")?;
            let mut key = Self::from_pem(pem).map_err(|e| format!("private_key: {e}"))?;
            key.key_id = doc.get("private_key_id").and_then(Value::as_str).map(str::to_string);
            key.attributes = PUBLIC_FIELDS
                .iter()
                .filter_map(|f| doc.get(*f).and_then(Value::as_str).map(|v| (f.to_string(), v.to_string())))
                .collect();
            return Ok(key);
        }
        Self::from_pem(text)
    }

    fn from_pem(pem: &str) -> Result<Self, String> {
        let der = rustls_pemfile::private_key(&mut pem.as_bytes())
            .map_err(|e| format!("unreadable PEM ({e})"))?
            .ok_or("holds no PEM private key (-----BEGIN PRIVATE KEY-----)")?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(der) => match RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()) {
                Ok(pair) => Pair::Rs256(pair),
                Err(rsa) => EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    der.secret_pkcs8_der(),
                    &SystemRandom::new(),
                )
                .map(Pair::Es256)
                .map_err(|_| format!("not an RSA (2048 bits or more) or P-256 private key ({rsa})"))?,
            },
            PrivateKeyDer::Pkcs1(der) => Pair::Rs256(
                RsaKeyPair::from_der(der.secret_pkcs1_der()).map_err(|e| format!("unusable RSA private key ({e})"))?,
            ),
            _ => return Err("an EC key in SEC1 form; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)".into()),
        };
        Ok(Self { pair, key_id: None, attributes: Vec::new() })
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self.pair {
            Pair::Rs256(_) => "RS256",
            Pair::Es256(_) => "ES256",
        }
    }

    /// A compact JWS of `claims` (a JSON object) with header `{alg, kid?, typ: JWT}`.
    pub fn sign_jwt(&self, claims: &str) -> Result<String, HostError> {
        if claims.len() > MAX_CLAIMS_BYTES {
            return Err(HostError::TooLarge(format!(
                "the claims are {} bytes, more than the {MAX_CLAIMS_BYTES} a signed JWT may carry",
                claims.len()
            )));
        }
        let claims: serde_json::Map<String, Value> = serde_json::from_str(claims)
            .map_err(|e| HostError::Invalid(format!("the claims must be a JSON object ({e})")))?;
        let mut header = serde_json::Map::new();
        header.insert("alg".into(), self.algorithm().into());
        if let Some(kid) = &self.key_id {
            header.insert("kid".into(), kid.clone().into());
        }
        header.insert("typ".into(), "JWT".into());
        let mut jws = URL_SAFE_NO_PAD.encode(Value::Object(header).to_string());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(Value::Object(claims).to_string(), &mut jws);
        let signature = self.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jws);
        Ok(jws)
    }

    /// The signature of `message`: RSASSA-PKCS1-v1_5 SHA-256, or ECDSA P-256 SHA-256 (r‖s).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, HostError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rs256(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| HostError::Failed("RSA signing failed".into()))?;
                Ok(sig)
            }
            Pair::Es256(pair) => pair
                .sign(&rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| HostError::Failed("ECDSA signing failed".into())),
        }
    }

    fn info(&self) -> KeyInfo {
        KeyInfo { algorithm: self.algorithm().into(), key_id: self.key_id.clone(), attributes: self.attributes.clone() }
    }
}

/// Why a connector's signing keys could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    #[error(
        "config.{key}: {reason}; give the path of a service account's JSON key file or of a PEM private key \
         (RSA or P-256)"
    )]
    Key { key: String, reason: String },
    #[error("config.{key} must be the path of a key file (a string)")]
    NotAPath { key: String },
}

/// The signing keys one connector was granted, by config key. Built when it is loaded.
#[derive(Debug, Default)]
pub struct SigningCtx {
    keys: BTreeMap<String, SigningKey>,
}

impl SigningCtx {
    /// Reads the file of each `granted` config key present in `config` (relative paths were
    /// resolved when the config was validated).
    pub fn load(config: &Value, granted: &[String]) -> Result<Self, SigningError> {
        let mut keys = BTreeMap::new();
        for key in granted {
            match config.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(path)) => {
                    let loaded = SigningKey::read(Path::new(path))
                        .map_err(|reason| SigningError::Key { key: key.clone(), reason })?;
                    keys.insert(key.clone(), loaded);
                }
                Some(_) => return Err(SigningError::NotAPath { key: key.clone() }),
            }
        }
        Ok(Self { keys })
    }

    /// The file paths `load` reads for `config` (what a reload watches and hashes).
    pub fn files(config: &Value, granted: &[String]) -> Vec<std::path::PathBuf> {
        granted.iter().filter_map(|k| config.get(k).and_then(Value::as_str)).map(std::path::PathBuf::from).collect()
    }
}

/// The `signing` import's view of a call: the connector's keys and the call's budget.
pub(crate) struct SigningCtxView<'a> {
    pub(crate) ctx: &'a SigningCtx,
    pub(crate) budget: &'a mut CallBudget,
}

/// A store whose data can lend a [`SigningCtxView`].
pub(crate) trait SigningView: Send {
    fn signing(&mut self) -> SigningCtxView<'_>;
}

struct HasSigning;

impl HasData for HasSigning {
    type Data<'a> = SigningCtxView<'a>;
}

/// Links the `signing` import (0.3.0 and later).
pub(crate) fn add_to_linker<T: SigningView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSigning>(linker, T::signing)
}

impl SigningCtxView<'_> {
    fn key(&mut self, name: &str) -> Result<&SigningKey, HostError> {
        self.budget.charge("signing")?;
        match self.ctx.keys.get(name) {
            Some(key) => Ok(key),
            None => Err(self.budget.refuse(format!(
                "signing with the key file of config.{name} is not allowed; to allow it add \"signingKeys: [{name}]\" \
                 to connector {:?} and set config.{name} to the key file's path",
                self.budget.connector()
            ))),
        }
    }
}

impl Host for SigningCtxView<'_> {
    async fn describe_key(&mut self, key: String) -> wasmtime::Result<Result<KeyInfo, HostError>> {
        Ok(self.key(&key).map(SigningKey::info))
    }

    async fn sign_jwt(&mut self, key: String, claims: String) -> wasmtime::Result<Result<String, HostError>> {
        Ok(self.key(&key).and_then(|k| k.sign_jwt(&claims)))
    }

    async fn sign_xml(
        &mut self,
        key: String,
        document: String,
        id: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        Ok(self.key(&key).and_then(|k| {
            let algorithm = match k.pair {
                Pair::Rs256(_) => super::xmldsig::RSA_SHA256,
                Pair::Es256(_) => super::xmldsig::ECDSA_SHA256,
            };
            super::xmldsig::sign_enveloped(&document, &id, algorithm, &|m| k.sign(m))
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::config::SigningAlgorithm;
    use crate::connectors::bindings::current::jose::Expectations;
    use crate::connectors::capabilities::jose;
    use crate::connectors::limits::Limits;

    fn service_account(pem: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "acme",
            "private_key_id": "k-1",
            "private_key": pem,
            "client_email": "groups@acme.iam.gserviceaccount.com",
            "client_id": "1234",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    fn verify(jwt: &str, jwk: &Value, alg: &str) -> Value {
        let mut jwk = jwk.clone();
        jwk["kid"] = json!("k-1");
        let jwks = json!({"keys": [jwk]}).to_string();
        let expect = Expectations { algorithms: vec![alg.into()], issuer: None, audience: None, leeway_seconds: 0 };
        jose::verify(jwt, &jwks, &expect, &mut || Ok(())).unwrap()
    }

    #[test]
    fn a_service_account_key_signs_and_shows_only_public_fields() {
        let stored = crate::keys::generate::key(SigningAlgorithm::Rs256).unwrap();
        let key = SigningKey::parse(service_account(&stored.private_pem).as_bytes()).unwrap();
        let info = key.info();
        assert_eq!((info.algorithm.as_str(), info.key_id.as_deref()), ("RS256", Some("k-1")));
        assert!(info.attributes.contains(&("client_email".into(), "groups@acme.iam.gserviceaccount.com".into())));
        assert!(info.attributes.iter().all(|(k, v)| k != "private_key" && !v.contains("PRIVATE KEY")));
        assert!(!format!("{key:?}").contains("PRIVATE"));
        let jwt = key.sign_jwt(r#"{"iss":"me","exp":4102444800}"#).unwrap();
        assert_eq!(verify(&jwt, &stored.jwk, "RS256")["iss"], "me");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "RS256", "kid": "k-1", "typ": "JWT"}));
    }

    #[test]
    fn a_pem_p256_key_signs_es256() {
        let stored = crate::keys::generate::key(SigningAlgorithm::Es256).unwrap();
        let mut key = SigningKey::parse(stored.private_pem.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), "ES256");
        key.key_id = Some("k-1".into());
        let jwt = key.sign_jwt(r#"{"sub":"x","exp":4102444800}"#).unwrap();
        assert_eq!(verify(&jwt, &stored.jwk, "ES256")["sub"], "x");
        assert!(matches!(key.sign_jwt("[1]"), Err(HostError::Invalid(_))));
        assert!(matches!(
            key.sign_jwt(&format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_CLAIMS_BYTES))),
            Err(HostError::TooLarge(_))
        ));
    }

    #[test]
    fn bad_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sa.json");
        for (content, reason) in [
            ("{\"type\": \"service_account\"}", "has no private_key"),
            ("{not json", "not a service-account JSON key file"),
            ("just text", "holds no PEM private key"),
            (
                "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}",
                "private_key: not an RSA",
            ),
        ] {
            std::fs::write(&file, content).unwrap();
            let config = json!({"serviceAccountFilePath": file.display().to_string()});
            let err = SigningCtx::load(&config, &["serviceAccountFilePath".into()]).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("config.serviceAccountFilePath: "), "{text}");
            assert!(text.contains(reason), "{content}: {text}");
        }
        let err = SigningKey::read(&dir.path().join("none.json")).unwrap_err();
        assert!(err.starts_with("cannot read "), "{err}");
        let config = json!({"serviceAccountFilePath": 3});
        assert!(matches!(
            SigningCtx::load(&config, &["serviceAccountFilePath".into()]),
            Err(SigningError::NotAPath { .. })
        ));
    }

    #[test]
    fn only_granted_keys_are_read_and_others_are_denied() {
        assert_eq!(granted(Some("google"), None), ["serviceAccountFilePath"]);
        assert_eq!(granted(Some("saml"), None), ["authnRequestSigningKey"]);
        assert!(granted(Some("github"), None).is_empty());
        assert!(granted(Some("google"), Some(&[])).is_empty());
        assert_eq!(granted(None, Some(&["keyFile".to_string()])), ["keyFile"]);
        // A config key that is not granted is never read, even if it names a file.
        let config = json!({"keyFile": "/etc/shadow"});
        let ctx = SigningCtx::load(&config, &[]).unwrap();
        let probe = Arc::new(crate::connectors::capabilities::budget::CallProbe::default());
        let mut budget = CallBudget::new("c".into(), &Limits::default(), probe.clone());
        let mut view = SigningCtxView { ctx: &ctx, budget: &mut budget };
        let Err(HostError::Denied(text)) = view.key("keyFile") else { panic!("not denied") };
        assert!(text.contains("add \"signingKeys: [keyFile]\" to connector \"c\""), "{text}");
        assert!(probe.denial().is_some());
    }
}
