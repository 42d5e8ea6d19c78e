//! `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the fuzz crate (`fuzz/`, its own
//! workspace) with libFuzzer's coverage instrumentation on stable Rust, runs each target for a
//! bounded time and prints executions and crashes per target.
//!
//! The flags are cargo-fuzz's without a sanitizer (`-Zsanitizer` needs nightly; the host's code
//! is safe Rust). `--target` is passed so build scripts and proc macros stay uninstrumented.
//! Each target runs on `fuzz/corpus/<target>` (grown by the runs, not committed) and reads the
//! committed seeds in `fuzz/seeds/<target>`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Every target in `fuzz/fuzz_targets/`.
pub(crate) const TARGETS: &[&str] = &["config", "authorize", "token", "jose", "convert"];
/// Seconds each target runs when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

const RUSTFLAGS: &[&str] = &[
    "--cfg",
    "fuzzing",
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// One target's run.
struct Outcome {
    target: &'static str,
    executions: u64,
    seconds: u64,
    crashes: Vec<String>,
}

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets: Vec<&'static str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number, e.g. --seconds 300")?;
                seconds = value.parse().with_context(|| format!("--seconds {value:?}: not a whole number"))?;
            }
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(t) => targets.push(t),
                None => bail!("unknown fuzz target {name:?}; the targets are {}", TARGETS.join(", ")),
            },
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let fuzz = root.join("fuzz");
    let target_dir = root.join("target/fuzz");
    let triple = host_triple()?;
    println!("building the fuzz targets (first build: several minutes)");
    let status = crate::cargo_command()
        .current_dir(&fuzz)
        .args(["build", "--release", "--bins", "--target", &triple, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        .status()
        .context("cannot run cargo build for fuzz/")?;
    if !status.success() {
        bail!("building the fuzz targets failed (above)");
    }
    let mut outcomes = Vec::new();
    for target in targets {
        let corpus = fuzz.join("corpus").join(target);
        let artifacts = fuzz.join("artifacts").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let before = files(&artifacts)?;
        println!("fuzzing {target} for {seconds} s");
        let output = Command::new(target_dir.join(&triple).join("release").join(target))
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .arg("-rss_limit_mb=2048")
            .arg("-timeout=10")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus)
            // Read-only seeds (committed): inputs of the right shape, so the run starts deep.
            .args(Some(fuzz.join("seeds").join(target)).filter(|seeds| seeds.is_dir()))
            .output()
            .with_context(|| format!("cannot run the fuzz target {target}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let crashes: Vec<String> =
            files(&artifacts)?.into_iter().filter(|f| !before.contains(f)).map(|f| f.display().to_string()).collect();
        if !output.status.success() && crashes.is_empty() {
            eprintln!("{log}");
            bail!("fuzz target {target} failed without leaving a crash file (its output is above)");
        }
        outcomes.push(Outcome {
            target,
            executions: stat(&log, "stat::number_of_executed_units:").unwrap_or(0),
            seconds: done_seconds(&log).unwrap_or(seconds),
            crashes,
        });
    }
    println!();
    println!("{:<10} {:>14} {:>8} {:>8}", "target", "executions", "seconds", "crashes");
    for o in &outcomes {
        println!("{:<10} {:>14} {:>8} {:>8}", o.target, o.executions, o.seconds, o.crashes.len());
        for crash in &o.crashes {
            println!("  {crash}  (reproduce: target/fuzz/{triple}/release/{} {crash})", o.target);
        }
    }
    if outcomes.iter().any(|o| !o.crashes.is_empty()) {
        bail!("a fuzz target crashed: turn each crash file above into a unit test, then fix it");
    }
    Ok(())
}

fn host_triple() -> anyhow::Result<String> {
    let output = Command::new("rustc").arg("-vV").output().context("cannot run rustc -vV")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_string).context("rustc -vV names no host triple")
}

fn files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    Ok(std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect())
}

/// The number after `key` on libFuzzer's final-stats line.
fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next().and_then(|n| n.parse().ok()))
}

/// `Done N runs in S second(s)`: S.
fn done_seconds(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.split_once(" runs in "))
        .and_then(|(_, rest)| rest.split_whitespace().next().and_then(|n| n.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_are_read() {
        let log = "#2\tINITED\nDone 123456 runs in 61 second(s)\nstat::number_of_executed_units: 123456\n";
        assert_eq!(stat(log, "stat::number_of_executed_units:"), Some(123_456));
        assert_eq!(done_seconds(log), Some(61));
    }
}
