//! Host capabilities a connector may be granted — one module each, so "where is X enforced?"
//! has one answer: `allowlist` (what may be reached), `http` (with `trust`, its root CAs),
//! `ldap`, `jose`, `signing` (operator-held keys), `xmldsig` (XML signatures), `log`, and
//! `stderr` (the guest's output and the otherwise empty WASI context), and `wasi_http`
//! (wasi:http, handed to `http`'s sender). `budget` is the call's deadline and host-call count,
//! which `http`, `ldap`, `jose`, `signing` and `xmldsig` charge.
//!
//! Each capability is implemented on a small view borrowed from the store's data (`HttpCtxView`,
//! `LdapCtxView`, ...) and linked by its own `add_to_linker`, the way wasmtime-wasi-http does;
//! `state.rs` only holds the contexts and lends the views.

pub mod allowlist;
pub(crate) mod budget;
pub(crate) mod http;
pub(crate) mod jose;
pub(crate) mod ldap;
pub(crate) mod log;
pub mod signing;
pub(crate) mod stderr;
pub mod trust;
pub(crate) mod wasi_http;
pub mod xmldsig;

use std::sync::Arc;

use allowlist::Allowlist;
use http::HttpCtx;
use ldap::LdapCtx;
use signing::SigningCtx;

use super::limits::Limits;

/// What the operator granted one connector: its limits and the per-capability contexts built
/// to enforce its `allowedHosts`. Built once per connector, shared by all its calls.
#[derive(Debug)]
pub struct Grants {
    pub(crate) limits: Limits,
    pub(crate) http: HttpCtx,
    pub(crate) ldap: LdapCtx,
    /// The private keys the operator granted it (`signingKeys`); none by default.
    pub(crate) signing: SigningCtx,
}

/// Why a connector's grants could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantsError {
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error(transparent)]
    RootCas(#[from] trust::TrustError),
    #[error(transparent)]
    Signing(#[from] signing::SigningError),
    #[error("config.clientCert/clientKey: {0}")]
    ClientCert(String),
}

impl Grants {
    pub fn new(allowlist: Allowlist, limits: Limits) -> Result<Self, GrantsError> {
        Self::with_root_cas(allowlist, limits, &[])
    }

    /// As `new`, with HTTPS also trusting `root_cas` (DER certificates; `trust::root_cas`).
    pub fn with_root_cas(allowlist: Allowlist, limits: Limits, root_cas: &[Vec<u8>]) -> Result<Self, GrantsError> {
        let allowlist = Arc::new(allowlist);
        let http = HttpCtx::with_root_cas(allowlist.clone(), limits.max_response_bytes, root_cas)
            .map_err(GrantsError::HttpClient)?;
        let ldap = LdapCtx::new(allowlist, limits.max_response_bytes);
        Ok(Self { limits, http, ldap, signing: SigningCtx::default() })
    }

    /// These grants, with the signing keys the operator granted (`signing::SigningCtx::load`).
    pub fn with_signing(self, signing: SigningCtx) -> Self {
        Self { signing, ..self }
    }

    /// These grants, presenting the client certificate in `files` on LDAP TLS connections.
    pub fn with_ldap_client(self, files: Option<&ldap::ClientCertFiles>) -> Result<Self, GrantsError> {
        let Some(files) = files else { return Ok(self) };
        let identity = ldap::ClientIdentity::read(&files.cert, &files.key).map_err(GrantsError::ClientCert)?;
        Ok(Self { ldap: self.ldap.with_client(Some(identity)), ..self })
    }
}
