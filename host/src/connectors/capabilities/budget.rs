//! One call's budget for host calls: the deadline they wait on, the `maxHostCalls` count, and
//! the probe that remembers a denial or the limit after the store is gone. Shared by the
//! capabilities that reach the network (`http`, `ldap`, `jose`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connectors::bindings::HostError;
use crate::connectors::limits::Limits;

/// Facts about a call that outlive its store (which is dropped on a trap or timeout).
#[derive(Debug, Default)]
pub(crate) struct CallProbe {
    /// The first capability the call was denied, as logged.
    denied: Mutex<Option<String>>,
    /// Set when the call hit `maxHostCalls`.
    host_call_limit: Mutex<bool>,
}

impl CallProbe {
    fn record_denial(&self, detail: &str) {
        if let Ok(mut d) = self.denied.lock() {
            d.get_or_insert_with(|| detail.to_string());
        }
    }
    fn record_host_call_limit(&self) {
        if let Ok(mut hit) = self.host_call_limit.lock() {
            *hit = true;
        }
    }
    pub(crate) fn denial(&self) -> Option<String> {
        self.denied.lock().ok().and_then(|d| d.clone())
    }
    pub(crate) fn hit_host_call_limit(&self) -> bool {
        self.host_call_limit.lock().map(|b| *b).unwrap_or(false)
    }
}

/// What one connector call may still spend on host calls. A clone shares the count (the
/// `http` import and wasi:http spend from one budget).
#[derive(Debug, Clone)]
pub(crate) struct CallBudget {
    connector: Arc<str>,
    probe: Arc<CallProbe>,
    deadline: Instant,
    max_host_calls: u32,
    used: Arc<AtomicU32>,
}

impl CallBudget {
    /// A budget starting now, under `limits`, reporting to `probe`.
    pub(crate) fn new(connector: Arc<str>, limits: &Limits, probe: Arc<CallProbe>) -> Self {
        let deadline = Instant::now() + limits.call_deadline;
        Self { connector, probe, deadline, max_host_calls: limits.max_host_calls, used: Arc::default() }
    }

    /// The connector this call belongs to.
    pub(crate) fn connector(&self) -> &str {
        &self.connector
    }

    /// Time left before the call's deadline; host calls wait at most this long.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Counts one host call against `maxHostCalls`.
    pub(crate) fn charge(&mut self, what: &str) -> Result<(), HostError> {
        let used = self.used.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if used > self.max_host_calls {
            self.probe.record_host_call_limit();
            return Err(HostError::LimitExceeded(format!(
                "{what}: more than {} host calls in one connector call",
                self.max_host_calls
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
        // A policy's calls are labelled `policy:<id>` (connector ids cannot hold a colon).
        let whose = match self.connector.strip_prefix("policy:") {
            Some(policy) => format!("policy {policy:?}"),
            None => format!("connector {:?}", &*self.connector),
        };
        let detail = format!("{what} is not allowed; to allow it add \"{line}\" to allowedHosts of {whose}");
        self.refuse(detail)
    }

    /// Records and logs a denial whose text (naming the grant to add) the caller wrote.
    pub(crate) fn refuse(&self, detail: String) -> HostError {
        tracing::warn!(connector = %self.connector, "{detail}");
        self.probe.record_denial(&detail);
        HostError::Denied(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_and_denials_reach_the_probe() {
        let probe = Arc::new(CallProbe::default());
        let limits = Limits { max_host_calls: 2, ..Limits::default() };
        let mut budget = CallBudget::new("c".into(), &limits, probe.clone());
        assert!(budget.charge("http").is_ok() && budget.charge("http").is_ok());
        assert!(
            matches!(budget.charge("http"), Err(HostError::LimitExceeded(m)) if m.starts_with("http: more than 2"))
        );
        assert!(probe.hit_host_call_limit());

        let denied = budget.deny("HTTP request to https://evil:443", "evil");
        assert!(
            matches!(&denied, HostError::Denied(m) if m.contains("add \"evil\" to allowedHosts of connector \"c\""))
        );
        budget.deny("second", "x");
        let mut shared = budget.clone();
        assert!(matches!(shared.charge("http"), Err(HostError::LimitExceeded(_))), "a clone spends the same count");
        assert!(probe.denial().is_some_and(|d| d.starts_with("HTTP request to https://evil:443")), "the first denial");
    }

    #[test]
    fn a_spent_deadline_is_a_timeout() {
        let limits = Limits { call_deadline: Duration::ZERO, ..Limits::default() };
        let mut budget = CallBudget::new("c".into(), &limits, Arc::default());
        assert!(matches!(budget.charge("ldap"), Err(HostError::Timeout(_))));
    }
}
