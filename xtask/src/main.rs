//! `cargo xtask`: project automation — build the plugins, set up the machine, run the tests.

mod chaos;
mod dev;
mod fuzz;
mod peer;
mod progress;

use std::process::Command;

use anyhow::{Context, bail};
use xtask::{
    HOSTILE, KIT_FIXTURES, KITS, SHIPPED, build_guests, build_kits, fixtures_dir, plugins_dir, workspace_root,
};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  plugins   build every shipped connector for wasm32-wasip2 into target/plugins/, and the Python and
            JavaScript kits (examples/connectors/) as target/plugins/mock-python.wasm and mock-js.wasm
  setup     install what the tests need (wasm32-wasip2 target, Debian packages, the kits' pinned
            componentize-py and npm tools in target/tools/) and build the plugins
  dev       build what running needs (the plugins, the broker, the example app; no test-only packages),
            then run the broker (examples/config-dev.yaml) and the example app on :5555
  test      set up, then run every test (what CI runs)
  bench     build the plugins, run the connector benchmarks and print a summary
            (extra arguments go to criterion, e.g. `cargo xtask bench login_url`);
            `cargo xtask bench --peer`: node-oidc-provider side by side (installs it into
            target/peer with npm; docs/performance.md)
  fuzz      build fuzz/ (libFuzzer, stable Rust) and run each target for a bounded time:
            `cargo xtask fuzz [--seconds N] [TARGET...]` (default 60 s each; targets: config,
            authorize, token, jose, convert); prints executions and crashes per target
  chaos     three replicas on PostgreSQL under load, one killed (SIGKILL) every 10 s, a rolling
            restart halfway: `cargo xtask chaos [--seconds N] [--storage postgres|mysql]` (default
            600 s on PostgreSQL), then SQLite under kill -9; prints the report";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => plugins(),
        Some("setup") => setup(),
        Some("test") => test(&args[1..]),
        Some("bench") if args.get(1).is_some_and(|a| a == "--peer") => peer::run(&workspace_root(), &args[2..]),
        Some("bench") => bench(&args[1..]),
        Some("dev") => dev::run(&workspace_root()),
        Some("fuzz") => fuzz::run(&workspace_root(), &args[1..]),
        Some("chaos") => chaos::run(&workspace_root(), &args[1..]),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn plugins() -> anyhow::Result<()> {
    let root = workspace_root();
    for path in build_guests(&root, SHIPPED, &plugins_dir(&root))? {
        println!("{}", path.display());
    }
    for path in build_kits(&root, KITS, &plugins_dir(&root))? {
        println!("{}", path.display());
    }
    Ok(())
}

/// Debian packages the tests use (the LDAP bridge's slapd, the browser test's Chromium, the
/// servers of the throwaway PostgreSQL and MariaDB the storage tests start when none is reachable),
/// each with a file it installs (`*` = any one folder, PostgreSQL's major version); running the
/// broker needs none of them, so `cargo xtask dev` does not install them.
const PACKAGES: &[(&str, &str)] = &[
    ("slapd", "/usr/sbin/slapd"),
    ("ldap-utils", "/usr/bin/ldapadd"),
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
    ("postgresql", "/usr/lib/postgresql/*/bin/initdb"),
    ("mariadb-server", "/usr/sbin/mariadbd"),
];

/// Whether `pattern` names an existing file; one `*` segment matches any folder there.
fn installed(pattern: &str) -> bool {
    match pattern.split_once("/*/") {
        None => std::path::Path::new(pattern).exists(),
        Some((dir, rest)) => std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(Result::ok).any(|e| e.path().join(rest).exists()))
            .unwrap_or(false),
    }
}

fn setup() -> anyhow::Result<()> {
    install_packages()?;
    ensure_components()?;
    let root = workspace_root();
    build_guests(&root, SHIPPED, &plugins_dir(&root))?;
    build_guests(&root, HOSTILE, &fixtures_dir(&root))?;
    build_kits(&root, KITS, &plugins_dir(&root))?;
    build_kits(&root, KIT_FIXTURES, &fixtures_dir(&root))?;
    Ok(())
}

/// rustfmt and clippy, which `cargo xtask test` runs (a minimal rustup profile lacks them).
fn ensure_components() -> anyhow::Result<()> {
    let have = |tool: &str| Command::new("cargo").args([tool, "--version"]).output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {} with rustup", missing.join(" and "));
    let status = Command::new("rustup").args(["component", "add"]).args(&missing).status();
    if !status.is_ok_and(|s| s.success()) {
        bail!("`rustup component add {}` failed; run it by hand and retry", missing.join(" "));
    }
    Ok(())
}

