//! The broker's YAML config, shaped like Dex's: load, `$VAR` expansion, validation. Every
//! error names the file, the key path and what to write instead.

mod expand;
pub mod frontend;
mod limits;
mod model;
mod validate;

use std::path::{Path, PathBuf};

pub use limits::{MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH};
pub use model::*;
pub use validate::{
    CONTINUE_ON_CONNECTOR_FAILURE, Client, ConnectorEntry, Expiry, GrantType, REDIRECT_OOB, RefreshExpiry,
    RefreshTokenLifetime, SESSION_COOKIE, Sessions, SigningAlgorithm, StaticPassword, Validated,
};

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

impl Config {
    /// Reads, expands (from the process environment) and validates `path`.
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        Self::from_text(path, &Self::read(path)?)
    }

    /// The text of the config file at `path`.
    /// Refuses a file over [`MAX_CONFIG_BYTES`] without reading it whole.
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        use std::io::Read as _;
        let fail = |message: String| ConfigError { file: path.into(), message };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read the config file: {e}")))?;
        let mut text = String::new();
        let cap = MAX_CONFIG_BYTES as u64;
        let read = file.take(cap + 1).read_to_string(&mut text);
        read.map_err(|e| fail(format!("cannot read the config file: {e}")))?;
        if text.len() as u64 > cap {
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(cap + 1);
            return Err(fail(limits::too_large(len)));
        }
        Ok(text)
    }

    /// Parses `text`, read from `path`, expanding variables from the process environment.
    pub fn from_text(path: &Path, text: &str) -> Result<Validated, ConfigError> {
        Self::from_yaml(path, text, &|name| std::env::var(name).ok())
    }

    /// Parses `text` as if read from `file`, expanding variables with `env`.
    pub fn from_yaml(file: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Validated, ConfigError> {
        let fail = |message: String| ConfigError { file: file.into(), message };
        // Before the parser: a deeply nested document takes it seconds to reject.
        limits::check(text).map_err(fail)?;
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| fail(format!("not valid YAML: {e}")))?;
        expand::expand(&mut value, "", env).map_err(fail)?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { "(top level)".to_string() } else { path };
            fail(format!("{path}: {}", e.into_inner()))
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut validated = validate::validate(config, base, env).map_err(fail)?;
        validated.source = file.to_path_buf();
        validated.sha256 = crate::connectors::loader::sha256_hex(text.as_bytes());
        Ok(validated)
    }
}
