//! What one connector call's store holds: a WASI context with nothing granted, the resource
//! table, the memory limiter, the connector's grants and the call's budget.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::portcullis::connector::types::HostError;
use super::capabilities::Grants;
use super::capabilities::stderr::GuestStderr;
use super::limits::MemoryLimiter;

/// Facts about a call that outlive its store (which is dropped on a trap or timeout).
#[derive(Debug, Default)]
pub(crate) struct CallProbe {
    /// The first capability the call was denied, as logged.
    pub(crate) denied: Mutex<Option<String>>,
    /// Set when the call hit `maxHostCalls`.
    pub(crate) host_call_limit: Mutex<bool>,
}

impl CallProbe {
    pub(crate) fn record_denial(&self, detail: &str) {
        if let Ok(mut d) = self.denied.lock() {
            d.get_or_insert_with(|| detail.to_string());
        }
    }
    pub(crate) fn denial(&self) -> Option<String> {
        self.denied.lock().ok().and_then(|d| d.clone())
    }
    pub(crate) fn hit_host_call_limit(&self) -> bool {
        self.host_call_limit.lock().map(|b| *b).unwrap_or(false)
    }
}

/// The data of one call's `Store`.
pub(crate) struct CallState {
    pub(crate) connector: Arc<str>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) probe: Arc<CallProbe>,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    deadline: Instant,
    host_calls: u32,
}

impl CallState {
    pub(crate) fn new(connector: Arc<str>, grants: Arc<Grants>, probe: Arc<CallProbe>, stderr: GuestStderr) -> Self {
        // Nothing granted: no preopened directories, environment, arguments, sockets or stdin.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new().stderr(stderr.clone()).stdout(stderr).build();
        let limiter = MemoryLimiter::new(&grants.limits);
        let deadline = Instant::now() + grants.limits.call_deadline;
        Self { connector, grants, probe, limiter, table: ResourceTable::new(), wasi, deadline, host_calls: 0 }
    }

    /// Time left before the call's deadline; host calls wait at most this long.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Counts one host call against `maxHostCalls`.
    pub(crate) fn charge_host_call(&mut self, what: &str) -> Result<(), HostError> {
        self.host_calls += 1;
        if self.host_calls > self.grants.limits.max_host_calls {
            if let Ok(mut hit) = self.probe.host_call_limit.lock() {
                *hit = true;
            }
            return Err(HostError::LimitExceeded(format!(
                "{what}: more than {} host calls in one connector call",
                self.grants.limits.max_host_calls
            )));
        }
        if self.remaining().is_zero() {
            return Err(HostError::Timeout(format!("{what}: the call's deadline has passed")));
        }
        Ok(())
    }

    /// Records and logs a denial with the config line that would grant it; returns the error
    /// the guest receives.
    pub(crate) fn deny(&self, what: &str, line: &str) -> HostError {
        let detail = format!(
            "{what} is not allowed; to allow it add \"{line}\" to allowedHosts of connector {:?}",
            &*self.connector
        );
        tracing::warn!(connector = %self.connector, "{detail}");
        self.probe.record_denial(&detail);
        HostError::Denied(detail)
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The `types` interface has no functions; its host trait is empty.
impl super::bindings::portcullis::connector::types::Host for CallState {}