fn install_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().filter(|(_, file)| !installed(file)).map(|(p, _)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        eprintln!("warning: apt-get not found; install {} by hand", missing.join(" "));
        return Ok(());
    }
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    eprintln!("installing {}", missing.join(" "));
    // slapd must not create a database of its own: the tests run their own slapd.
    let preseed = "slapd slapd/no_configuration boolean true\n";
    let mut debconf = Command::new(sudo.first().copied().unwrap_or("debconf-set-selections"));
    if !sudo.is_empty() {
        debconf.arg("debconf-set-selections");
    }
    let mut child = debconf.stdin(std::process::Stdio::piped()).spawn().context("cannot run debconf-set-selections")?;
    if let Some(stdin) = child.stdin.as_mut() {
        use std::io::Write;
        stdin.write_all(preseed.as_bytes())?;
    }
    child.wait()?;
    let apt = |args: &[&str]| -> anyhow::Result<bool> {
        let mut cmd = Command::new(sudo.first().copied().unwrap_or("apt-get"));
        if !sudo.is_empty() {
            cmd.arg("apt-get");
        }
        Ok(cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive").status()?.success())
    };
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    if !apt(&install)? {
        apt(&["update"])?;
        if !apt(&install)? {
            bail!("apt-get install {} failed", missing.join(" "));
        }
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    setup()?;
    lint()?;
    let status = cargo_command()
        .current_dir(workspace_root())
        // The default members (host, xtask, tests, example-app); guests are built for wasm by
        // the tests' build script.
        .args(["test"])
        .args(extra)
        .status()?;
    if !status.success() {
        bail!("tests failed");
    }
    dev::check_shared_build(&workspace_root())?;
    // The connectors' own unit tests (pure logic: escaping, claim mapping, pagination, config
    // errors) run natively; the guests themselves were built for wasm above.
    let mut guests = cargo_command();
    guests.current_dir(workspace_root()).arg("test");
    for package in GUEST_UNIT_TESTS {
        guests.args(["--package", package]);
    }
    if !guests.status()?.success() {
        bail!("the connectors' unit tests failed");
    }
    let example = cargo_command()
        .current_dir(workspace_root())
        .args([
            "test",
            "--manifest-path",
            "examples/custom-connector/Cargo.toml",
            "--target-dir",
            "target/custom-connector",
        ])
        .status()?;
    if !example.success() {
        bail!("the custom connector example's tests failed");
    }
    chaos::chaos(&workspace_root(), chaos::TEST_SECONDS)
}

/// `cargo fmt --check`, then clippy with warnings as errors over the default members' every
/// target and the guests' native build (the workspace `[lints]` deny unwrap/expect/panic
/// outside tests).
fn lint() -> anyhow::Result<()> {
    let root = workspace_root();
    let fmt = cargo_command().current_dir(&root).args(["fmt", "--all", "--", "--check"]).status()?;
    if !fmt.success() {
        bail!("`cargo fmt --all -- --check` found unformatted code (above): run `cargo fmt --all`");
    }
    let mut clippy = cargo_command();
    clippy.current_dir(&root).args(["clippy", "--quiet", "--all-targets"]);
    for package in ["portcullis", "xtask", "portcullis-tests", "example-app"].iter().chain(GUEST_UNIT_TESTS) {
        clippy.args(["--package", package]);
    }
    if !clippy.args(["--", "-D", "warnings"]).status()?.success() {
        bail!("clippy found problems (above); fix them, or allow one where it is right with a reason");
    }
    Ok(())
}

/// Guest crates whose unit tests run natively in `cargo xtask test`.
const GUEST_UNIT_TESTS: &[&str] = &[
    "portcullis-connector-sdk",
    "portcullis-mock",
    "portcullis-github",
    "portcullis-oidc-core",
    "portcullis-oidc",
    "portcullis-google",
    "portcullis-ldap",
    "portcullis-keystone",
    "portcullis-atlassian-crowd",
    "portcullis-authproxy",
    "portcullis-oauth2-core",
    "portcullis-gitlab",
    "portcullis-microsoft",
    "portcullis-oauth",
    "portcullis-gitea",
    "portcullis-bitbucket-cloud",
    "portcullis-openshift",
    "portcullis-linkedin",
    "portcullis-saml",
    "portcullis-group-gate",
];

/// The benchmarks `bench` summarises: (criterion group/bench id, label in the table).
const BENCHES: &[(&str, &str)] = &[
    ("login_url/wasm_fresh_instance", "login-url, wasm (fresh instance)"),
    ("login_url/native", "login-url, native Rust"),
    ("component/compile", "component compile"),
    ("component/cache_load", "component cache load"),
    ("reload/file_change_to_first_login_url", "reload: file change to new login-url"),
    ("reload/login_url_without_reload", "login-url, no reload (baseline)"),
];

/// The other languages' mock beside the Rust one (`host/benches/connector.rs`, `languages`):
/// (criterion id, label, budget in ns from issue 16).
const LANG_BENCHES: &[(&str, &str, f64)] = &[
    ("login_url/wasm_fresh_instance", "login-url, Rust (fresh instance)", f64::NAN),
    ("login_url/quickjs_fresh_instance", "login-url, QuickJS (fresh instance)", 100e3),
    ("login_url/starlingmonkey_fresh_instance", "login-url, StarlingMonkey (fresh)", 300e3),
    ("login_url/python_fresh_instance", "login-url, CPython (fresh instance)", 500e3),
    // The same calls timed by the bench process's CPU: what a call costs on a busy machine.
    ("login_url/rust_fresh_instance_cpu", "CPU per login-url, Rust", f64::NAN),
    ("login_url/quickjs_fresh_instance_cpu", "CPU per login-url, QuickJS", 100e3),
    ("login_url/starlingmonkey_fresh_instance_cpu", "CPU per login-url, StarlingMonkey", 300e3),
    ("login_url/python_fresh_instance_cpu", "CPU per login-url, CPython", 500e3),
    ("component/cache_load", "cache load, Rust", f64::NAN),
    ("component/cache_load_quickjs", "cache load, QuickJS", 50e6),
    ("component/cache_load_starlingmonkey", "cache load, StarlingMonkey", 50e6),
    ("component/cache_load_python", "cache load, CPython", 50e6),
];

fn bench(extra: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    build_guests(&root, SHIPPED, &plugins_dir(&root))?;
    build_kits(&root, KITS, &plugins_dir(&root))?;
    build_kits(&root, KIT_FIXTURES, &fixtures_dir(&root))?;
    let started = std::time::SystemTime::now();
    let mut cmd = cargo_command();
    cmd.current_dir(&root)
        .args(["bench", "-p", "portcullis", "--bench", "connector", "--bench", "reload", "--bench", "server"])
        .args(["--bench", "policy"])
        .args(["--", "--noplot"])
        .args(extra);
    let status = cmd.status().context("cannot run cargo bench")?;
    if !status.success() {
        bail!("the benchmarks failed");
    }
    let dir = criterion_dir(&root);
    // Median per bench in ns; `None` when this run did not produce it (filtered out).
    let medians: Vec<Option<f64>> =
        BENCHES.iter().map(|(id, _)| median_ns(&dir, id, started)).collect::<anyhow::Result<_>>()?;
    let [wasm, native, compile, cache_load, reload, reload_baseline] = medians[..] else {
        bail!("BENCHES has six entries")
    };
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
    let login_ratio = ratio(wasm, native);
    let compile_ratio = ratio(compile, cache_load);

    println!();
    println!("{:<34} {:>14}  {:>16}", "benchmark", "median", "ratio");
    for (i, ((_, label), median)) in BENCHES.iter().zip(&medians).enumerate() {
        let ratio = match i {
            0 => login_ratio.map(|r| format!("{r:.1}x native")),
            2 => compile_ratio.map(|r| format!("{r:.1}x cache")),
            4 => ratio(reload, reload_baseline).map(|r| format!("{r:.0}x baseline")),
            _ => None,
        };
        let median = median.map_or_else(|| "(not run)".to_string(), human);
        println!("{label:<34} {median:>14}  {:>16}", ratio.unwrap_or_default());
    }
    // Written by hand so the keys keep this order (serde_json's map would sort them).
    let num = |v: Option<f64>| serde_json::Value::from(v).to_string();
    let ms = |ns: Option<f64>| num(ns.map(|ns| ns / 1e6));
    // The whole-server figures (`host/benches/server.rs`), when this run produced them.
    let server = server_figures(&root, started);
    if let Some(map) = &server {
        println!();
        println!("{:<34} {:>14}", "server (see the table above)", "figure");
        for (key, value) in map {
            println!("{key:<34} {:>14}", value.as_f64().map_or_else(|| value.to_string(), |v| format!("{v:.2}")));
        }
    }
    let server = server.map(|m| m.iter().map(|(k, v)| format!(",\"{k}\":{v}")).collect::<String>()).unwrap_or_default();
    let summary = format!(
        "{{\"login_url_wasm_ns\":{},\"login_url_native_ns\":{},\"ratio\":{},\"compile_ms\":{},\"cache_load_ms\":{},\"compile_vs_cache_ratio\":{},\"reload_ms\":{},\"reload_baseline_login_url_ns\":{}{server}}}",
        num(wasm),
        num(native),
        num(login_ratio),
        ms(compile),
        ms(cache_load),
        num(compile_ratio),
        ms(reload),
        num(reload_baseline),
    );
    println!("{summary}");
    lang_table(&root, &dir, started)?;
    Ok(())
}

/// The languages table: each figure beside the Rust mock's from the same run and its budget,
/// and the resident memory with one Python and one JS connector loaded.
fn lang_table(root: &std::path::Path, dir: &std::path::Path, started: std::time::SystemTime) -> anyhow::Result<()> {
    println!();
    println!("{:<38} {:>12}  {:>12}  {:>8}", "languages (same run)", "median", "budget", "");
    for (id, label, budget) in LANG_BENCHES {
        let median = median_ns(dir, id, started)?;
        let verdict = match median {
            Some(m) if !budget.is_nan() => {
                if m <= *budget {
                    "ok"
                } else {
                    "OVER"
                }
            }
            _ => "",
        };
        let budget = if budget.is_nan() { "-".to_string() } else { human(*budget) };
        println!(
            "{label:<38} {:>12}  {budget:>12}  {verdict:>8}",
            median.map_or_else(|| "(not run)".to_string(), human)
        );
    }
    let path = root.join("target").join("bench").join("lang.json");
    let fresh = std::fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t >= started);
    if fresh {
        let figures: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let rss = figures["rss_python_and_js_loaded_mib"].as_f64().unwrap_or(f64::NAN);
        println!("{:<38} {:>9.1} MiB  {:>12}", "RSS of the bench process, both loaded", rss, "-");
        println!("{figures}");
    }
    // The budget is the broker's: the real binary with one Python and one JS connector, after
    // logins through both (`host/benches/server.rs`).
    if let Some(rss) = server_figures(root, started).and_then(|m| m.get("rss_python_js_broker_mib")?.as_f64()) {
        let verdict = if rss <= 150.0 { "ok" } else { "OVER" };
        println!("{:<38} {:>9.1} MiB  {:>8} MiB  {verdict:>8}", "RSS, broker with Python + JS", rss, 150);
    }
    Ok(())
}

