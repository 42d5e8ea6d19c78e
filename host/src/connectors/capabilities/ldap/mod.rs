//! The `ldap` import: the LDAP bridge on ldap3, only to a server in `allowedHosts`
//! (`ldap://host:port` or `ldaps://host:port`), with StartTLS, a custom root CA and, when the
//! operator gave Dex's `clientCert`/`clientKey`, a client certificate the host holds and presents
//! (the plugin never sees the key).
//! Connections live in the call's resource table and close when the call ends.
//! [`LdapCtxView`] borrows the connector's grant, the call's budget and the resource table.

pub(crate) mod connection;

use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::EntriesOnly;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, StdStream};
use url::Url;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub use self::connection::LdapConnection;
use super::allowlist::{Allowlist, Grant, is_private};
use super::budget::CallBudget;
use crate::connectors::bindings::HostError;
use crate::connectors::bindings::current::ldap::{
    self as wit, ConnectOptions, Entry, Host, HostConnection, SearchScope,
};
use crate::connectors::bindings::v0_1::portcullis::connector as v0_1;
use crate::connectors::bindings::v0_2::portcullis::connector as v0_2;

/// LDAP result code for wrong credentials.
const INVALID_CREDENTIALS: u32 = 49;
/// Entries one search may return.
const MAX_ENTRIES: usize = 1000;

/// A DNS lookup: the addresses of `host` on `port`.
type Resolve = Arc<
    dyn Fn(String, u16) -> futures::future::BoxFuture<'static, std::io::Result<Vec<std::net::SocketAddr>>>
        + Send
        + Sync,
>;

/// What one connector may reach over LDAP: the servers in its allowlist, found through
/// `resolve` (the system's resolver; tests give their own).
pub(crate) struct LdapCtx {
    allowlist: Arc<Allowlist>,
    resolve: Resolve,
    max_response_bytes: u64,
    /// The certificate presented on every TLS connection (StartTLS or LDAPS), if configured.
    client: Option<Arc<ClientIdentity>>,
}

/// A client certificate's files (resolved paths): the PEM chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// A client certificate chain and its private key, read by the host from the files Dex's
/// `clientCert` and `clientKey` name. Debug shows the chain's length, never the key.
pub struct ClientIdentity {
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").field("certs", &self.certs.len()).field("key", &"[redacted]").finish()
    }
}

impl ClientIdentity {
    /// Reads a PEM certificate chain from `cert` and a PEM private key (PKCS#8, PKCS#1 or SEC1)
    /// from `key`, and checks that they belong together. The error names the file at fault.
    pub fn read(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, String> {
        let read =
            |path: &std::path::Path| std::fs::read(path).map_err(|e| format!("cannot read {} ({e})", path.display()));
        let cert_pem = read(cert)?;
        let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: bad PEM ({e})", cert.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no CERTIFICATE block in the file", cert.display()));
        }
        let key_pem = read(key)?;
        let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|e| format!("{}: bad PEM ({e})", key.display()))?
            .ok_or_else(|| format!("{}: no PRIVATE KEY block in the file", key.display()))?;
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|e| format!("{}: not a usable private key ({e})", key.display()))?;
        let certified = rustls::sign::CertifiedKey::new(certs.clone(), signing);
        if let Err(e) = certified.keys_match() {
            return Err(format!("{} is not the key of the certificate in {} ({e})", key.display(), cert.display()));
        }
        Ok(Self { certs, key: key_der })
    }
}

impl std::fmt::Debug for LdapCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapCtx").field("allowlist", &self.allowlist).finish_non_exhaustive()
    }
}

impl LdapCtx {
    pub(crate) fn new(allowlist: Arc<Allowlist>, max_response_bytes: u64) -> Self {
        let resolve: Resolve = Arc::new(|host, port| {
            Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
        });
        Self { allowlist, resolve, max_response_bytes, client: None }
    }

    /// This grant, presenting `client` on its TLS connections.
    pub(crate) fn with_client(self, client: Option<ClientIdentity>) -> Self {
        Self { client: client.map(Arc::new), ..self }
    }
}

