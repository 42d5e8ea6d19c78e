//! `cargo xtask chaos [--seconds N] [--storage postgres|mysql]`: the chaos run of tests/tests/e2e/chaos.rs — three broker
//! replicas (the real binary) on one PostgreSQL database under load, one killed with SIGKILL
//! every 10 s and restarted, a rolling SIGTERM restart halfway — for N seconds (default 600),
//! printing its report; then one SQLite replica killed mid-write. `cargo xtask test` runs both,
//! the first for 60 s.

use std::path::Path;

use anyhow::{Context, bail};

/// Seconds of `cargo xtask chaos` without `--seconds`.
const DEFAULT_SECONDS: u64 = 600;
/// Seconds of the run `cargo xtask test` includes.
pub const TEST_SECONDS: u64 = 60;

/// `cargo xtask chaos [--seconds N]`.
pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut storage = "postgres";
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        match (flag.as_str(), rest.next()) {
            ("--seconds", Some(n)) => seconds = n.parse().with_context(|| format!("--seconds {n:?}: not a number"))?,
            ("--storage", Some(s)) if s == "postgres" || s == "mysql" => {
                storage = if s == "mysql" { "mysql" } else { "postgres" }
            }
            _ => bail!("usage: cargo xtask chaos [--seconds N] [--storage postgres|mysql]"),
        }
    }
    chaos_on(root, seconds, storage, true)
}

/// The run `cargo xtask test` includes: PostgreSQL, `seconds`, held to the invariants (no
/// double redemption, no unverifiable token); the report says any other target missed.
pub fn chaos(root: &Path, seconds: u64) -> anyhow::Result<()> {
    chaos_on(root, seconds, "postgres", false)
}

/// Builds the broker binary (the debug build the tests share) and runs the chaos tests, the
/// replicas on `storage` for `seconds` (bounded by the test itself); `strict`: every target of
/// the report must be met.
fn chaos_on(root: &Path, seconds: u64, storage: &str, strict: bool) -> anyhow::Result<()> {
    let built = crate::cargo_command().current_dir(root).args(["build", "--quiet", "-p", "portcullis"]).status()?;
    if !built.success() {
        bail!("cannot build the portcullis binary for the chaos run");
    }
    let status = crate::cargo_command()
        .current_dir(root)
        // Both chaos tests (the replicas on PostgreSQL, SQLite under kill -9), one at a time.
        .args(["test", "--quiet", "-p", "portcullis-tests", "--test", "e2e", "--", "--ignored", "chaos::"])
        .args(["--nocapture", "--test-threads", "1"])
        .env("PORTCULLIS_CHAOS_SECONDS", seconds.to_string())
        .env("PORTCULLIS_CHAOS_STORAGE", storage)
        .env("PORTCULLIS_CHAOS_STRICT", if strict { "1" } else { "0" })
        .env("PORTCULLIS_BIN", root.join("target/debug/portcullis"))
        .status()?;
    if !status.success() {
        bail!("the chaos run failed (its report is above)");
    }
    Ok(())
}
