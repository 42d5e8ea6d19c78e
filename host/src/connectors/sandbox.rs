//! What every sandboxed call shares, a connector's or a policy's: a fresh store with the
//! caller's grants and the call's deadline armed, and the one classification of a failed call
//! ([`Failure`]), which each caller names in its own error type (`PluginError`, `PolicyError`).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::capabilities::Grants;
use super::capabilities::budget::CallProbe;
use super::capabilities::stderr::GuestStderr;
use super::guest_text::escape_owned;
use super::state::CallState;

/// A fresh store for one call of the guest `label` (a connector id, or `policy:<id>`): its
/// grants, memory limiter and an epoch deadline `grants.limits.call_deadline` from now; the
/// probe and output the caller reads when the call ends.
pub(crate) fn store(
    engine: &Engine,
    label: &Arc<str>,
    grants: &Arc<Grants>,
) -> (Store<CallState>, Arc<CallProbe>, GuestStderr) {
    let probe = Arc::new(CallProbe::default());
    let output = GuestStderr::new(label.clone());
    let state = CallState::new(label.clone(), grants.clone(), probe.clone(), output.clone());
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    let deadline = std::time::Instant::now() + grants.limits.call_deadline;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if std::time::Instant::now() >= deadline { Ok(UpdateDeadline::Interrupt) } else { Ok(UpdateDeadline::Yield(1)) }
    });
    (store, probe, output)
}

/// Why a sandboxed call failed, before the caller names the guest and the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The call's deadline passed (epoch interruption or the host's timeout).
    Deadline(Duration),
    /// The guest asked for more memory than `limits.memoryMiB`.
    Memory(u64),
    /// The guest made more host calls than `limits.maxHostCalls`.
    HostCallLimit(u32),
    /// A host call was denied (a host outside the allowlist); the detail says what to grant.
    Denied(String),
    /// The guest trapped or panicked; one line, guest text escaped.
    Trap(String),
}

/// The failure a trap was: memory, deadline, host-call limit, or the trap itself with the
/// panic message the guest printed (`what`: "plugin" or "policy", for the text).
pub(crate) fn trapped(
    trap: &wasmtime::Error,
    store: &Store<CallState>,
    probe: &CallProbe,
    output: &GuestStderr,
    grants: &Grants,
    what: &str,
) -> Failure {
    let tail = output.finish();
    if store.data().limiter.exceeded {
        return Failure::Memory(grants.limits.memory_mib());
    }
    if trap.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Failure::Deadline(grants.limits.call_deadline);
    }
    if probe.hit_host_call_limit() {
        return Failure::HostCallLimit(grants.limits.max_host_calls);
    }
    // Rust prints `thread '…' panicked at file:line:col:` and the message on the next line.
    let lines: Vec<&str> = tail.lines().collect();
    let detail = match lines.iter().rposition(|l| l.contains("panicked")) {
        Some(i) => {
            let message = lines.get(i + 1).map(|m| format!(" {}", m.trim())).unwrap_or_default();
            format!("the {what} panicked: {}{message}", lines[i].trim())
        }
        None if tail.is_empty() => format!("{trap:#}"),
        None => format!("{trap:#} ({what} output: {tail})"),
    };
    // The trap's text quotes the guest (its function names in the backtrace): one line.
    Failure::Trap(escape_owned(detail))
}

/// When the guest returned its own error: the denial or host-call limit behind it, if any
/// (the guest's error is then only the consequence). Ends the call's output either way.
pub(crate) fn behind_error(probe: &CallProbe, output: &GuestStderr, grants: &Grants) -> Option<Failure> {
    output.finish();
    if let Some(detail) = probe.denial() {
        return Some(Failure::Denied(detail));
    }
    probe.hit_host_call_limit().then_some(Failure::HostCallLimit(grants.limits.max_host_calls))
}
