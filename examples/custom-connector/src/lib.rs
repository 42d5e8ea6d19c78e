//! An example Portcullis connector: users log in with a username and password that a JSON user
//! API checks. It is the code `docs/writing-connectors.md` walks through.
//!
//! The API it talks to (write your own, or adapt the two requests below to the one you have):
//!
//! - `POST {apiURL}/v1/authenticate` with `{"username": "...", "password": "..."}` answers
//!   200 with the user, or 401 when the credentials are wrong;
//! - `GET {apiURL}/v1/users/{id}` answers 200 with the user, or 404 once the user is gone.
//!
//! Both requests carry `authorization: Bearer {apiToken}`; the user is
//! `{"id": "...", "name": "...", "email": "...", "emailVerified": true, "groups": ["..."]}`.
//!
//! Config (the `config:` block of the connector in the broker's YAML):
//!
//! ```yaml
//! config:
//!   apiURL: https://users.example.com
//!   apiToken: $USER_API_TOKEN
//!   usernamePrompt: Employee ID   # optional, the label of the username field
//! ```

use portcullis_connector_sdk::{
    Connector, ConnectorError, Identity, Metadata, Scopes, config, export_connector, http, log, url,
};
use serde::{Deserialize, Serialize};

/// The connector's `config` block, parsed from JSON by the SDK before every call.
///
/// `deny_unknown_fields` turns a misspelt key (`apiUrl`) into an error when the broker loads
/// the config, instead of a silently missing value. Keys are spelt the way Dex spells them
/// (`apiURL`, like Dex's `redirectURI`), hence the explicit renames.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// Base URL of the user API, e.g. `https://users.example.com`.
    #[serde(rename = "apiURL", default)]
    api_url: String,
    /// Bearer token for the user API. A secret: it never goes into a log line or an error.
    #[serde(default)]
    api_token: String,
    /// Label of the username field on the broker's login form.
    username_prompt: Option<String>,
}

impl Config {
    /// `{apiURL}{path}`, without doubling the slash when `apiURL` ends with one.
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.trim_end_matches('/'))
    }

    /// A request to the user API, carrying the bearer token.
    fn request(&self, method: &str, path: &str) -> http::Request {
        http::Request::new(method, &self.endpoint(path))
            .header("authorization", &format!("Bearer {}", self.api_token))
            .header("accept", "application/json")
    }
}

/// The body of `POST /v1/authenticate`.
#[derive(Serialize)]
struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
}

/// A user as the API returns it. Fields the connector does not use are ignored (no
/// `deny_unknown_fields` here: the API may grow).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiUser {
    id: String,
    name: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    groups: Vec<String>,
}

impl ApiUser {
    /// The identity the broker puts in the ID token. `preferred_username` is the name the user
    /// typed on the form (the API does not return it).
    fn into_identity(self, scopes: Scopes, preferred_username: Option<String>) -> Identity {
        // `user_id` is stable and unique within this connector: it becomes part of the `sub`
        // claim. Nothing is kept for `refresh` (no `.connector_data(..)`): the user id is enough
        // to look the user up again; a connector holding an upstream token would keep it there.
        Identity::new(self.id, self.name)
            .maybe_preferred_username(preferred_username)
            .maybe_email(self.email, self.email_verified)
            // Groups only when the application asked for the `groups` scope.
            .groups(if scopes.groups { self.groups } else { Vec::new() })
    }
}

struct UserApi;

impl Connector for UserApi {
    type Config = Config;

