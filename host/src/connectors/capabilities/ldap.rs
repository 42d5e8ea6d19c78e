//! The `ldap` import: the LDAP bridge on ldap3, only to a server in `allowedHosts`
//! (`ldap://host:port` or `ldaps://host:port`), with StartTLS and a custom root CA.
//! Connections live in the call's resource table and close when the call ends.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use url::Url;
use wasmtime::component::Resource;

use super::allowlist::{Allowlist, Grant, is_private};
use crate::connectors::bindings::portcullis::connector::ldap::{
    ConnectOptions, Entry, Host, HostConnection, SearchScope,
};
use crate::connectors::bindings::portcullis::connector::types::HostError;
use crate::connectors::state::CallState;

/// LDAP result code for wrong credentials.
const INVALID_CREDENTIALS: u32 = 49;
/// Entries one search may return.
const MAX_ENTRIES: usize = 1000;

/// An open LDAP connection held in the call's resource table.
pub struct LdapConnection {
    ldap: ldap3::Ldap,
    origin: String,
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

impl CallState {
    async fn ldap_connect(&mut self, opts: ConnectOptions) -> Result<LdapConnection, HostError> {
        self.charge_host_call("ldap")?;
        let url = Url::parse(&opts.url).map_err(|e| HostError::Invalid(format!("bad LDAP URL {:?}: {e}", opts.url)))?;
        if !matches!(url.scheme(), "ldap" | "ldaps") {
            return Err(HostError::Invalid(format!("{}: LDAP URLs start with ldap:// or ldaps://", opts.url)));
        }
        let origin = super::http::origin(&url);
        match self.grants.allowlist.check(&url) {
            None => return Err(self.deny(&format!("LDAP connection to {origin}"), &Allowlist::suggestion(&url))),
            Some(Grant::Wildcard) => {
                let host = url.host_str().unwrap_or_default().to_string();
                let port = url.port_or_known_default().unwrap_or(389);
                let addrs = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| HostError::Failed(format!("{origin}: {e}")))?;
                if addrs.into_iter().any(|a| is_private(a.ip())) {
                    let line = Allowlist::suggestion(&url);
                    return Err(self.deny(&format!("LDAP connection to {origin} (a private address)"), &line));
                }
            }
            Some(Grant::Exact) => {}
        }
        let timeout = self.remaining();
        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout).set_starttls(opts.start_tls);
        // ldap3 uses a given TLS config as is, so with insecureSkipVerify it must not get one:
        // its own config is the one that skips verification.
        if let Some(pem) = opts.root_ca_pem.as_ref().filter(|_| !opts.insecure_skip_verify) {
            settings = settings.set_config(tls_config(pem)?);
        }
        if opts.insecure_skip_verify {
            tracing::warn!(connector = %self.connector, "LDAP connection to {origin} does not verify the server's certificate (insecureSkipVerify)");
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

impl Host for CallState {
    async fn connect(&mut self, opts: ConnectOptions) -> wasmtime::Result<Result<Resource<LdapConnection>, HostError>> {
        match self.ldap_connect(opts).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl HostConnection for CallState {
    async fn simple_bind(
        &mut self,
        conn: Resource<LdapConnection>,
        dn: String,
        password: String,
    ) -> wasmtime::Result<Result<bool, HostError>> {
        if let Err(e) = self.charge_host_call("ldap") {
            return Ok(Err(e));
        }
        if password.is_empty() {
            return Ok(Err(HostError::Invalid("empty password refused: it would be an anonymous bind".into())));
        }
        let timeout = self.remaining();
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
        if let Err(e) = self.charge_host_call("ldap") {
            return Ok(Err(e));
        }
        let timeout = self.remaining();
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
