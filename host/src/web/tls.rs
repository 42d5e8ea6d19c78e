//! `web.https`: TLS served directly with rustls (ring), Dex's `tlsCert`, `tlsKey`,
//! `tlsMinVersion`, `tlsMaxVersion`, and `tlsClientCA` (client certificates required and
//! verified against that CA). A renewed certificate and key on disk are picked up by new
//! handshakes without a restart ([`ReloadingCert`]).
//!
//! # Security
//!
//! TLS 1.2 and 1.3 only, rustls' default suites (all forward-secret AEAD). A new pair that does
//! not load — unreadable, not PEM, a key that does not match the certificate — is logged as an
//! error and the pair in use keeps serving, so a botched renewal never takes the listener down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use sha2::{Digest, Sha256};

use crate::config::WebConfig;

/// Why the TLS settings cannot be served: the config key, the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {}: {problem}", file.display())]
#[non_exhaustive]
pub struct TlsError {
    /// The config key, e.g. `web.tlsCert` or `grpc.tlsClientCA`.
    pub key: String,
    pub file: PathBuf,
    pub problem: String,
}

fn fail(key: &str, file: &Path, problem: impl Into<String>) -> TlsError {
    TlsError { key: key.to_string(), file: file.to_path_buf(), problem: problem.into() }
}

/// How often, at most, a handshake looks at the certificate files for a renewal.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The rustls server config for `web.https`, or `None` when `web.https` is not set. `web` is a
/// validated section (paths resolved, versions checked); the files are read now, and any error
/// names the key and the file.
pub fn server_config(web: &WebConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(_), Some(cert), Some(key)) = (&web.https, &web.tls_cert, &web.tls_key) else {
        return Ok(None);
    };
    let settings = Settings {
        section: "web",
        cert: Path::new(cert),
        key: Path::new(key),
        client_ca: web.tls_client_ca.as_deref().map(Path::new),
        min: web.tls_min_version.as_deref(),
        max: web.tls_max_version.as_deref(),
    };
    let mut config = settings.server_config()?;
    // The listener speaks HTTP/1.1 only (web::serve_with).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// One listener's TLS keys (`web.*` or `grpc.*`), validated: paths resolved, versions checked.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The config section the keys are in, for error messages (`web`, `grpc`).
    pub section: &'static str,
    pub cert: &'a Path,
    pub key: &'a Path,
    /// Require a client certificate issued by one of these CAs.
    pub client_ca: Option<&'a Path>,
    pub min: Option<&'a str>,
    pub max: Option<&'a str>,
}

impl Settings<'_> {
    /// The rustls config (no ALPN set); the files are read now, and any error names the key and file.
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let section = self.section;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = versions(self.min, self.max);
        let resolver = ReloadingCert::load_for(section, self.cert, self.key, provider.clone())?;
        let builder =
            ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions).map_err(|e| {
                fail(&format!("{section}.tlsMinVersion"), self.cert, format!("no usable TLS version ({e})"))
            })?;
        let builder = match self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let key = format!("{section}.tlsClientCA");
                let mut roots = RootCertStore::empty();
                for cert in read_certs(&key, ca)? {
                    roots.add(cert).map_err(|e| fail(&key, ca, format!("not a usable CA certificate ({e})")))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| fail(&key, ca, format!("cannot verify clients with it ({e})")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        Ok(builder.with_cert_resolver(Arc::new(resolver)))
    }
}

/// The protocol versions between `min` (default 1.2) and `max` (default 1.3), as validated.
fn versions(min: Option<&str>, max: Option<&str>) -> Vec<&'static SupportedProtocolVersion> {
    let all: [(&str, &'static SupportedProtocolVersion); 2] =
        [("1.2", &rustls::version::TLS12), ("1.3", &rustls::version::TLS13)];
    let (min, max) = (min.unwrap_or("1.2"), max.unwrap_or("1.3"));
    all.into_iter().filter(|(name, _)| *name >= min && *name <= max).map(|(_, v)| v).collect()
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| fail(key, path, format!("cannot read the file ({e})")))
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(key, path, &read(key, path)?)
}

fn parse_certs(key: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(key, path, format!("not a PEM file ({e})")))?;
    if certs.is_empty() {
        return Err(fail(key, path, "no certificate in the file; write PEM blocks \"-----BEGIN CERTIFICATE-----\""));
    }
    Ok(certs)
}

