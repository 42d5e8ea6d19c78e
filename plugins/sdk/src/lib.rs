//! The Portcullis connector SDK: write an upstream identity connector as a WebAssembly component.
//!
//! A connector is a type implementing [`Connector`] plus one [`export_connector!`] call. The
//! SDK parses the connector's JSON config into [`Connector::Config`], calls the trait, and
//! hands the result back to the broker through the `portcullis:connector@0.3.0` contract
//! (`wit/0.3.0/connector.wit`). Every call runs in a fresh instance, so a connector keeps no state:
//! what it needs later travels in [`LoginRedirect::state_data`] and
//! [`Identity::connector_data`], which the broker stores on its behalf.
//!
//! Build a connector with `cargo build --target wasm32-wasip2`; the output `.wasm` is already
//! a component.
//!
//! # Example
//!
//! A callback connector for a made-up OAuth 2.0 provider:
//!
//! ```ignore
//! use portcullis_connector_sdk::{
//!     CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes,
//!     http, log, url,
//! };
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(rename_all = "camelCase", deny_unknown_fields)]
//! struct Config {
//!     client_id: String,
//!     client_secret: String,
//! }
//!
//! #[derive(Deserialize)]
//! struct Token {
//!     access_token: String,
//! }
//!
//! #[derive(Deserialize)]
//! struct User {
//!     id: u64,
//!     login: String,
//!     email: Option<String>,
//! }
//!
//! struct Example;
//!
//! impl Connector for Example {
//!     type Config = Config;
//!
//!     fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
//!         if config.client_id.is_empty() {
//!             return Err(ConnectorError::Config("clientID must not be empty".into()));
//!         }
//!         Ok(Metadata::callback())
//!     }
//!
//!     fn login_url(
//!         config: &Config,
//!         _scopes: Scopes,
//!         callback_url: &str,
//!         state: &str,
//!     ) -> Result<LoginRedirect, ConnectorError> {
//!         let url = url::with_query(
//!             "https://idp.example.com/authorize",
//!             &[
//!                 ("client_id", &config.client_id),
//!                 ("redirect_uri", callback_url),
//!                 ("response_type", "code"),
//!                 ("state", state),
//!             ],
//!         );
//!         Ok(LoginRedirect::new(url))
//!     }
//!
//!     fn handle_callback(
//!         config: &Config,
//!         _scopes: Scopes,
//!         req: CallbackRequest,
//!     ) -> Result<Identity, ConnectorError> {
//!         req.check_oauth_error("the example IdP")?;
//!         let code = req
//!             .query_param("code")
//!             .ok_or_else(|| ConnectorError::BadRequest("missing code".into()))?;
//!         let token: Token = http::post_form(
//!             "https://idp.example.com/token",
//!             &[("accept", "application/json")],
//!             &[
//!                 ("grant_type", "authorization_code"),
//!                 ("code", code),
//!                 ("redirect_uri", &req.callback_url),
//!                 ("client_id", &config.client_id),
//!                 ("client_secret", &config.client_secret),
//!             ],
//!         )?
//!         .error_for_status()?
//!         .json()?;
//!         let bearer = format!("Bearer {}", token.access_token);
//!         let user: User =
//!             http::get_json("https://api.example.com/user", &[("authorization", &bearer)])?;
//!         log::info(&format!("logged in upstream user {}", user.login));
//!         Ok(Identity::new(user.id.to_string(), user.login.clone())
//!             .preferred_username(user.login)
//!             .maybe_email(user.email, false))
//!     }
//! }
//!
//! portcullis_connector_sdk::export_connector!(Example);
//! ```
//!
//! Calls a connector does not implement answer [`ConnectorError::Unsupported`], so a callback
//! connector writes `describe`, `login_url` and `handle_callback`, a password connector
//! `describe` and `login`; `refresh` is for connectors that report `supports_refresh`, and
//! `token_identity` (OAuth 2.0 token exchange, contract 0.2.0) for those that report
//! `supports_token_identity`.
//!
//! The records a connector builds ([`Metadata`], [`Identity`], [`LoginRedirect`]) are this
//! crate's own types with constructors and builders, not the raw WIT records, so a field a
//! later contract version adds breaks no connector. Shared chores live here too: the upstream's
//! OAuth error on a callback ([`CallbackRequest::check_oauth_error`]), config checks
//! ([`config`]), connector data as JSON ([`data`]) and required-group filtering ([`groups`]).
//!
//! # Security
//!
//! - The broker, not this SDK, enforces what a connector may reach: every [`http`], [`ldap`]
//!   and [`jose`] call is checked by the host against the operator's `allowedHosts`, and
//!   anything else fails with [`HostError::Denied`]. Nothing in the SDK can widen that.
//! - Never log secrets: no client secrets, passwords, authorization codes or tokens in
//!   [`log`] messages or in [`ConnectorError`] texts, which reach the broker's log and may be
//!   shown to the user. The [`http`] helpers leave query strings out of the errors they build.
//! - Treat everything from the callback request and the upstream as untrusted input: check
//!   it and return an error rather than panicking (a panic aborts the call with a trap).
//! - Compare secrets in constant time when a connector checks them itself.

