//! The `log` import: guest messages in the broker's log, tagged with the connector id.

use crate::connectors::bindings::portcullis::connector::log::{Host, Level};
use crate::connectors::state::CallState;

/// Longest message kept; the rest is cut.
const MAX_MESSAGE: usize = 4096;

impl Host for CallState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let cut = (0..=MAX_MESSAGE).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        let connector = &*self.connector;
        match level {
            Level::Trace => tracing::trace!(connector, "{message}"),
            Level::Debug => tracing::debug!(connector, "{message}"),
            Level::Info => tracing::info!(connector, "{message}"),
            Level::Warn => tracing::warn!(connector, "{message}"),
            Level::Error => tracing::error!(connector, "{message}"),
        }
        Ok(())
    }
}
