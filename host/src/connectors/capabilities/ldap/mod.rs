//! The `ldap` import: the LDAP bridge on ldap3, only to a server in `allowedHosts`
//! (`ldap://host:port` or `ldaps://host:port`), with StartTLS and a custom root CA.
//! Connections live in the call's resource table and close when the call ends.
//! [`LdapCtxView`] borrows the connector's grant, the call's budget and the resource table.

pub(crate) mod connection;

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
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

/// LDAP result code for wrong credentials.
const INVALID_CREDENTIALS: u32 = 49;
/// Entries one search may return.
const MAX_ENTRIES: usize = 1000;

/// What one connector may reach over LDAP: the servers in its allowlist.
#[derive(Debug)]
pub(crate) struct LdapCtx {
    allowlist: Arc<Allowlist>,
}

impl LdapCtx {
    pub(crate) fn new(allowlist: Arc<Allowlist>) -> Self {
        Self { allowlist }
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
    v0_1::ldap::add_to_linker::<T, HasLdap>(linker, T::ldap)
}

fn tls_config(pem: &str) -> Result<Arc<rustls::ClientConfig>, HostError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        let cert = cert.map_err(|e| HostError::Invalid(format!("rootCA: bad PEM: {e}")))?;
        roots.add(cert).map_err(|e| HostError::Invalid(format!("rootCA: bad certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(HostError::Invalid("rootCA: no certificate in the PEM".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HostError::Invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl LdapCtxView<'_> {
    async fn open(&mut self, opts: ConnectOptions) -> Result<LdapConnection, HostError> {
        self.budget.charge("ldap")?;
        let url = Url::parse(&opts.url).map_err(|e| HostError::Invalid(format!("bad LDAP URL {:?}: {e}", opts.url)))?;
        if !matches!(url.scheme(), "ldap" | "ldaps") {
            return Err(HostError::Invalid(format!("{}: LDAP URLs start with ldap:// or ldaps://", opts.url)));
        }
        let origin = super::http::origin(&url);
        match self.ctx.allowlist.check(&url) {
            None => {
                return Err(self.budget.deny(&format!("LDAP connection to {origin}"), &Allowlist::suggestion(&url)));
            }
            Some(Grant::Wildcard) => {
                let host = url.host_str().unwrap_or_default().to_string();
                let port = url.port_or_known_default().unwrap_or(389);
                let addrs = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| HostError::Failed(format!("{origin}: {e}")))?;
                if addrs.into_iter().any(|a| is_private(a.ip())) {
                    let line = Allowlist::suggestion(&url);
                    return Err(self.budget.deny(&format!("LDAP connection to {origin} (a private address)"), &line));
                }
            }
            Some(Grant::Exact) => {}
        }
        let timeout = self.budget.remaining();
        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout).set_starttls(opts.start_tls);
        // ldap3 uses a given TLS config as is, so with insecureSkipVerify it must not get one:
        // its own config is the one that skips verification.
        if let Some(pem) = opts.root_ca_pem.as_ref().filter(|_| !opts.insecure_skip_verify) {
            settings = settings.set_config(tls_config(pem)?);
        }
        if opts.insecure_skip_verify {
            tracing::warn!(
                connector = self.budget.connector(),
                "LDAP connection to {origin} does not verify the server's certificate (insecureSkipVerify)"
            );
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
        let conn = self.connection(&conn)?;
        let origin = conn.origin.clone();
        let scope = match scope {
            SearchScope::Base => Scope::Base,
            SearchScope::OneLevel => Scope::OneLevel,
            SearchScope::Subtree => Scope::Subtree,
        };
        let search = conn.ldap.search(&base, scope, &filter, attributes);
        let result = match tokio::time::timeout(timeout, search).await {
            Err(_) => {
                return Ok(Err(HostError::Timeout(format!(
                    "{origin}: search did not finish before the call's deadline"
                ))));
            }
            Ok(Err(e)) => return Ok(Err(HostError::Failed(format!("{origin}: search failed: {e}")))),
            Ok(Ok(result)) => result,
        };
        let (entries, _) = match result.success() {
            Ok(found) => found,
            // noSuchObject: the base does not exist, which for a login means "no such user".
            Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => (Vec::new(), result),
            Err(e) => return Ok(Err(HostError::Failed(format!("{origin}: search failed: {e}")))),
        };
        let entries = entries
            .into_iter()
            .take(MAX_ENTRIES)
            .map(|raw| {
                let entry = SearchEntry::construct(raw);
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

/// Contract 0.1's `ldap`: the same import in 0.1's records; connections are the same resource.
impl v0_1::ldap::Host for LdapCtxView<'_> {
    async fn connect(
        &mut self,
        opts: v0_1::ldap::ConnectOptions,
    ) -> wasmtime::Result<Result<Resource<LdapConnection>, v0_1::types::HostError>> {
        Ok(Host::connect(self, opts.into()).await?.map_err(Into::into))
    }
}

impl v0_1::ldap::HostConnection for LdapCtxView<'_> {
    async fn simple_bind(
        &mut self,
        conn: Resource<LdapConnection>,
        dn: String,
        password: String,
    ) -> wasmtime::Result<Result<bool, v0_1::types::HostError>> {
        Ok(HostConnection::simple_bind(self, conn, dn, password).await?.map_err(Into::into))
    }

    async fn search(
        &mut self,
        conn: Resource<LdapConnection>,
        base: String,
        scope: v0_1::ldap::SearchScope,
        filter: String,
        attributes: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<v0_1::ldap::Entry>, v0_1::types::HostError>> {
        let found = HostConnection::search(self, conn, base, scope.into(), filter, attributes).await?;
        Ok(found.map(|entries| entries.into_iter().map(Into::into).collect()).map_err(Into::into))
    }

    async fn drop(&mut self, conn: Resource<LdapConnection>) -> wasmtime::Result<()> {
        HostConnection::drop(self, conn).await
    }
}

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
        let ctx = LdapCtx::new(allowlist);
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
}