    /// Called when the broker loads the config: check it and say what kind of connector this
    /// is. An error names the key and what to write; the connector then does not go live.
    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        // `config::is_absolute_url` is the SDK's check; the messages are this connector's own.
        let url = config.api_url.as_str();
        if !config::is_absolute_url(url) {
            return Err(ConnectorError::Config(
                "apiURL must be the user API's base URL, e.g. `apiURL: https://users.example.com`".into(),
            ));
        }
        if url.contains(['?', '#']) {
            return Err(ConnectorError::Config("apiURL must not carry a query or fragment".into()));
        }
        if config.api_token.is_empty() {
            return Err(ConnectorError::Config(
                "apiToken is missing: give the user API's bearer token, e.g. `apiToken: $USER_API_TOKEN`".into(),
            ));
        }
        // The broker shows its own username/password form and calls `login`; `with_refresh`
        // says `refresh` is implemented, so applications may get refresh tokens.
        Ok(Metadata::password(config.username_prompt.as_deref().unwrap_or("Username")).with_refresh())
    }

    /// Checks a username and password: `Ok(None)` for wrong credentials (the broker shows
    /// the form again), an error when the API cannot answer.
    fn login(
        config: &Config,
        scopes: Scopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        let body = serde_json::to_vec(&Credentials { username, password })
            .map_err(|e| ConnectorError::Upstream(format!("cannot encode the request: {e}")))?;
        // `?` on a host error (say the operator did not allow apiURL's host) turns it into
        // `ConnectorError::Upstream` with the host's explanation.
        let response =
            config.request("POST", "/v1/authenticate").header("content-type", "application/json").body(body).send()?;
        if response.status == 401 {
            return Ok(None);
        }
        // Anything else but 2xx is the API failing: a "login failed" page for the user, the
        // status in the broker's log. `json()` checks the body; nothing here can panic.
        let user: ApiUser = response.error_for_status()?.json()?;
        log::info(&format!("user {} logged in", user.id));
        Ok(Some(user.into_identity(scopes, Some(username.to_string()))))
    }

    /// Called when the application redeems a refresh token: read the user again, so a
    /// changed name or group reaches the new ID token and a deleted user loses access.
    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        // The id comes from the API; encode it so `a/b` or `a?b` stays one path segment.
        let path = format!("/v1/users/{}", url::encode(&previous.user_id));
        let response = config.request("GET", &path).send()?;
        if response.status == 404 {
            return Err(ConnectorError::Denied("the user no longer exists in the user API".into()));
        }
        let user: ApiUser = response.error_for_status()?.json()?;
        if user.id != previous.user_id {
            return Err(ConnectorError::Denied("the user API answered with another user".into()));
        }
        Ok(user.into_identity(scopes, previous.preferred_username))
    }
}

export_connector!(UserApi);

// Unit tests run natively (`cargo test`): they cover the logic that needs no host. The whole
// connector, host included, is tested end to end in the broker's `tests/tests/custom_connector.rs`.
#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        serde_json::from_str(json).expect("valid JSON for Config")
    }

    #[test]
    fn describe_names_the_missing_or_wrong_key() {
        let err = UserApi::describe(&config(r#"{"apiURL": "https://users.example.com"}"#)).unwrap_err();
        assert!(err.message().starts_with("apiToken is missing"), "{err:?}");
        let err = UserApi::describe(&config(r#"{"apiURL": "users.example.com", "apiToken": "t"}"#)).unwrap_err();
        assert!(err.message().starts_with("apiURL must be"), "{err:?}");
        let meta = UserApi::describe(&config(r#"{"apiURL": "https://users.example.com", "apiToken": "t"}"#)).unwrap();
        assert_eq!(meta.kind, portcullis_connector_sdk::ConnectorKind::Password);
        assert_eq!(meta.password_prompt.as_deref(), Some("Username"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(serde_json::from_str::<Config>(r#"{"apiUrl": "https://users.example.com"}"#).is_err());
    }

    #[test]
    fn endpoints_join_without_a_double_slash() {
        let c = config(r#"{"apiURL": "https://users.example.com/", "apiToken": "t"}"#);
        assert_eq!(c.endpoint("/v1/authenticate"), "https://users.example.com/v1/authenticate");
    }

    #[test]
    fn groups_only_with_the_groups_scope() {
        let user = || ApiUser {
            id: "1".into(),
            name: "Jane".into(),
            email: None,
            email_verified: false,
            groups: vec!["staff".into()],
        };
        let no_groups = Scopes { offline_access: false, groups: false };
        assert!(user().into_identity(no_groups, None).groups.is_empty());
        let groups = Scopes { offline_access: false, groups: true };
        assert_eq!(user().into_identity(groups, None).groups, ["staff"]);
    }
}
