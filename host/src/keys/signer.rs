//! JWS signing with `aws-lc-rs` (AWS-LC, BoringSSL's descendant, with ring's API): the private
//! key is parsed and checked once when a key set is installed (not on every signature), and its
//! RSA is constant-time — the RustCrypto `rsa` crate's signing is not (RUSTSEC-2023-0071), which
//! matters for a server that signs on request. It replaced `ring` here for speed: AWS-LC's
//! RSA-2048 signature takes about 0.4× ring's (assembly Montgomery multiplication with AVX2 /
//! ADX; measured in docs/performance.md). Verification stays with `jsonwebtoken`: it handles
//! only public keys.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Serialize;

use super::KeyError;

enum Pair {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// The current signing key, ready to sign.
pub(super) struct Signer {
    pair: Pair,
    /// `{"alg":…,"kid":…,"typ":` — the header up to its `typ` value.
    header_prefix: String,
    rng: SystemRandom,
}

impl Signer {
    /// Parses the PKCS#8 PEM a stored key holds.
    pub(super) fn new(alg: Algorithm, kid: &str, pem: &str) -> Result<Self, String> {
        let der = pem_to_der(pem)?;
        let rng = SystemRandom::new();
        let (pair, name) = match alg {
            Algorithm::RS256 => (Pair::Rs256(RsaKeyPair::from_pkcs8(&der).map_err(|e| e.to_string())?), "RS256"),
            Algorithm::ES256 => (
                Pair::Es256(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map_err(|e| e.to_string())?,
                ),
                "ES256",
            ),
            // ed25519-dalek writes PKCS#8 v1 (no public key), which is read "unchecked".
            Algorithm::EdDSA => {
                (Pair::EdDsa(Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| e.to_string())?), "EdDSA")
            }
            other => return Err(format!("unsupported algorithm {other:?}")),
        };
        let header_prefix = format!(r#"{{"alg":"{name}","kid":{},"typ":"#, serde_json::Value::from(kid));
        Ok(Self { pair, header_prefix, rng })
    }

    /// A compact JWS of `claims` with header `{alg, kid, typ}`.
    pub(super) fn sign<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, KeyError> {
        let header = format!("{}{}}}", self.header_prefix, serde_json::Value::from(typ));
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Sign(e.to_string()))?;
        let mut jws = String::with_capacity(header.len() * 2 + payload.len() * 4 / 3 + 360);
        URL_SAFE_NO_PAD.encode_string(header.as_bytes(), &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jws);
        let signature = match &self.pair {
            Pair::Rs256(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, jws.as_bytes(), &mut sig)
                    .map_err(|_| KeyError::Sign("RSA signing failed".into()))?;
                sig
            }
            Pair::Es256(pair) => pair
                .sign(&self.rng, jws.as_bytes())
                .map_err(|_| KeyError::Sign("ECDSA signing failed".into()))?
                .as_ref()
                .to_vec(),
            Pair::EdDsa(pair) => pair.sign(jws.as_bytes()).as_ref().to_vec(),
        };
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jws);
        Ok(jws)
    }
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| format!("bad PEM: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each algorithm's signature verifies with jsonwebtoken against the key's own JWK.
    #[test]
    fn signatures_verify_with_the_published_jwk() {
        for alg in ["RS256", "ES256", "EdDSA"] {
            let key = super::super::generate::key(alg.parse().unwrap()).unwrap();
            let parsed: Algorithm = alg.parse().unwrap();
            let signer = Signer::new(parsed, &key.kid, &key.private_pem).unwrap();
            let token = signer.sign(&serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}), "JWT").unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(parsed);
            validation.validate_aud = false;
            let data = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
            assert_eq!(data.claims["sub"], "x", "{alg}");
            // A flipped payload byte breaks the signature.
            let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"y","exp":4000000000}"#);
            assert!(jsonwebtoken::decode::<serde_json::Value>(&parts.join("."), &decoding, &validation).is_err());
        }
    }
}
