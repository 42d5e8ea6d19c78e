//! Generating a signing key pair and its public JWK, per algorithm.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::json;

use super::KeyError;
use crate::config::SigningAlgorithm;
use crate::storage::StoredKey;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn new_kid() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A fresh key for `alg` (RS256, ES256 or EdDSA).
pub fn key(alg: SigningAlgorithm) -> Result<StoredKey, KeyError> {
    let fail = |reason: String| KeyError::Generate { alg: alg.as_str().into(), reason };
    let kid = new_kid();
    let (private_pem, jwk) = match alg {
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| fail(e.to_string()))?;
            let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| fail(e.to_string()))?;
            let jwk = json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()),
            });
            (pem.to_string(), jwk)
        }
        SigningAlgorithm::Es256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            use p256::pkcs8::EncodePrivateKey;
            let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let pem = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).map_err(|e| fail(e.to_string()))?;
            let point = key.public_key().to_encoded_point(false);
            let (x, y) = (point.x().ok_or_else(|| fail("no x".into()))?, point.y().ok_or_else(|| fail("no y".into()))?);
            let jwk = json!({
                "kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
                "x": b64(x), "y": b64(y),
            });
            (pem.to_string(), jwk)
        }
        SigningAlgorithm::EdDsa => {
            use ed25519_dalek::pkcs8::EncodePrivateKey;
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| fail(e.to_string()))?;
            let jwk = json!({
                "kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": kid, "crv": "Ed25519",
                "x": b64(key.verifying_key().as_bytes()),
            });
            (pem.to_string(), jwk)
        }
    };
    Ok(StoredKey { kid, alg: alg.as_str().into(), private_pem, jwk })
}
