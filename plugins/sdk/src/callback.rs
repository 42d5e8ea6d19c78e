//! Lookups on the callback request the upstream's redirect made.

use crate::{CallbackRequest, ConnectorError};

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

impl CallbackRequest {
    /// The first query parameter called `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }

    /// The first form body parameter called `name`.
    pub fn form_param(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }

    /// `name` from the query, or else from the form body (`response_mode=form_post`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query_param(name).or_else(|| self.form_param(name))
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The upstream's OAuth 2.0 error answer on the callback (RFC 6749 §4.1.2.1): `error` and,
/// when given, `error_description`, from the query or a `form_post` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthError<'a> {
    pub error: &'a str,
    pub description: Option<&'a str>,
}

impl OAuthError<'_> {
    /// `error: description`, or `error` alone.
    pub fn described(&self) -> String {
        match self.description {
            Some(d) => format!("{}: {d}", self.error),
            None => self.error.to_string(),
        }
    }

    /// The error for the broker: the user declining (`access_denied`) is
    /// [`ConnectorError::Denied`] (a 403 page), anything else [`ConnectorError::Upstream`];
    /// both name `upstream` ("GitHub", "the identity provider") and what it said.
    pub fn into_error(self, upstream: &str) -> ConnectorError {
        if self.error == "access_denied" {
            ConnectorError::Denied(format!("{upstream} denied the login ({})", self.described()))
        } else {
            ConnectorError::Upstream(format!("{upstream} refused the authorization ({})", self.described()))
        }
    }
}

impl CallbackRequest {
    /// The upstream's error answer, if the callback carries one instead of a code.
    pub fn oauth_error(&self) -> Option<OAuthError<'_>> {
        let error = self.param("error")?;
        Some(OAuthError { error, description: self.param("error_description") })
    }

    /// Fails with [`OAuthError::into_error`] when the upstream answered with an error.
    pub fn check_oauth_error(&self, upstream: &str) -> Result<(), ConnectorError> {
        match self.oauth_error() {
            Some(e) => Err(e.into_error(upstream)),
            None => Ok(()),
        }
    }
}
