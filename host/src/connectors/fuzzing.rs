//! Entry points for the fuzz targets in `fuzz/` into what the host keeps crate-private; built
//! only with `--cfg fuzzing` (as `cargo xtask fuzz` builds), never in the broker.

use super::bindings::current::jose::Expectations;
use super::capabilities::jose;

/// The `jose` import's pure part: `token` verified against `jwks` (every algorithm the host
/// supports accepted, no issuer or audience expected), each key tried counted against a budget
/// of 64 as a call would be. The answer is thrown away: only a panic or a hang is a finding.
pub fn jose_verify(token: &str, jwks: &str) {
    let expect = Expectations {
        algorithms: ["RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA"].iter().map(|a| a.to_string()).collect(),
        issuer: None,
        audience: None,
        leeway_seconds: 60,
    };
    let mut budget = 64u32;
    let _ = jose::verify(token, jwks, &expect, &mut || {
        budget = budget.saturating_sub(1);
        if budget == 0 { Err(super::bindings::HostError::LimitExceeded("budget".into())) } else { Ok(()) }
    });
}
