//! The broker's YAML config, shaped like Dex's: load, `$VAR` expansion, validation. Every
//! error names the file, the key path and what to write instead.

mod expand;
pub mod frontend;
mod limits;
mod model;
mod policies;
pub mod stored;
mod validate;

use std::path::{Path, PathBuf};

pub use limits::{MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH};
pub use model::*;
pub use validate::{
    CONNECTOR_GRANTS, CONTINUE_ON_CONNECTOR_FAILURE, Client, ConnectorEntry, Expiry, GrantType, REDIRECT_OOB,
    RefreshExpiry, RefreshTokenLifetime, SESSION_COOKIE, Sessions, SigningAlgorithm, StaticPassword, Validated,
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
        // Before the parser too: a template is often not YAML at all, and where it is, its
        // actions would be taken literally (a client secret of `{{ .Env.SECRET }}`).
        if let Some(line) = go_template_line(text) {
            return Err(fail(format!(
                "line {line} is a Go template action (`{{{{ … }}}}`): Dex's Docker image renders its config with \
                 gomplate before `dex serve`, and Portcullis reads the file as it is. Render it first \
                 (`gomplate -f <file> -o config.yaml`), or write `$VAR` where the template reads an environment \
                 variable (`getenv \"VAR\"`, `.Env.VAR`): Portcullis expands those itself"
            )));
        }
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| fail(format!("not valid YAML: {e}")))?;
        // Dex's `DEX_EXPAND_ENV=false` turns expansion off (a `$` in an LDAP password).
        let expand_env = validate::dex_flag(
            env,
            "DEX_EXPAND_ENV",
            true,
            "$VAR in config values is expanded",
            "every value is taken literally",
        )
        .map_err(fail)?;
        if expand_env {
            expand::expand(&mut value, "", env).map_err(fail)?;
        }
        let all = |errors: Vec<String>| match errors.as_slice() {
            [one] => fail(one.clone()),
            all => fail(format!("{} problems:\n  {}", all.len(), all.join("\n  "))),
        };
        let config = deserialize_all(value).map_err(all)?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut validated = validate::validate(config, base, env).map_err(all)?;
        validated.source = file.to_path_buf();
        validated.sha256 = crate::connectors::loader::sha256_hex(text.as_bytes());
        Ok(validated)
    }
}

/// The first line (1-based) holding a Go template action of the kind Dex's gomplate-rendered
/// configs use: `{{ getenv … }}`, `{{ .Env.… }}`, a comment `{{/* … */}}`, or control
/// (`if`, `range`, `with`, `end`, `else`), with or without `-` trimming.
/// A Jinja expression such as a policy's `{{ email }}` or `{{ endpoint }}` is not one.
fn go_template_line(text: &str) -> Option<usize> {
    const PREFIXES: &[&str] = &["getenv ", "env.Getenv ", ".Env.", "/*"];
    const KEYWORDS: &[&str] = &["if", "range", "with", "end", "else"];
    let is_action = |action: &str| {
        PREFIXES.iter().any(|p| action.starts_with(p))
            || KEYWORDS.iter().any(|k| {
                action
                    .strip_prefix(k)
                    .and_then(|rest| rest.chars().next())
                    .is_some_and(|c| c.is_whitespace() || c == '-' || c == '}')
            })
    };
    text.lines()
        .position(|line| {
            line.match_indices("{{").any(|(at, _)| {
                is_action(line[at + 2..].trim_start_matches('-').trim_start()) && line[at..].contains("}}")
            })
        })
        .map(|i| i + 1)
}

/// At most this many unknown or ill-typed keys are reported from one file.
const MAX_KEY_ERRORS: usize = 50;

