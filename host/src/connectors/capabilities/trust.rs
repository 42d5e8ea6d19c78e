//! A connector's HTTP trust store: the built-in web roots plus the CAs its config block lists
//! in Dex's `rootCAs` — each a PEM certificate written inline, the path of a PEM file (read by
//! the host when the connector is loaded: guests have no filesystem), or base64-encoded PEM,
//! as Dex reads them. TLS verification itself is never turned off.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// Why `rootCAs` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("config.rootCAs must be a list of PEM certificates, file paths or base64-encoded PEM")]
    NotAList,
    #[error(
        "config.rootCAs[{index}]: {reason}; write a PEM certificate (-----BEGIN CERTIFICATE-----), the path of a \
         PEM file, or base64-encoded PEM"
    )]
    Entry { index: usize, reason: String },
    /// Dex's single `rootCA` (GitHub Enterprise's key): one PEM file path, or PEM or base64 text.
    #[error("config.rootCA: {reason}; write the path of a PEM file of the CA that issued the server's certificate")]
    Single { reason: String },
}

/// The trust entries a config block names: each `rootCAs` item, then Dex's single `rootCA`.
fn entries(config: &Value) -> impl Iterator<Item = &str> {
    let list = config.get("rootCAs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    list.iter().filter_map(Value::as_str).chain(config.get("rootCA").and_then(Value::as_str))
}

/// The DER certificates of one entry: inline PEM, a PEM file, or base64-encoded PEM.
fn certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem: Vec<u8> = if text.starts_with("-----BEGIN") {
        text.as_bytes().to_vec()
    } else if let Ok(bytes) = std::fs::read(text) {
        bytes
    } else if let Ok(decoded) = STANDARD.decode(text) {
        decoded
    } else {
        return Err("neither PEM, nor a readable file, nor base64".into());
    };
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.map(|der| der.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no CERTIFICATE block".into());
    }
    Ok(certs)
}

/// The `rootCAs` (and `rootCA`) entries that are files (what a reload watches and hashes).
pub fn root_ca_files(config: &Value) -> Vec<std::path::PathBuf> {
    entries(config)
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with("-----BEGIN") && std::path::Path::new(t).is_file())
        .map(std::path::PathBuf::from)
        .collect()
}

/// The certificates (DER) of `config.rootCAs` and Dex's single `config.rootCA`; none when
/// neither is there.
pub fn root_cas(config: &Value) -> Result<Vec<Vec<u8>>, TrustError> {
    let mut out = Vec::new();
    if let Some(list) = config.get("rootCAs").filter(|v| !v.is_null()) {
        let items = list.as_array().ok_or(TrustError::NotAList)?;
        for (index, item) in items.iter().enumerate() {
            let refused = |reason: String| TrustError::Entry { index, reason };
            let text = item.as_str().ok_or_else(|| refused("not a string".into()))?.trim();
            if !text.is_empty() {
                out.extend(certificates(text).map_err(refused)?);
            }
        }
    }
    match config.get("rootCA") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text.trim().is_empty() => {}
        Some(Value::String(text)) => {
            out.extend(certificates(text.trim()).map_err(|reason| TrustError::Single { reason })?)
        }
        Some(_) => return Err(TrustError::Single { reason: "not a string".into() }),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A self-signed test CA (P-256; its key was thrown away).
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIUMUJf50fDBhiJgQ+apZ8EU8pTW9owCgYIKoZIzj0EAwIw\nHTEbMBkGA1UEAwwScG9ydGN1bGxpcy10ZXN0LWNhMCAXDTI2MTIwMjE5MDg1MFoY\nDzIxMjYxMTA4MTkwODUwWjAdMRswGQYDVQQDDBJwb3J0Y3VsbGlzLXRlc3QtY2Ew\nWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQcIfvEHgbtAi7wA0sHaWjXDS6Mwrd1\nvkF3dDZacZHCEhEORqUHrB/lVwokXB9n3jLs/Lyyfih9GbxKFj/NYlByo1MwUTAd\nBgNVHQ4EFgQU0lRiiDmaJCLwTYwc34Jpm6i/HzUwHwYDVR0jBBgwFoAU0lRiiDma\nJCLwTYwc34Jpm6i/HzUwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF\nAiBGeoRq52mpVFgjuFmGaPpKB+c/i76+xvLSt254QuIbRAIhANjjDFdwJV//dvs2\nsRI9Qqnm5RiUAZOPOWo6P+nvmOme\n-----END CERTIFICATE-----\n";

    fn pem() -> String {
        CA.to_string()
    }

    #[test]
    fn inline_file_and_base64_entries() {
        let pem = pem();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, &pem).unwrap();
        let config = json!({"rootCAs": [pem, file.display().to_string(), STANDARD.encode(&pem), ""]});
        assert_eq!(root_cas(&config).unwrap().len(), 3);
        assert_eq!(root_ca_files(&config), std::slice::from_ref(&file));
        assert!(root_cas(&json!({"issuer": "x"})).unwrap().is_empty());
        // Dex's single rootCA (GitHub Enterprise), a file path.
        let single = json!({"rootCA": file.display().to_string()});
        assert_eq!(root_cas(&single).unwrap().len(), 1);
        assert_eq!(root_ca_files(&single), std::slice::from_ref(&file));
        let err = root_cas(&json!({"rootCA": "/no/such/ca.pem"})).unwrap_err();
        assert!(err.to_string().starts_with("config.rootCA: neither PEM"), "{err}");
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(root_cas(&json!({"rootCAs": "ca.pem"})), Err(TrustError::NotAList));
        let err = root_cas(&json!({"rootCAs": [pem(), "/no/such/ca.pem"]})).unwrap_err();
        assert!(err.to_string().starts_with("config.rootCAs[1]: neither PEM"), "{err}");
        let err = root_cas(&json!({"rootCAs": [STANDARD.encode("just text")]})).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    }
}
