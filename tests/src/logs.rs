//! The broker's log output captured in memory, for the tests that search it (secrets must not
//! appear; denials must name the config line to add).

use std::sync::{Arc, Mutex};

/// Everything the process logged since `install`.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

/// How captured lines are written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl LogCapture {
    /// Installs the capture as the process's subscriber with `filter` (an `EnvFilter`
    /// directive such as `"debug,cookie_store=off"`). One per test binary: a second call panics.
    pub fn install(filter: &str, format: Format) -> Self {
        let capture = Self::default();
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(capture.clone()).with_ansi(false);
        let installed = match format {
            Format::Text => builder.try_init(),
            Format::Json => builder.json().try_init(),
        };
        installed.expect("the only log subscriber in this test binary");
        capture
    }

    /// The log so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
