//! The Python and JavaScript connector kits (`examples/connectors/`): their pinned toolchains,
//! installed into `target/tools/` from PyPI and npm, and their builds into `target/plugins/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// componentize-py, pinned (examples/connectors/python/requirements.txt names the same).
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// The WIT the kits build against: the contract the Rust connectors use.
pub const KIT_WIT: &str = "wit/0.3.0";

/// The componentizer a build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// componentize-py (CPython).
    Python,
    /// componentize-qjs (QuickJS), what `jco componentize --backend quickjs` runs: the JS kit's default.
    QuickJs,
    /// componentize-js (StarlingMonkey, SpiderMonkey), default features (`fetch` over wasi:http).
    StarlingMonkey,
}

/// One build: the folder (from the workspace root), the entry (module or file) in it, every
/// source it reads, the tool, the WIT (from the root) and the file name it lands as.
pub struct KitBuild {
    pub dir: &'static str,
    pub wit: &'static str,
    pub entry: &'static str,
    pub sources: &'static [&'static str],
    pub tool: Tool,
    pub name: &'static str,
    /// Extra arguments to the tool.
    pub flags: &'static [&'static str],
}

/// The JS kit's QuickJS build: the non-async runtime (`--sync`). Our imports are synchronous,
/// and a fresh instance of the sync runtime cost about a fifth less CPU per call than the
/// async default in one run here (docs/writing-connectors.md); the async default is still
/// accepted and still tested (the hostile and extra-import fixtures).
const QUICKJS_KIT_FLAGS: &[&str] = &["--sync"];

/// The kits `cargo xtask plugins` builds: `target/plugins/mock-python.wasm`, `mock-js.wasm`, and
/// the example policy `email-domain-js.wasm`.
pub const KITS: &[KitBuild] = &[
    KitBuild {
        dir: "examples/connectors/python",
        wit: KIT_WIT,
        entry: "app",
        sources: &["app.py", "portcullis.py"],
        tool: Tool::Python,
        name: "mock-python",
        flags: &[],
    },
    KitBuild {
        dir: "examples/connectors/js",
        wit: KIT_WIT,
        entry: "mock.js",
        sources: &["mock.js", "portcullis.js"],
        tool: Tool::QuickJs,
        name: "mock-js",
        flags: QUICKJS_KIT_FLAGS,
    },
    // The example policy (portcullis:policy@0.1.0), on the JavaScript kit's helper.
    KitBuild {
        dir: "examples/policies/js",
        wit: "wit/policy/0.1.0",
        entry: "email-domain.js",
        sources: &["email-domain.js", "../../connectors/js/portcullis.js"],
        tool: Tool::QuickJs,
        name: "email-domain-js",
        flags: QUICKJS_KIT_FLAGS,
    },
];

/// Test fixtures built with the kits' tools (`target/plugins/test/`): the JS mock on the other
/// engine, for the benchmark and the tests, and hostile connectors per language (a trap, a
/// denied host through the `http` import and, for StarlingMonkey, through `fetch`), and one
/// importing what the broker does not provide.
pub const KIT_FIXTURES: &[KitBuild] = &[
    KitBuild {
        dir: "examples/connectors/js",
        wit: KIT_WIT,
        entry: "mock.js",
        sources: &["mock.js", "portcullis.js"],
        tool: Tool::StarlingMonkey,
        name: "mock-js-starlingmonkey",
        flags: &[],
    },
    KitBuild {
        dir: "tests/lang-plugins",
        wit: KIT_WIT,
        entry: "hostile",
        sources: &["hostile.py"],
        tool: Tool::Python,
        name: "hostile-python",
        flags: &[],
    },
    KitBuild {
        dir: "tests/lang-plugins",
        wit: KIT_WIT,
        entry: "hostile.js",
        sources: &["hostile.js"],
        tool: Tool::QuickJs,
        name: "hostile-js",
        flags: &[],
    },
    KitBuild {
        dir: "tests/lang-plugins",
        wit: KIT_WIT,
        entry: "hostile.js",
        sources: &["hostile.js"],
        tool: Tool::StarlingMonkey,
        name: "hostile-js-starlingmonkey",
        flags: &[],
    },
    // Its world adds an import the broker does not provide: refused at load, naming it.
    KitBuild {
        dir: "tests/lang-plugins/extra-import",
        wit: "tests/lang-plugins/extra-import",
        entry: "extra-import.js",
        sources: &["extra-import.js", "world.wit"],
        tool: Tool::QuickJs,
        name: "extra-import-js",
        flags: &[],
    },
];