/// `target/bench/server.json`, if the server bench wrote it during this run.
fn server_figures(
    root: &std::path::Path,
    since: std::time::SystemTime,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let path = root.join("target").join("bench").join("server.json");
    let fresh = std::fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
    if !fresh {
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// A `cargo` command without the package variables `cargo run` gave xtask itself: build
/// scripts that watch them (ring's does) would otherwise rebuild, with everything above them,
/// whenever a plain cargo command ran in between.
pub(crate) fn cargo_command() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let run_only = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"];
        if run_only.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(&*key);
        }
    }
    cmd
}

/// Where criterion writes its results: `$CRITERION_HOME`, else `<target dir>/criterion`.
fn criterion_dir(root: &std::path::Path) -> std::path::PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |t| root.join(t));
    target.join("criterion")
}

/// The median point estimate (ns) criterion wrote for `id` during this run, if it ran.
fn median_ns(dir: &std::path::Path, id: &str, since: std::time::SystemTime) -> anyhow::Result<Option<f64>> {
    let path = dir.join(id).join("new").join("estimates.json");
    let Ok(meta) = std::fs::metadata(&path) else { return Ok(None) };
    if meta.modified().is_ok_and(|m| m < since) {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let estimates: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
    let median = estimates["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("{} has no median.point_estimate", path.display()))?;
    Ok(Some(median))
}

/// `ns` with a readable unit.
fn human(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.1} ns"),
    }
}
