//! OpenID Connect and OAuth 2.0 protocol rules: what a request must hold, what a token says.
//! Pure functions and data: this module does no I/O.

pub mod authorize;
pub mod claims;
pub mod device;
pub mod discovery;
pub mod error;
pub mod exchange;
pub mod logout;
pub mod pkce;
pub mod scopes;
pub mod sub;
pub mod token;

pub use error::{OAuthError, OAuthErrorCode};
pub use scopes::ScopeSet;
