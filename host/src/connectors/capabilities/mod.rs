//! Host capabilities a connector may be granted — one module each, so "where is X enforced?"
//! has one answer: `allowlist` (what may be reached), `http`, `ldap`, `jose`, `log`, and
//! `stderr` (the guest's output).

pub mod allowlist;
pub(crate) mod http;
pub(crate) mod jose;
pub(crate) mod ldap;
mod log;
pub(crate) mod stderr;

use std::sync::Arc;

use allowlist::Allowlist;

use super::limits::Limits;

/// What the operator granted one connector: reachable hosts, limits, and the HTTP client
/// built to enforce them.
#[derive(Debug)]
pub struct Grants {
    pub(crate) allowlist: Arc<Allowlist>,
    pub(crate) limits: Limits,
    pub(crate) http: reqwest::Client,
}

impl Grants {
    pub fn new(allowlist: Allowlist, limits: Limits) -> Result<Self, String> {
        let allowlist = Arc::new(allowlist);
        let http = http::client(allowlist.clone())?;
        Ok(Self { allowlist, limits, http })
    }
}