#[doc(hidden)]
pub mod bindings {
    //! Bindings generated from `wit/0.3.0/`; use the re-exports at the crate root.
    wit_bindgen::generate!({
        path: "../../wit/0.3.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "portcullis_connector_sdk::bindings",
        runtime_path: "portcullis_connector_sdk::__private::wit_bindgen::rt",
    });
}

mod callback;
pub mod config;
pub mod data;
mod error;
pub mod groups;
pub mod http;
pub mod log;
mod types;
pub mod url;

#[doc(hidden)]
pub mod __private;

// Lets the generated code's `portcullis_connector_sdk::...` paths resolve inside this crate too.
extern crate self as portcullis_connector_sdk;

pub use bindings::portcullis::connector::types::{CallbackRequest, ConnectorError, HostError, Scopes};
pub use callback::OAuthError;
pub use types::{ConnectorKind, Identity, LoginRedirect, Metadata};

/// The LDAP bridge: connections to directory servers the operator allowed.
pub mod ldap {
    pub use crate::bindings::portcullis::connector::ldap::{ConnectOptions, Connection, Entry, SearchScope, connect};
}

/// JSON Web Signature verification done by the host, so a connector needs no cryptography.
pub mod jose {
    pub use crate::bindings::portcullis::connector::jose::{Expectations, KeySource, verify};
}

/// Signing with a private key the operator gave the broker (contract 0.3.0): the connector
/// names the key by the config key holding its file's path (Google's `serviceAccountFilePath`)
/// and never sees it. The broker signs only with the keys the operator granted (`signingKeys`,
/// or a shipped type's documented key).
pub mod signing {
    pub use crate::bindings::portcullis::connector::signing::{KeyInfo, describe_key, sign_jwt, sign_xml};
}

/// XML signature verification done by the host (contract 0.3.0), for SAML: the connector gets
/// the canonical bytes of the element the signature covers and reads only those.
pub mod xmldsig {
    pub use crate::bindings::portcullis::connector::xmldsig::{Target, Verified, VerifyRequest, verify};
}

/// An upstream identity connector. Implement it on a unit struct and export it with
/// [`export_connector!`].
///
/// Every call gets a fresh instance, so the functions take no `self`: each receives the
/// connector's parsed config instead. Only [`describe`](Connector::describe) is required; the
/// others default to [`ConnectorError::Unsupported`].
pub trait Connector {
    /// The connector's `config` block from the broker's YAML, parsed from JSON. Consider
    /// `#[serde(deny_unknown_fields)]` so a misspelt key is an error, not a silent default.
    type Config: serde::de::DeserializeOwned;

    /// Validates the config and says what kind of connector this is. Called when the config
    /// is loaded; an error keeps the connector from going live.
    fn describe(config: &Self::Config) -> Result<Metadata, ConnectorError>;

    /// Callback connectors: where to send the browser. `state` must come back to
    /// `callback_url` unchanged.
    fn login_url(
        config: &Self::Config,
        scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let _ = (config, scopes, callback_url, state);
        Err(unsupported("login-url"))
    }

