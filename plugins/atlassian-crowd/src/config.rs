//! The connector's `config` block (Dex's Crowd keys) and its validation into [`Settings`], the
//! checked form every call works from.

use portcullis_connector_sdk::{ConnectorError, config};
use serde::Deserialize;

/// The `config` block, with Dex's key names; any other key is refused by name.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Crowd's URL with its context path, e.g. `https://crowd.example.com/crowd`.
    #[serde(default, rename = "baseURL")]
    base_url: String,
    /// The Crowd application's name and password.
    #[serde(default, rename = "clientID")]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    /// Required groups: a user in none of them may not log in; only these reach the token.
    #[serde(default)]
    groups: Vec<String>,
    /// Which user field becomes `preferred_username`: `key`, `name` or `email`.
    #[serde(default)]
    preferred_username_field: String,
    username_prompt: Option<String>,
}

/// Which Crowd user field is the `preferred_username` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferredField {
    Key,
    Name,
    Email,
}

/// The validated config.
pub struct Settings {
    /// `{baseURL}/rest/usermanagement/1`.
    pub api: String,
    pub client_id: String,
    pub client_secret: String,
    pub required_groups: Vec<String>,
    pub preferred: Option<PreferredField>,
    pub prompt: String,
}

impl Config {
    /// Checks the config; every error names the key and what to write.
    pub fn settings(&self) -> Result<Settings, ConnectorError> {
        let base = config::base_url("baseURL", &self.base_url, "https://crowd.example.com/crowd")?;
        if base.contains("/rest/") {
            return Err(ConnectorError::Config(format!(
                "baseURL: write Crowd's URL with its context path only (such as `https://crowd.example.com/crowd`); \
                 the connector adds /rest/usermanagement/1 itself, and {base:?} already has a /rest/ path"
            )));
        }
        let client_id =
            config::require("clientID", &self.client_id, "the name of the Crowd application this broker logs in as")?;
        let client_secret = config::require(
            "clientSecret",
            &self.client_secret,
            "the Crowd application's password (e.g. `clientSecret: $CROWD_APP_PASSWORD`)",
        )?;
        if let Some(i) = self.groups.iter().position(|g| g.trim().is_empty()) {
            return Err(ConnectorError::Config(format!(
                "groups[{i}] is empty: write the names of the Crowd groups whose members may log in, or drop `groups`"
            )));
        }
        let preferred = match self.preferred_username_field.trim() {
            "" => None,
            "key" => Some(PreferredField::Key),
            "name" => Some(PreferredField::Name),
            "email" => Some(PreferredField::Email),
            other => {
                return Err(ConnectorError::Config(format!(
                    "preferredUsernameField: {other:?} is not a Crowd user field this connector maps; write key, \
                     name or email, or drop it (preferred_username is then left out)"
                )));
            }
        };
        let prompt = self.username_prompt.as_deref().map(str::trim).filter(|p| !p.is_empty()).unwrap_or("Username");
        Ok(Settings {
            api: format!("{base}/rest/usermanagement/1"),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            required_groups: self.groups.clone(),
            preferred,
            prompt: prompt.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Settings, String> {
        let config: Config = serde_json::from_value(json).map_err(|e| e.to_string())?;
        config.settings().map_err(|e| e.message().to_string())
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({"baseURL": "https://crowd.example.com/crowd/", "clientID": "portcullis", "clientSecret": "s"})
    }

    #[test]
    fn defaults_and_the_api_root() {
        let s = settings(minimal()).unwrap();
        assert_eq!(s.api, "https://crowd.example.com/crowd/rest/usermanagement/1");
        assert_eq!(s.prompt, "Username");
        assert_eq!(s.preferred, None);
        assert!(s.required_groups.is_empty());
        let mut c = minimal();
        c["usernamePrompt"] = "Crowd login".into();
        c["preferredUsernameField"] = "email".into();
        c["groups"] = serde_json::json!(["admins"]);
        let s = settings(c).unwrap();
        assert_eq!((s.prompt.as_str(), s.preferred), ("Crowd login", Some(PreferredField::Email)));
        assert_eq!(s.required_groups, ["admins"]);
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            (serde_json::json!({"baseURL": ""}), "baseURL is required"),
            (serde_json::json!({"baseURL": "crowd.example.com"}), "baseURL must be"),
            (serde_json::json!({"baseURL": "https://c.example/crowd/rest/usermanagement/1"}), "/rest/"),
            (serde_json::json!({"baseURL": "https://c.example"}), "clientID is required"),
            (serde_json::json!({"baseURL": "https://c.example", "clientID": "a"}), "clientSecret is required"),
        ];
        for (json, want) in cases {
            let err = settings(json.clone()).err().unwrap_or_else(|| panic!("{json} accepted"));
            assert!(err.contains(want), "{json}: {err}");
        }
        for (key, value, want) in [
            ("preferredUsernameField", serde_json::json!("displayName"), "preferredUsernameField"),
            ("groups", serde_json::json!(["admins", " "]), "groups[1]"),
            ("clientSecert", serde_json::json!("x"), "`clientSecert`"),
        ] {
            let mut c = minimal();
            c[key] = value;
            let err = settings(c).err().unwrap_or_else(|| panic!("{key} accepted"));
            assert!(err.contains(want), "{key}: {err}");
        }
    }
}
