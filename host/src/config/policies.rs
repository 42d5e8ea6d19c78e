//! The `policies:` list: each entry resolved to its plugin file and checked (id, type or plugin,
//! limits), into the `PolicySpec`s the generation loads in list order.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::model::PolicyConfig;
use crate::connectors::Limits;
use crate::connectors::policy::PolicySpec;

/// Resolves policy entries to their plugins; a `type:` is looked for as `<type>.wasm` in `dirs`.
/// Unlike a connector's, a policy's missing file fails the config: a rule that cannot be loaded
/// must not be silently left out.
pub(super) fn policies(list: &[PolicyConfig], base: &Path, dirs: &[PathBuf]) -> Result<Vec<PolicySpec>, String> {
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for (i, pc) in list.iter().enumerate() {
        let at = format!("policies[{i}]");
        let valid_id =
            !pc.id.is_empty() && pc.id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !valid_id {
            return Err(format!(
                "{at}.id: {:?} must be letters, digits, '-' or '_' (it appears in logs and metrics)",
                pc.id
            ));
        }
        if !ids.insert(pc.id.clone()) {
            return Err(format!("{at}.id: {:?} is used twice; policy ids must be unique", pc.id));
        }
        let plugin = match (&pc.kind, &pc.plugin) {
            (Some(_), Some(_)) => return Err(format!("{at}: give type or plugin, not both")),
            (None, None) => {
                return Err(format!(
                    "{at}: give type (a shipped policy such as group-gate) or plugin (a path to a .wasm file)"
                ));
            }
            (None, Some(path)) => {
                let file = base.join(path);
                if !file.is_file() {
                    return Err(format!(
                        "{at}.plugin: {} does not exist; build or copy the policy there, or correct the path",
                        file.display()
                    ));
                }
                file
            }
            (Some(kind), None) => {
                let file = format!("{kind}.wasm");
                match dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()) {
                    Some(found) => found,
                    None => {
                        let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                        return Err(format!(
                            "{at}.type: no policy {file} in {}; run `cargo xtask plugins`, set plugins.dir, or give plugin: <path>",
                            looked.join(", ")
                        ));
                    }
                }
            }
        };
        Limits::from_config(&pc.limits).map_err(|e| format!("{at}.{e}"))?;
        for (key, list) in [("clients", &pc.clients), ("connectors", &pc.connectors)] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!(
                    "{at}.{key}: an empty list would apply the policy to nothing; remove the key to apply it to every one"
                ));
            }
        }
        out.push(PolicySpec {
            id: pc.id.clone(),
            plugin,
            sha256: pc.sha256.clone(),
            allowed_hosts: pc.allowed_hosts.clone(),
            limits: pc.limits.clone(),
            clients: pc.clients.clone(),
            connectors: pc.connectors.clone(),
            on_error: pc.on_error,
            config: serde_json::Value::Object(pc.config.clone().into_iter().collect()),
        });
    }
    Ok(out)
}
