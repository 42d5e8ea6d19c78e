//! Builds the shipped plugins and the hostile fixtures for wasm32-wasip2, and the Python and
//! JavaScript kits with their pinned tools, before the tests compile, so `cargo test` from a
//! clean clone has real components to load.

fn main() {
    let root = xtask::workspace_root();
    for dir in [
        "wit",
        "plugins",
        "tests/plugins",
        "tests/lang-plugins",
        "examples/connectors/python",
        "examples/connectors/js",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    // The tutorial connector: its sources, not its own `target/` (a reader may build there).
    for file in ["Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo:rerun-if-changed={}", root.join(xtask::EXAMPLE_CONNECTOR).join(file).display());
    }
    let shipped = xtask::plugins_dir(&root);
    let fixtures = xtask::fixtures_dir(&root);
    if let Err(e) = xtask::build_guests(&root, xtask::SHIPPED, &shipped)
        .and_then(|_| xtask::build_guests(&root, xtask::HOSTILE, &fixtures))
        .and_then(|_| xtask::build_example_connector(&root, &fixtures))
        .and_then(|_| xtask::build_kits(&root, xtask::KITS, &shipped))
        .and_then(|_| xtask::build_kits(&root, xtask::KIT_FIXTURES, &fixtures))
    {
        panic!("cannot build the WebAssembly plugins the tests need: {e:#}");
    }
    println!("cargo:rustc-env=PORTCULLIS_PLUGINS={}", shipped.display());
    println!("cargo:rustc-env=PORTCULLIS_FIXTURES={}", fixtures.display());
    println!("cargo:rustc-env=PORTCULLIS_ROOT={}", root.display());
}