    /// Callback connectors: turns the upstream's redirect back to the broker into an identity.
    fn handle_callback(
        config: &Self::Config,
        scopes: Scopes,
        req: CallbackRequest,
    ) -> Result<Identity, ConnectorError> {
        let _ = (config, scopes, req);
        Err(unsupported("handle-callback"))
    }

    /// Password connectors: checks credentials. `Ok(None)` means they are wrong.
    fn login(
        config: &Self::Config,
        scopes: Scopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        let _ = (config, scopes, username, password);
        Err(unsupported("login"))
    }

    /// Re-reads the identity when a refresh token is redeemed; `identity` is what the last
    /// login or refresh returned, `connector_data` included. Return
    /// [`ConnectorError::Denied`] when the user or their upstream grant is gone (the client
    /// gets `invalid_grant`) and [`ConnectorError::Upstream`] when the upstream failed (the
    /// client gets 503 `temporarily_unavailable` and keeps its refresh token).
    fn refresh(config: &Self::Config, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let _ = (config, scopes, identity);
        Err(unsupported("refresh"))
    }

    /// OAuth 2.0 token exchange (RFC 8693): verifies `subject_token`, an upstream token of type
    /// `subject_token_type` (a URN such as `urn:ietf:params:oauth:token-type:id_token`), and
    /// returns whose it is. Report [`Metadata::with_token_identity`] when implementing it; an
    /// invalid token is [`ConnectorError::Denied`], a token type not accepted
    /// [`ConnectorError::Unsupported`].
    fn token_identity(
        config: &Self::Config,
        scopes: Scopes,
        subject_token_type: &str,
        subject_token: &str,
    ) -> Result<Identity, ConnectorError> {
        let _ = (config, scopes, subject_token_type, subject_token);
        Err(unsupported("token-identity"))
    }
}

fn unsupported(call: &str) -> ConnectorError {
    ConnectorError::Unsupported(format!("this connector does not implement {call}"))
}

/// Exports a [`Connector`] implementation as the component's `connector` interface.
///
/// ```ignore
/// struct MyConnector;
/// impl portcullis_connector_sdk::Connector for MyConnector { /* ... */ }
/// portcullis_connector_sdk::export_connector!(MyConnector);
/// ```
///
/// Each exported function parses the JSON config into [`Connector::Config`] (a parse error
/// becomes [`ConnectorError::Config`]) and then calls the trait. Use it once per component.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        const _: () = {
            use $crate::__private::wit::{Identity, LoginRedirect, Metadata};
            use $crate::bindings::exports::portcullis::connector::connector::Guest;
            use $crate::bindings::exports::portcullis::connector::token_exchange::Guest as TokenExchange;
            use $crate::{CallbackRequest, ConnectorError, Scopes};

            struct __PortcullisExport;

            impl TokenExchange for __PortcullisExport {
                fn token_identity(
                    config: String,
                    s: Scopes,
                    subject_token_type: String,
                    subject_token: String,
                ) -> Result<Identity, ConnectorError> {
                    $crate::__private::token_identity::<$connector>(&config, s, &subject_token_type, &subject_token)
                }
            }

            impl Guest for __PortcullisExport {
                fn describe(config: String) -> Result<Metadata, ConnectorError> {
                    $crate::__private::describe::<$connector>(&config)
                }

                fn login_url(
                    config: String,
                    s: Scopes,
                    callback_url: String,
                    state: String,
                ) -> Result<LoginRedirect, ConnectorError> {
                    $crate::__private::login_url::<$connector>(&config, s, &callback_url, &state)
                }

                fn handle_callback(
                    config: String,
                    s: Scopes,
                    req: CallbackRequest,
                ) -> Result<Identity, ConnectorError> {
                    $crate::__private::handle_callback::<$connector>(&config, s, req)
                }

                fn login(
                    config: String,
                    s: Scopes,
                    username: String,
                    password: String,
                ) -> Result<Option<Identity>, ConnectorError> {
                    $crate::__private::login::<$connector>(&config, s, &username, &password)
                }

                fn refresh(config: String, s: Scopes, id: Identity) -> Result<Identity, ConnectorError> {
                    $crate::__private::refresh::<$connector>(&config, s, id)
                }
            }

    $crate::bindings::export!(__PortcullisExport with_types_in $crate::bindings);
        };
    };
}
