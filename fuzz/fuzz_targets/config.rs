//! Config YAML → `Validated`: any text is refused with an error or accepted, never a panic or a
//! hang (the size and nesting caps run first).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let env = |name: &str| (name == "SECRET").then(|| "from-env".to_string());
    let _ = portcullis::config::Config::from_yaml(std::path::Path::new("fuzz.yaml"), text, &env);
});
