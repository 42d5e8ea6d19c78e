//! `cargo xtask chaos [--seconds N]`: the chaos run of tests/tests/e2e/chaos.rs — three broker
//! replicas (the real binary) on one PostgreSQL database under load, one killed with SIGKILL
//! every 10 s and restarted, a rolling SIGTERM restart halfway — for N seconds (default 600),
//! printing its report. `cargo xtask test` runs it for 60 s.

use std::path::Path;

use anyhow::{Context, bail};

/// Seconds of `cargo xtask chaos` without `--seconds`.
const DEFAULT_SECONDS: u64 = 600;
/// Seconds of the run `cargo xtask test` includes.
pub const TEST_SECONDS: u64 = 60;

/// `cargo xtask chaos [--seconds N]`.
pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let seconds = match args {
        [] => DEFAULT_SECONDS,
        [flag, n] if flag == "--seconds" => n.parse().with_context(|| format!("--seconds {n:?}: not a number"))?,
        _ => bail!("usage: cargo xtask chaos [--seconds N]"),
    };
    chaos(root, seconds)
}

/// Builds the broker binary (the debug build the tests share) and runs the chaos test for
/// `seconds`, bounded by the test itself.
pub fn chaos(root: &Path, seconds: u64) -> anyhow::Result<()> {
    let built = crate::cargo_command().current_dir(root).args(["build", "--quiet", "-p", "portcullis"]).status()?;
    if !built.success() {
        bail!("cannot build the portcullis binary for the chaos run");
    }
    let status = crate::cargo_command()
        .current_dir(root)
        .args(["test", "--quiet", "-p", "portcullis-tests", "--test", "e2e", "--", "--ignored", "--exact"])
        .arg("chaos::replicas_killed_under_load_lose_nothing")
        .arg("--nocapture")
        .env("PORTCULLIS_CHAOS_SECONDS", seconds.to_string())
        .env("PORTCULLIS_BIN", root.join("target/debug/portcullis"))
        .status()?;
    if !status.success() {
        bail!("the chaos run failed (its report is above)");
    }
    Ok(())
}
