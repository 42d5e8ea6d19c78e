//! Progress a person can follow: a line per step with what it does and how long it took, a
//! count of crates built of crates to build while cargo works, and a summary at the end.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Numbered steps and their times.
pub struct Steps {
    started: Instant,
    total: usize,
    done: Vec<(String, Duration)>,
}

impl Steps {
    pub fn new(total: usize) -> Self {
        Self { started: Instant::now(), total, done: Vec::new() }
    }

    /// Runs one step: announces it, times it, and says how it ended.
    pub fn run<T>(&mut self, what: &str, step: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let n = self.done.len() + 1;
        println!("[{n}/{}] {what} ...", self.total);
        let began = Instant::now();
        let result = step();
        let took = began.elapsed();
        match &result {
            Ok(_) => println!("[{n}/{}] {what}: done in {}", self.total, human(took)),
            Err(_) => println!("[{n}/{}] {what}: FAILED after {}", self.total, human(took)),
        }
        self.done.push((what.to_string(), took));
        result
    }

    /// One line with the total and each step's share.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.done.iter().map(|(what, took)| format!("{what} {}", human(*took))).collect();
        format!("total {} ({})", human(self.started.elapsed()), parts.join(", "))
    }
}

/// `1m 05s`, `12.3 s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 { format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60) } else { format!("{secs:.1} s") }
}

/// Runs `cargo build` (`cmd`, with its arguments) printing `built/to build crates` as it goes
/// instead of cargo's `Compiling` lines; warnings and errors still reach the terminal.
/// `packages` and `target` name what is built, to count the crates up front.
pub fn cargo_build(mut cmd: Command, root: &Path, packages: &[&str], target: Option<&str>) -> anyhow::Result<()> {
    let total = crates_to_build(root, packages, target).unwrap_or(0);
    cmd.args(["--quiet", "--message-format=json-render-diagnostics"]).stdout(Stdio::piped());
    let mut child = cmd.spawn().context("cannot run cargo")?;
    let stdout = child.stdout.take().context("no stdout from cargo")?;
    let tty = std::io::stdout().is_terminal();
    let began = Instant::now();
    let mut built: HashSet<String> = HashSet::new();
    let mut last_line = Instant::now();
    let mut last_tenth = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let build_script = message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "custom-build"));
        if build_script {
            continue;
        }
        built.insert(message["package_id"].as_str().unwrap_or_default().to_string());
        let count = built.len();
        let shown = if total > 0 { format!("{}/{total} crates", count.min(total)) } else { format!("{count} crates") };
        if tty {
            print!("\r      {shown}, {}   ", human(began.elapsed()));
            let _ = std::io::stdout().flush();
        } else {
            // In a log: a line per tenth of the way (at most one each 5 s), or every 30 s.
            let tenth = (count * 10).checked_div(total).unwrap_or(0);
            let since = last_line.elapsed();
            if tenth > last_tenth && since > Duration::from_secs(5) || since > Duration::from_secs(30) {
                println!("      {shown}, {}", human(began.elapsed()));
                last_tenth = tenth;
                last_line = Instant::now();
            }
        }
    }
    if tty {
        println!();
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed (see its errors above)");
    }
    Ok(())
}

/// How many crates `cargo build -p <packages>` compiles at most: the packages reachable from
/// them through normal and build dependencies, from `cargo metadata` (crates already built
/// count too: cargo reports them as fresh).
fn crates_to_build(root: &Path, packages: &[&str], target: Option<&str>) -> anyhow::Result<usize> {
    let mut cmd = crate::cargo_command();
    cmd.current_dir(root).args(["metadata", "--format-version", "1"]);
    let host;
    let platform = match target {
        Some(t) => t,
        None => {
            host = host_triple()?;
            &host
        }
    };
    cmd.args(["--filter-platform", platform]);
    let output = cmd.output().context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed");
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut todo: Vec<&str> = names.iter().filter(|(_, name)| packages.contains(name)).map(|(id, _)| *id).collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = nodes.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let wanted = dep["dep_kinds"].as_array().into_iter().flatten().any(|k| k["kind"] != "dev");
            if wanted && let Some(pkg) = dep["pkg"].as_str() {
                todo.push(pkg);
            }
        }
    }
    Ok(seen.len())
}

fn host_triple() -> anyhow::Result<String> {
    let output = Command::new("rustc").arg("-vV").output().context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host")
}

/// Runs a `cargo build` command and returns the units it had to compile (none when everything
/// it needs was already built, with the same features), leaving out binaries if `skip_bins`.
pub fn compiled_units(mut cmd: Command, skip_bins: bool) -> anyhow::Result<Vec<String>> {
    let output = cmd.args(["--message-format=json"]).stderr(Stdio::inherit()).output().context("cannot run cargo")?;
    if !output.status.success() {
        bail!("cargo build failed");
    }
    let mut compiled = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let bin = message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
        if message["reason"] == "compiler-artifact" && message["fresh"] == false && !(skip_bins && bin) {
            compiled.push(format!(
                "{} ({})",
                message["package_id"].as_str().unwrap_or_default(),
                message["target"]["name"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(compiled)
}
