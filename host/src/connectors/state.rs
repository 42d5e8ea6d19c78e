//! What one connector call's store holds, and nothing else: the connector's grants, the call's
//! budget, the resource table (capped: [`MAX_RESOURCES`]), the memory limiter, the (empty) WASI context and the
//! wasi:http gate (`capabilities::wasi_http`). It lends each
//! capability its view and links them all; the capabilities themselves live in `capabilities/`.

use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings;
use super::capabilities::Grants;
use super::capabilities::budget::{CallBudget, CallProbe};
use super::capabilities::http::{self, HttpCtxView, HttpView};
use super::capabilities::jose::{self, JoseCtxView, JoseView};
use super::capabilities::ldap::{self, LdapCtxView, LdapView};
use super::capabilities::log::{self, LogCtxView, LogView};
use super::capabilities::signing::{self, SigningCtxView, SigningView};
use super::capabilities::stderr::{self, GuestStderr};
use super::capabilities::wasi_http::{self, HttpGate};
use super::capabilities::xmldsig::{self, XmlDsigCtxView, XmlDsigView};
use super::limits::MemoryLimiter;

/// Entries one call's resource table may hold (LDAP connections, WASI streams and pollables).
/// The table lives in host memory, outside the guest's memory limit, and wasmtime's default
/// cap is a million; a connector needs a handful.
pub(crate) const MAX_RESOURCES: usize = 1024;

/// The data of one call's `Store`.
pub(crate) struct CallState {
    connector: Arc<str>,
    grants: Arc<Grants>,
    budget: CallBudget,
    pub(crate) limiter: MemoryLimiter,
    table: ResourceTable,
    wasi: WasiCtx,
    wasi_http: WasiHttpCtx,
    http_gate: HttpGate,
}

impl CallState {
    pub(crate) fn new(connector: Arc<str>, grants: Arc<Grants>, probe: Arc<CallProbe>, output: GuestStderr) -> Self {
        let limiter = MemoryLimiter::new(&grants.limits);
        let budget = CallBudget::new(connector.clone(), &grants.limits, probe);
        let http_gate = HttpGate::new(grants.clone(), budget.clone());
        let wasi = stderr::wasi_ctx(output);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self { connector, grants, budget, limiter, table, wasi, wasi_http: WasiHttpCtx::new(), http_gate }
    }
}

/// Links WASI and every capability, for every supported contract version.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    stderr::add_to_linker(linker)?;
    wasi_http::add_to_linker(linker)?;
    http::add_to_linker(linker)?;
    ldap::add_to_linker(linker)?;
    jose::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    signing::add_to_linker(linker)?;
    xmldsig::add_to_linker(linker)?;
    bindings::add_types_to_linker(linker)
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { hooks: &mut self.http_gate, table: &mut self.table, ctx: &mut self.wasi_http }
    }
}

impl HttpView for CallState {
    fn http(&mut self) -> HttpCtxView<'_> {
        HttpCtxView { ctx: &self.grants.http, budget: &mut self.budget }
    }
}

impl JoseView for CallState {
    fn jose(&mut self) -> JoseCtxView<'_> {
        JoseCtxView { http: HttpView::http(self) }
    }
}

impl LdapView for CallState {
    fn ldap(&mut self) -> LdapCtxView<'_> {
        LdapCtxView { ctx: &self.grants.ldap, budget: &mut self.budget, table: &mut self.table }
    }
}

impl SigningView for CallState {
    fn signing(&mut self) -> SigningCtxView<'_> {
        SigningCtxView { ctx: &self.grants.signing, budget: &mut self.budget }
    }
}

impl XmlDsigView for CallState {
    fn xmldsig(&mut self) -> XmlDsigCtxView<'_> {
        XmlDsigCtxView { budget: &mut self.budget }
    }
}

impl LogView for CallState {
    fn log(&mut self) -> LogCtxView<'_> {
        LogCtxView { connector: &self.connector }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::capabilities::allowlist::Allowlist;
    use crate::connectors::limits::Limits;

    /// The resource table lives in host memory, outside the guest's memory limit: a guest
    /// making WASI resources in a loop (`get-stderr`, pollables) is stopped at a small cap,
    /// not at wasmtime's default of a million entries.
    #[test]
    fn the_resource_table_is_capped() {
        let grants = Arc::new(Grants::new(Allowlist::default(), Limits::default()).unwrap());
        let connector: Arc<str> = "c".into();
        let mut state = CallState::new(connector.clone(), grants, Arc::default(), GuestStderr::new(connector));
        let pushed = (0..100_000).take_while(|_| state.table.push(0u64).is_ok()).count();
        assert_eq!(pushed, MAX_RESOURCES, "the table took {pushed} entries");
    }
}
