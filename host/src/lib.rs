//! Portcullis: a federated OpenID Connect provider whose upstream connectors are sandboxed
//! WebAssembly components.
//!
//! See `docs/ARCHITECTURE.md` for the code map and the invariants the modules keep.

pub mod connectors;
