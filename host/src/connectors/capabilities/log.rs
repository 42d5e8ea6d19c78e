//! The `log` import: guest messages in the broker's log, tagged with the connector id, cut to
//! a bounded length and with control characters escaped (one call, one line).

use wasmtime::component::{HasData, Linker};

use crate::connectors::bindings::current::log::{self as wit, Host, Level};
use crate::connectors::bindings::v0_1::portcullis::connector as v0_1;
use crate::connectors::bindings::v0_2::portcullis::connector as v0_2;

/// Longest message kept; the rest is cut.
const MAX_MESSAGE: usize = 4096;

/// The `log` import's view of a call: the connector the lines are tagged with.
pub(crate) struct LogCtxView<'a> {
    pub(crate) connector: &'a str,
}

/// A store whose data can lend a [`LogCtxView`].
pub(crate) trait LogView: Send {
    fn log(&mut self) -> LogCtxView<'_>;
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = LogCtxView<'a>;
}

/// Links the `log` import of every supported contract version.
pub(crate) fn add_to_linker<T: LogView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLog>(linker, T::log)?;
    v0_1::log::add_to_linker::<T, HasLog>(linker, T::log)?;
    v0_2::log::add_to_linker::<T, HasLog>(linker, T::log)
}

/// `message` cut to [`MAX_MESSAGE`] bytes on a character boundary, marked with `…` when cut.
fn clip(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let cut = (0..=MAX_MESSAGE).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
        message.truncate(cut);
        message.push('…');
    }
    message
}

impl Host for LogCtxView<'_> {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        // One line per call, whatever the guest wrote: no forged lines, no terminal escapes.
        let message = crate::connectors::guest_text::escape_owned(clip(message));
        let connector = self.connector;
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

/// Older contracts' `log`: the same import in their records (`bindings::convert`).
macro_rules! older_log {
    ($v:ident) => {
        impl $v::log::Host for LogCtxView<'_> {
            async fn log(&mut self, level: $v::log::Level, message: String) -> wasmtime::Result<()> {
                Host::log(self, level.into(), message).await
            }
        }
    };
}
older_log!(v0_1);
older_log!(v0_2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(clip("short".into()), "short");
        let long = "é".repeat(MAX_MESSAGE);
        let cut = clip(long);
        assert!(cut.len() <= MAX_MESSAGE + '…'.len_utf8() && cut.ends_with('…'), "{}", cut.len());
    }

    /// What a guest logs stays on one line of the broker's log (audit finding F7).
    #[tokio::test]
    async fn a_guest_cannot_forge_a_log_line() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut view = LogCtxView { connector: "c" };
        let forged = "ok\n2026-01-01T00:00:00Z  INFO portcullis: admin logged in\r\u{1b}[31m";
        view.log(Level::Warn, forged.into()).await.unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(r"ok\n2026-01-01T00:00:00Z  INFO portcullis: admin logged in\r\u{1b}[31m"), "{text}");
    }

    #[tokio::test]
    async fn the_import_logs_at_every_level() {
        let mut view = LogCtxView { connector: "c" };
        for level in [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error] {
            view.log(level, "x".repeat(MAX_MESSAGE * 2)).await.unwrap();
        }
    }
}
