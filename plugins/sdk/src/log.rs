//! Logging to the broker's log, tagged there with the connector id. Never log secrets.

pub use crate::bindings::portcullis::connector::log::Level;

/// Writes `message` at `level`.
pub fn log(level: Level, message: &str) {
    crate::bindings::portcullis::connector::log::log(level, message);
}

/// Writes a trace message.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes a debug message.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes an info message.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes an error message.
pub fn error(message: &str) {
    log(Level::Error, message);
}