/// The `ldap` import's view of a call: the grant, the budget and the resource table holding
/// the call's connections.
pub(crate) struct LdapCtxView<'a> {
    pub(crate) ctx: &'a LdapCtx,
    pub(crate) budget: &'a mut CallBudget,
    pub(crate) table: &'a mut ResourceTable,
}

/// A store whose data can lend an [`LdapCtxView`].
pub(crate) trait LdapView: Send {
    fn ldap(&mut self) -> LdapCtxView<'_>;
}

struct HasLdap;

impl HasData for HasLdap {
    type Data<'a> = LdapCtxView<'a>;
}

/// Links the `ldap` import of every supported contract version.
pub(crate) fn add_to_linker<T: LdapView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLdap>(linker, T::ldap)?;
    v0_1::ldap::add_to_linker::<T, HasLdap>(linker, T::ldap)?;
    v0_2::ldap::add_to_linker::<T, HasLdap>(linker, T::ldap)
}

/// The system's root certificates, read once (what ldap3 itself trusts by default).
static SYSTEM_ROOTS: std::sync::LazyLock<Arc<rustls::RootCertStore>> = std::sync::LazyLock::new(|| {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Arc::new(roots)
});

/// The TLS settings of one connection: the server verified against `root_ca_pem` (else the
/// system's roots) or, with `skip_verify`, not at all; `client` presented when configured.
fn tls_config(
    root_ca_pem: Option<&str>,
    skip_verify: bool,
    client: Option<&ClientIdentity>,
) -> Result<Arc<rustls::ClientConfig>, HostError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HostError::Invalid(format!("TLS: {e}")))?;
    let builder = if skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else if let Some(pem) = root_ca_pem {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
            let cert = cert.map_err(|e| HostError::Invalid(format!("rootCA: bad PEM: {e}")))?;
            roots.add(cert).map_err(|e| HostError::Invalid(format!("rootCA: bad certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(HostError::Invalid("rootCA: no certificate in the PEM".into()));
        }
        builder.with_root_certificates(roots)
    } else {
        builder.with_root_certificates(SYSTEM_ROOTS.clone())
    };
    let config = match client {
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(|e| HostError::Invalid(format!("clientCert/clientKey: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `insecureSkipVerify` with a client certificate: any server certificate is accepted (as
/// Dex's `InsecureSkipVerify`), but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl LdapCtxView<'_> {
    async fn open(&mut self, opts: ConnectOptions) -> Result<LdapConnection, HostError> {
        self.budget.charge("ldap")?;
        let url = Url::parse(&opts.url).map_err(|e| HostError::Invalid(format!("bad LDAP URL {:?}: {e}", opts.url)))?;
        if !matches!(url.scheme(), "ldap" | "ldaps") {
            return Err(HostError::Invalid(format!("{}: LDAP URLs start with ldap:// or ldaps://", opts.url)));
        }
        let origin = super::http::origin(&url);
        let timeout = self.budget.remaining();
        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout).set_starttls(opts.start_tls);
        match self.ctx.allowlist.check(&url) {
            None => {
                return Err(self.budget.deny(&format!("LDAP connection to {origin}"), &Allowlist::suggestion(&url)));
            }
            Some(Grant::Wildcard) => {
                // Resolved once, checked, and connected to the very addresses checked: ldap3
                // resolving the name again would leave a DNS-rebinding window.
                let host = url.host_str().unwrap_or_default().to_string();
                let port = url.port_or_known_default().unwrap_or(389);
                let addrs: Vec<std::net::SocketAddr> =
                    (self.ctx.resolve)(host, port).await.map_err(|e| HostError::Failed(format!("{origin}: {e}")))?;
                if addrs.is_empty() || addrs.iter().any(|a| is_private(a.ip())) {
                    let line = Allowlist::suggestion(&url);
                    return Err(self.budget.deny(&format!("LDAP connection to {origin} (a private address)"), &line));
                }
                let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addrs[..])).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return Err(HostError::Failed(format!("{origin}: {e}"))),
                    Err(_) => {
                        return Err(HostError::Timeout(format!("{origin}: no connection before the call's deadline")));
                    }
                };
                let stream = stream.into_std().map_err(|e| HostError::Failed(format!("{origin}: {e}")))?;
                settings = settings.set_std_stream(StdStream::Tcp(stream));
            }
            Some(Grant::Exact) => {}
        }
        // ldap3 uses a given TLS config as is; without a root CA or a client certificate it
        // builds its own (the system's roots, or no verification with insecureSkipVerify).
        let client = self.ctx.client.as_deref();
        if opts.insecure_skip_verify {
            tracing::warn!(
                connector = self.budget.connector(),
                "LDAP connection to {origin} does not verify the server's certificate (insecureSkipVerify)"
            );
        }
        if client.is_some() || (opts.root_ca_pem.is_some() && !opts.insecure_skip_verify) {
            settings = settings.set_config(tls_config(opts.root_ca_pem.as_deref(), opts.insecure_skip_verify, client)?);
        } else if opts.insecure_skip_verify {
            settings = settings.set_no_tls_verify(true);
        }
        let connect = LdapConnAsync::from_url_with_settings(settings, &url);
        let (conn, mut ldap) = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(HostError::Failed(format!("{origin}: {e}"))),
            Err(_) => return Err(HostError::Timeout(format!("{origin}: no connection before the call's deadline"))),
        };
        ldap3::drive!(conn);
        ldap.with_timeout(timeout);
        Ok(LdapConnection { ldap, origin })
    }

    fn connection(&mut self, conn: &Resource<LdapConnection>) -> wasmtime::Result<&mut LdapConnection> {
        Ok(self.table.get_mut(conn)?)
    }
}