/// Where the kits' tools live: `target/tools/python` (a venv) and `target/tools/js` (node_modules).
pub fn tools_dir(root: &Path) -> PathBuf {
    root.join("target").join("tools")
}

fn componentize_py(root: &Path) -> PathBuf {
    tools_dir(root).join("python").join("bin").join("componentize-py")
}

fn node_bin(root: &Path, tool: &str) -> PathBuf {
    tools_dir(root).join("js").join("node_modules").join(".bin").join(tool)
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed (see its output above)");
    }
    Ok(())
}

/// Installs the pinned tools when they are missing: a Python venv with componentize-py, and
/// `npm ci` of examples/connectors/js's lock file (componentize-js, jco and the QuickJS
/// componentizer it pins). Needs `python3` (with venv) and `npm` on the PATH.
pub fn ensure_kit_tools(root: &Path) -> anyhow::Result<()> {
    let tools = tools_dir(root);
    if !componentize_py(root).exists() {
        let venv = tools.join("python");
        eprintln!("installing {COMPONENTIZE_PY} into {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv (install python3-venv)")?;
        run(
            Command::new(venv.join("bin").join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                COMPONENTIZE_PY,
            ]),
            &format!("pip install {COMPONENTIZE_PY}"),
        )?;
    }
    let js = tools.join("js");
    let lock = root.join("examples/connectors/js/package-lock.json");
    let installed_lock = js.join("package-lock.json");
    let current = std::fs::read(&lock).with_context(|| format!("cannot read {}", lock.display()))?;
    let up_to_date = std::fs::read(&installed_lock).ok().as_deref() == Some(current.as_slice());
    if !up_to_date || !node_bin(root, "componentize-qjs").exists() || !node_bin(root, "componentize-js").exists() {
        eprintln!("installing the JavaScript kit's tools (npm ci) into {}", js.display());
        std::fs::create_dir_all(&js).with_context(|| format!("cannot create {}", js.display()))?;
        std::fs::copy(root.join("examples/connectors/js/package.json"), js.join("package.json"))?;
        std::fs::write(&installed_lock, &current)?;
        run(
            Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&js),
            "npm ci (install Node.js 20 and npm)",
        )?;
    }
    Ok(())
}

/// The command that builds `kit` into `out` (the README's build command, with our paths).
fn build_command(root: &Path, kit: &KitBuild, out: &Path) -> Command {
    let wit = root.join(kit.wit);
    let mut cmd;
    match kit.tool {
        Tool::Python => {
            cmd = Command::new(componentize_py(root));
            cmd.arg("-d").arg(&wit).args(["-w", "plugin", "componentize", kit.entry, "-o"]).arg(out);
        }
        Tool::QuickJs => {
            cmd = Command::new(node_bin(root, "componentize-qjs"));
            cmd.arg("--wit").arg(&wit).args(["--world", "plugin", "--js", kit.entry, "-o"]).arg(out);
            // Imports may reach the kit's helper in a sibling folder (examples/policies/js uses
            // examples/connectors/js/portcullis.js).
            cmd.arg("--module-root").arg(root);
        }
        Tool::StarlingMonkey => {
            cmd = Command::new(node_bin(root, "componentize-js"));
            cmd.arg(kit.entry).arg("--wit").arg(&wit).args(["--world-name", "plugin", "-o"]).arg(out);
        }
    }
    cmd.args(kit.flags);
    cmd.current_dir(root.join(kit.dir));
    cmd
}

/// Builds `builds` into `out/<name>.wasm`, skipping one whose output is newer than its sources
/// and the contract's WIT.
pub fn build_kits(root: &Path, builds: &[KitBuild], out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    ensure_kit_tools(root)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for kit in builds {
        let to = out.join(format!("{}.wasm", kit.name));
        let inputs: Vec<PathBuf> = kit
            .sources
            .iter()
            .map(|s| root.join(kit.dir).join(s))
            .chain([root.join(KIT_WIT).join("connector.wit")])
            .collect();
        if !is_fresh(&to, &inputs) {
            let tmp = to.with_extension("wasm.tmp");
            run(&mut build_command(root, kit, &tmp), &format!("building {} ({})", kit.name, kit.dir))?;
            std::fs::rename(&tmp, &to).with_context(|| format!("cannot write {}", to.display()))?;
        }
        written.push(to);
    }
    Ok(written)
}

/// Whether `output` exists and is newer than every input.
fn is_fresh(output: &Path, inputs: &[PathBuf]) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(output) else { return false };
    inputs.iter().all(|input| modified(input).is_some_and(|m| m <= built))
}
