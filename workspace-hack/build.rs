//! A build script, so cargo applies the crate's build-dependencies (host-side features) too.
fn main() {}
