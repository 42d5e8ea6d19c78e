//! `cargo xtask`: project automation — build the plugins, set up the machine, run the tests.

use std::process::Command;

use anyhow::{Context, bail};
use xtask::{HOSTILE, SHIPPED, build_guests, fixtures_dir, plugins_dir, workspace_root};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  plugins   build every shipped connector for wasm32-wasip2 into target/plugins/
  setup     install what the tests need (wasm32-wasip2 target, Debian packages) and build the plugins
  test      set up, then run every test (what CI runs)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => plugins(),
        Some("setup") => setup(),
        Some("test") => test(&args[1..]),
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
    Ok(())
}

/// Debian packages the tests use (the LDAP bridge's slapd, the browser test's Chromium).
const PACKAGES: &[(&str, &str)] = &[
    ("slapd", "/usr/sbin/slapd"),
    ("ldap-utils", "/usr/bin/ldapadd"),
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
];

fn setup() -> anyhow::Result<()> {
    install_packages()?;
    let root = workspace_root();
    build_guests(&root, SHIPPED, &plugins_dir(&root))?;
    build_guests(&root, HOSTILE, &fixtures_dir(&root))?;
    Ok(())
}

fn install_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> =
        PACKAGES.iter().filter(|(_, file)| !std::path::Path::new(file).exists()).map(|(p, _)| *p).collect();
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["test", "--workspace", "--exclude", "portcullis-connector-sdk", "--exclude", "portcullis-mock"])
        .args(HOSTILE.iter().flat_map(|(p, _)| ["--exclude", p]))
        .args(extra)
        .status()?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}