/// Parses a certificate chain and its key into what rustls serves; checks the key matches.
fn certified_key(
    section: &str,
    (cert_path, cert_pem): (&Path, &[u8]),
    (key_path, key_pem): (&Path, &[u8]),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let (cert_key, key_key) = (format!("{section}.tlsCert"), format!("{section}.tlsKey"));
    let certs = parse_certs(&cert_key, cert_path, cert_pem)?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| fail(&key_key, key_path, format!("not a PEM file ({e})")))?
        .ok_or_else(|| {
            fail(
                &key_key,
                key_path,
                "no private key in the file; write a PEM \"PRIVATE KEY\" block (PKCS#8, RSA or EC)",
            )
        })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| fail(&key_key, key_path, format!("not a usable private key ({e})")))?;
    let pair = CertifiedKey::new(certs, key);
    pair.keys_match().map_err(|e| {
        fail(&key_key, key_path, format!("does not match the certificate in {} ({e})", cert_path.display()))
    })?;
    Ok(pair)
}

/// What identifies the files' current version cheaply: modification time and size of each.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).map(|m| (m.modified().ok(), m.len())).unwrap_or((None, 0));
    [one(cert), one(key)]
}

/// The certificate rustls serves, re-read when the files change on disk.
///
/// The check is lazy: a handshake at most every [`RELOAD_CHECK_INTERVAL`] stats both files;
/// when a modification time or size moved, both are read and hashed, and a new content is
/// parsed and, if it loads and matches, served from the next handshake on. Polling rather than
/// a `notify` watcher, because renewals arrive in ways a watch on the file misses or mis-times:
/// Kubernetes secret volumes swap a symlinked directory, certbot replaces `live/` symlinks,
/// editors rename over the file (an inotify watch on the old inode goes silent). A `stat` of
/// the path follows all of those, costs two syscalls a second only while clients connect, and
/// needs no background task. The hash keeps a touched-but-equal file from being reparsed, and
/// a broken new pair is reported once, not on every check.
#[derive(Debug)]
pub struct ReloadingCert {
    /// The config section the files are named in (`web`, `grpc`), for messages.
    section: &'static str,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    /// sha256 of the cert and key files' bytes that `current` was made from.
    digest: [u8; 32],
    stamp: Stamp,
    checked: Instant,
    /// The digest of a new pair that failed to load (logged once).
    failed: Option<[u8; 32]>,
}

impl ReloadingCert {
    /// Reads `web.https`'s pair now; an error names the key and file.
    pub fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        Self::load_for("web", cert, key, provider)
    }

    /// Reads the pair named in `section` now.
    pub fn load_for(
        section: &'static str,
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let stamp = stamp(cert, key);
        let (cert_pem, key_pem) =
            (read(&format!("{section}.tlsCert"), cert)?, read(&format!("{section}.tlsKey"), key)?);
        let pair = certified_key(section, (cert, &cert_pem), (key, &key_pem), &provider)?;
        let state = State {
            current: Arc::new(pair),
            digest: digest(&cert_pem, &key_pem),
            stamp,
            checked: Instant::now(),
            failed: None,
        };
        Ok(Self { section, cert: cert.to_path_buf(), key: key.to_path_buf(), provider, state: Mutex::new(state) })
    }

    /// The pair to serve now, after looking for a renewal if the last look is old enough.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked = Instant::now();
            self.refresh(&mut state);
        }
        state.current.clone()
    }

    fn refresh(&self, state: &mut State) {
        let now = stamp(&self.cert, &self.key);
        if now == state.stamp {
            return;
        }
        let (cert, key, section) = (&self.cert, &self.key, self.section);
        let (cert_key, key_key) = (format!("{section}.tlsCert"), format!("{section}.tlsKey"));
        let loaded = read(&cert_key, cert).and_then(|c| Ok((c, read(&key_key, key)?))).and_then(|(c, k)| {
            let d = digest(&c, &k);
            if d == state.digest || state.failed == Some(d) {
                return Ok((d, None));
            }
            match certified_key(section, (cert, &c), (key, &k), &self.provider) {
                Ok(pair) => Ok((d, Some(pair))),
                Err(e) => {
                    state.failed = Some(d);
                    Err(e)
                }
            }
        });
        match loaded {
            Ok((_, None)) => state.stamp = now,
            Ok((d, Some(pair))) => {
                tracing::info!(cert = %cert.display(), "{section}: serving the renewed certificate");
                *state = State { current: Arc::new(pair), digest: d, stamp: now, checked: state.checked, failed: None };
            }
            Err(e) => {
                // Retried when the files change again; the working pair keeps serving.
                state.stamp = now;
                tracing::error!("{section}: the new certificate does not load, the previous one keeps serving: {e}");
            }
        }
    }
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