/// Deserializes `value`, or reports every unknown or ill-typed key in it (up to
/// [`MAX_KEY_ERRORS`]), each as `path: what serde expected`. serde stops at the first error, so
/// each error's key is recorded, removed from the document, and the rest read again. It stops
/// early where removing cannot help: a missing field (including a required key just removed for
/// its bad value), a bad list item (removing it would renumber the items after it) or a key
/// inside an enum.
fn deserialize_all(value: serde_yaml::Value) -> Result<Config, Vec<String>> {
    deserialize_each(value).map_err(|mut errors| {
        if let Some(first) = errors.iter_mut().find(|e| e.contains(": unknown field `")) {
            first.push_str(UNKNOWN_KEY_NOTE);
        }
        for error in errors.iter_mut().filter(|e| e.starts_with("storage")) {
            if error.contains("unknown variant `kubernetes`") {
                *error = KUBERNETES_STORAGE.into();
            } else if error.contains("unknown variant `etcd`") {
                *error = ETCD_STORAGE.into();
            }
        }
        errors
    })
}

/// Dex's two storages that are not ours, said as what they are rather than as a typo.
const KUBERNETES_STORAGE: &str = "storage.type: kubernetes (Dex's custom resources) is not a storage \
    of Portcullis: write postgres or mysql (one database for every replica) or sqlite3; `portcullis \
    import-dex DEX_CONFIG --into THIS_CONFIG --kubernetes-dump DUMP` brings Dex's clients, passwords, \
    connectors, refresh tokens and keys over from a `kubectl get … -o yaml` dump \
    (docs/migrating-from-dex.md)";
const ETCD_STORAGE: &str = "storage.type: etcd is not a storage of Portcullis: write postgres or mysql \
    (one database for every replica) or sqlite3 (docs/migrating-from-dex.md; Dex's etcd data cannot be \
    imported)";

/// Said once, after the first unknown key: the difference from Dex, why, and what to do.
const UNKNOWN_KEY_NOTE: &str = " (Dex ignores a key it does not know, unless \
    DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=true; Portcullis always refuses one, so that a misspelt key \
    cannot leave its default in force unseen: correct it to one of the keys listed, or delete it)";

/// [`deserialize_all`]'s loop, without the note.
fn deserialize_each(mut value: serde_yaml::Value) -> Result<Config, Vec<String>> {
    let mut errors = Vec::new();
    let mut removed = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            Ok(config) if errors.is_empty() => return Ok(config),
            Ok(_) => return Err(errors),
            Err(e) => e,
        };
        let path = error.path().clone();
        let shown = match path.to_string() {
            p if p == "." => "(top level)".to_string(),
            p => p,
        };
        let message = error.into_inner().to_string();
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            // A required key removed for its own error is missing now: that is no news.
            let full = if path.iter().next().is_none() { field.to_string() } else { format!("{shown}.{field}") };
            if !removed.contains(&full) {
                errors.push(format!("{shown}: {message}"));
            }
            return Err(errors);
        }
        errors.push(format!("{shown}: {message}"));
        if errors.len() >= MAX_KEY_ERRORS || !remove_key(&mut value, &path) {
            return Err(errors);
        }
        removed.push(shown);
    }
}

/// Removes the mapping key at `path` from `value`; false when `path` does not end in one.
fn remove_key(value: &mut serde_yaml::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else { return false };
    let mut at = value;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Seq { index } => at.get_mut(*index),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    // Shifting, not swapping, keeps the document's order, so errors come in the order written.
    at.as_mapping_mut().and_then(|m| m.shift_remove(key.as_str())).is_some()
}

#[cfg(test)]
mod template_tests {
    use super::go_template_line;

    #[test]
    fn go_template_actions_are_found_and_jinja_expressions_are_not() {
        assert_eq!(go_template_line("a: 1\nissuer: {{ getenv \"X\" \"d\" }}\n"), Some(2));
        assert_eq!(go_template_line("{{- /* note */ -}}\na: 1"), Some(1));
        assert_eq!(go_template_line("secret: \"{{ .Env.SECRET }}\""), Some(1));
        assert_eq!(go_template_line("{{- if .Env.X }}\nx: 1\n{{ end }}"), Some(1));
        assert_eq!(go_template_line("{{end}}"), Some(1));
        for jinja in ["contact: \"{{ email }}\"", "u: \"{{ endpoint }}\"", "x: \"{{ ifname }}\"", "y: '{{'"] {
            assert_eq!(go_template_line(jinja), None, "{jinja}");
        }
    }
}
