//! Conversions between the host's and the connector's error types.

use crate::{ConnectorError, HostError};

impl HostError {
    /// The host's message, without the case.
    pub fn message(&self) -> &str {
        match self {
            HostError::Denied(m)
            | HostError::Timeout(m)
            | HostError::TooLarge(m)
            | HostError::LimitExceeded(m)
            | HostError::Invalid(m)
            | HostError::Failed(m) => m,
        }
    }
}

impl ConnectorError {
    /// The connector's message, without the case.
    pub fn message(&self) -> &str {
        match self {
            ConnectorError::Config(m)
            | ConnectorError::Upstream(m)
            | ConnectorError::Denied(m)
            | ConnectorError::BadRequest(m)
            | ConnectorError::Unsupported(m) => m,
        }
    }
}

/// A failed host call is an upstream failure (a 502 page). The text keeps what the host said,
/// prefixed by the kind of failure, so a refused call still reads "host call denied: ...".
impl From<HostError> for ConnectorError {
    fn from(e: HostError) -> Self {
        let what = match &e {
            HostError::Denied(_) => "host call denied",
            HostError::Timeout(_) => "host call timed out",
            HostError::TooLarge(_) => "host call response too large",
            HostError::LimitExceeded(_) => "host call limit exceeded",
            HostError::Invalid(_) => "invalid host call",
            HostError::Failed(_) => "host call failed",
        };
        ConnectorError::Upstream(format!("{what}: {}", e.message()))
    }
}
