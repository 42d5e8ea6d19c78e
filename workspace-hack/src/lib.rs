//! The workspace-hack crate (cargo-hakari): no code. Its Cargo.toml gives every crate the features
//! the whole workspace's test build resolves, so smaller builds (`cargo xtask dev`) reuse it.