/// Why a streamed search failed.
enum SearchFailure {
    Ldap(ldap3::LdapError),
    TooLarge,
}

/// Runs a search and reads at most [`MAX_ENTRIES`] entries of at most `max_bytes` in all
/// (counting DNs and values), abandoning the rest on the server.
async fn read_entries(
    ldap: &mut ldap3::Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attributes: Vec<String>,
    max_bytes: u64,
) -> Result<Vec<SearchEntry>, SearchFailure> {
    let mut stream = ldap
        .streaming_search_with(EntriesOnly::new(), base, scope, filter, attributes)
        .await
        .map_err(SearchFailure::Ldap)?;
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    let mut cut = false;
    while let Some(raw) = stream.next().await.map_err(SearchFailure::Ldap)? {
        let entry = SearchEntry::construct(raw);
        let size = entry.dn.len()
            + entry.attrs.iter().map(|(k, vs)| k.len() + vs.iter().map(String::len).sum::<usize>()).sum::<usize>()
            + entry.bin_attrs.iter().map(|(k, vs)| k.len() + vs.iter().map(Vec::len).sum::<usize>()).sum::<usize>();
        bytes += size as u64;
        if bytes > max_bytes {
            let id = stream.ldap_handle().last_id();
            let _ = stream.ldap_handle().abandon(id).await;
            return Err(SearchFailure::TooLarge);
        }
        entries.push(entry);
        if entries.len() == MAX_ENTRIES {
            cut = true;
            break;
        }
    }
    if cut {
        let id = stream.ldap_handle().last_id();
        let _ = stream.ldap_handle().abandon(id).await;
        return Ok(entries);
    }
    let result = stream.finish().await;
    match result.rc {
        0 => Ok(entries),
        // noSuchObject: the base does not exist, which for a login means "no such user".
        32 => Ok(Vec::new()),
        _ => Err(SearchFailure::Ldap(ldap3::LdapError::LdapResult { result })),
    }
}

impl Host for LdapCtxView<'_> {
    async fn connect(&mut self, opts: ConnectOptions) -> wasmtime::Result<Result<Resource<LdapConnection>, HostError>> {
        match self.open(opts).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl HostConnection for LdapCtxView<'_> {
    async fn simple_bind(
        &mut self,
        conn: Resource<LdapConnection>,
        dn: String,
        password: String,
    ) -> wasmtime::Result<Result<bool, HostError>> {
        if let Err(e) = self.budget.charge("ldap") {
            return Ok(Err(e));
        }
        if password.is_empty() {
            return Ok(Err(HostError::Invalid("empty password refused: it would be an anonymous bind".into())));
        }
        let timeout = self.budget.remaining();
        let conn = self.connection(&conn)?;
        let origin = conn.origin.clone();
        let result = tokio::time::timeout(timeout, conn.ldap.simple_bind(&dn, &password)).await;
        Ok(match result {
            Err(_) => Err(HostError::Timeout(format!("{origin}: bind did not finish before the call's deadline"))),
            Ok(Err(e)) => Err(HostError::Failed(format!("{origin}: bind failed: {e}"))),
            Ok(Ok(res)) if res.rc == 0 => Ok(true),
            Ok(Ok(res)) if res.rc == INVALID_CREDENTIALS => Ok(false),
            Ok(Ok(res)) => {
                Err(HostError::Failed(format!("{origin}: bind failed with result code {}: {}", res.rc, res.text)))
            }
        })
    }

    async fn search(
        &mut self,
        conn: Resource<LdapConnection>,
        base: String,
        scope: SearchScope,
        filter: String,
        attributes: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Entry>, HostError>> {
        if let Err(e) = self.budget.charge("ldap") {
            return Ok(Err(e));
        }
        let timeout = self.budget.remaining();
        let max_bytes = self.ctx.max_response_bytes;
        let conn = self.connection(&conn)?;
        let origin = conn.origin.clone();
        let scope = match scope {
            SearchScope::Base => Scope::Base,
            SearchScope::OneLevel => Scope::OneLevel,
            SearchScope::Subtree => Scope::Subtree,
        };
        // Streamed, and stopped at the caps: a server answering a million entries (or a few
        // huge ones) must not fill the host's memory before the cap applies.
        let search = read_entries(&mut conn.ldap, &base, scope, &filter, attributes, max_bytes);
        let found = match tokio::time::timeout(timeout, search).await {
            Err(_) => {
                return Ok(Err(HostError::Timeout(format!(
                    "{origin}: search did not finish before the call's deadline"
                ))));
            }
            Ok(Err(SearchFailure::TooLarge)) => {
                return Ok(Err(HostError::TooLarge(format!(
                    "{origin}: search results are larger than limits.maxResponseBytes ({max_bytes} bytes)"
                ))));
            }
            Ok(Err(SearchFailure::Ldap(e))) => {
                return Ok(Err(HostError::Failed(format!("{origin}: search failed: {e}"))));
            }
            Ok(Ok(found)) => found,
        };
        let entries = found
            .into_iter()
            .map(|entry| {
                let mut attributes: Vec<(String, Vec<String>)> = entry.attrs.into_iter().collect();
                attributes.sort();
                Entry { dn: entry.dn, attributes }
            })
            .collect();
        Ok(Ok(entries))
    }

    async fn drop(&mut self, conn: Resource<LdapConnection>) -> wasmtime::Result<()> {
        let mut conn = self.table.delete(conn)?;
        let _ = tokio::time::timeout(Duration::from_millis(200), conn.ldap.unbind()).await;
        Ok(())
    }
}

/// Older contracts' `ldap`: the same import in their records (`bindings::convert`).
macro_rules! older_ldap {
    ($v:ident) => {
        impl $v::ldap::Host for LdapCtxView<'_> {
            async fn connect(
                &mut self,
                opts: $v::ldap::ConnectOptions,
            ) -> wasmtime::Result<Result<Resource<LdapConnection>, $v::types::HostError>> {
                Ok(Host::connect(self, opts.into()).await?.map_err(Into::into))
            }
        }

        impl $v::ldap::HostConnection for LdapCtxView<'_> {
            async fn simple_bind(
                &mut self,
                conn: Resource<LdapConnection>,
                dn: String,
                password: String,
            ) -> wasmtime::Result<Result<bool, $v::types::HostError>> {
                Ok(HostConnection::simple_bind(self, conn, dn, password).await?.map_err(Into::into))
            }

            async fn search(
                &mut self,
                conn: Resource<LdapConnection>,
                base: String,
                scope: $v::ldap::SearchScope,
                filter: String,
                attributes: Vec<String>,
            ) -> wasmtime::Result<Result<Vec<$v::ldap::Entry>, $v::types::HostError>> {
                let found = HostConnection::search(self, conn, base, scope.into(), filter, attributes).await?;
                Ok(found.map(|entries| entries.into_iter().map(Into::into).collect()).map_err(Into::into))
            }

            async fn drop(&mut self, conn: Resource<LdapConnection>) -> wasmtime::Result<()> {
                HostConnection::drop(self, conn).await
            }
        }
    };
}
older_ldap!(v0_1);
older_ldap!(v0_2);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::capabilities::budget::CallProbe;
    use crate::connectors::limits::Limits;

    fn options(url: &str) -> ConnectOptions {
        ConnectOptions { url: url.into(), start_tls: false, root_ca_pem: None, insecure_skip_verify: false }
    }

    #[tokio::test]
    async fn only_an_allowed_server_is_reached() {
        let allowlist = Arc::new(Allowlist::parse(&["ldaps://ldap.corp:636".to_string()]).unwrap());
        let ctx = LdapCtx::new(allowlist, 1024 * 1024);
        let probe = Arc::new(CallProbe::default());
        let limits = Limits { max_host_calls: 2, ..Limits::default() };
        let mut budget = CallBudget::new("dir".into(), &limits, probe.clone());
        let mut table = ResourceTable::new();
        let mut view = LdapCtxView { ctx: &ctx, budget: &mut budget, table: &mut table };

        let err = view.connect(options("ldap://10.0.0.1:389")).await.unwrap().unwrap_err();
        let HostError::Denied(message) = err else { panic!("{err:?}") };
        assert!(message.contains("add \"ldap://10.0.0.1\" to allowedHosts of connector \"dir\""), "{message}");
        assert!(probe.denial().is_some());

        let err = view.connect(options("https://ldap.corp")).await.unwrap().unwrap_err();
        assert!(matches!(&err, HostError::Invalid(m) if m.contains("ldap:// or ldaps://")), "{err:?}");

        let err = view.connect(options("ldaps://ldap.corp:636")).await.unwrap().unwrap_err();
        assert!(matches!(err, HostError::LimitExceeded(_)), "the third call is over budget: {err:?}");
    }

    /// A wildcard grant resolves the server once, checks every address, and dials the very
    /// addresses it checked: a second answer (DNS rebinding to loopback) is never asked for.
    #[tokio::test]
    async fn a_wildcard_server_is_resolved_once_and_dialled_at_the_checked_address() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let allowlist = Arc::new(Allowlist::parse(&["ldap://*.example.test:389".to_string()]).unwrap());
        let mut ctx = LdapCtx::new(allowlist, 1024);
        let lookups = Arc::new(AtomicUsize::new(0));
        let counter = lookups.clone();
        ctx.resolve = Arc::new(move |host, port| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            // The first answer is public, any later one loopback.
            let ip = if host.starts_with("private") || n > 0 { "127.0.0.1" } else { "198.18.0.7" };
            Box::pin(async move { Ok(vec![std::net::SocketAddr::new(ip.parse().unwrap(), port)]) })
        });
        let probe = Arc::new(CallProbe::default());
        let limits = Limits { call_deadline: Duration::from_millis(300), ..Limits::default() };
        let mut budget = CallBudget::new("dir".into(), &limits, probe.clone());
        let mut table = ResourceTable::new();
        let mut view = LdapCtxView { ctx: &ctx, budget: &mut budget, table: &mut table };

        // Whether 198.18.0.7 answers depends on the network the test runs in; what matters is
        // that ldap3 was handed the connection and never looked the name up again.
        let _ = view.connect(options("ldap://dir.example.test:389")).await.unwrap();
        assert_eq!(lookups.load(Ordering::SeqCst), 1, "one lookup, no second chance to rebind");

        let err = view.connect(options("ldap://private.example.test:389")).await.unwrap().unwrap_err();
        assert!(matches!(&err, HostError::Denied(m) if m.contains("private address")), "{err:?}");
    }
}
