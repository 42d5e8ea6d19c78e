//! The broker's log lines on stderr, text or JSON, with `logger.excludeFields` dropped from
//! every line, as Dex does for keeping personal data (`email`, `username`, `groups`…) out of
//! logs. Text lines are written without those fields; JSON lines are written whole and the
//! fields removed from `fields`, `span` and `spans` before they leave the process.

use std::collections::HashSet;
use std::sync::Arc;

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

/// Installs the process-wide subscriber: `level` (or `RUST_LOG`), text or JSON, `exclude`d fields.
pub fn init(level: Option<&str>, json: bool, exclude: &[String]) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.unwrap_or("info").to_ascii_lowercase()));
    // Colours only for a person at a terminal: escape sequences in a log file or a collector
    // are noise, and a place for forged ones to hide.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let excluded: Arc<HashSet<String>> = Arc::new(exclude.iter().cloned().collect());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    if json {
        builder.json().with_writer(Stripping { excluded, inner: std::io::stderr }).init();
    } else {
        builder.fmt_fields(Excluding(excluded)).with_writer(std::io::stderr).init();
    }
}

/// Text field formatting without the excluded fields (`name=value`, the message bare).
#[derive(Debug, Clone, Default)]
pub struct Excluding(pub Arc<HashSet<String>>);

impl<'w> FormatFields<'w> for Excluding {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        let mut visitor = Visitor { writer, excluded: &self.0, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'a, 'w> {
    writer: Writer<'w>,
    excluded: &'a HashSet<String>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for Visitor<'_, '_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() || self.excluded.contains(field.name()) {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = match field.name() {
            "message" => write!(self.writer, "{separator}{value:?}"),
            name => write!(self.writer, "{separator}{name}={value:?}"),
        };
    }
}

/// A writer that removes the excluded fields from each JSON line before passing it on.
#[derive(Debug, Clone)]
pub struct Stripping<M> {
    pub excluded: Arc<HashSet<String>>,
    pub inner: M,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Stripping<M> {
    type Writer = StripLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        StripLine { buffer: Vec::new(), excluded: self.excluded.clone(), inner: self.inner.make_writer() }
    }
}

/// One event's bytes, stripped and written when the event is done.
pub struct StripLine<W: std::io::Write> {
    buffer: Vec<u8>,
    excluded: Arc<HashSet<String>>,
    inner: W,
}

impl<W: std::io::Write> std::io::Write for StripLine<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: std::io::Write> Drop for StripLine<W> {
    fn drop(&mut self) {
        let out = strip(&self.buffer, &self.excluded);
        let _ = self.inner.write_all(&out);
    }
}

/// `text` (JSON lines) without the `excluded` fields; a line that is not JSON passes unchanged.
pub fn strip(text: &[u8], excluded: &HashSet<String>) -> Vec<u8> {
    if excluded.is_empty() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(mut value) => {
                remove_fields(&mut value, excluded);
                let mut written = value.to_string();
                if line.ends_with(b"\n") {
                    written.push('\n');
                }
                out.extend_from_slice(written.as_bytes());
            }
            Err(_) => out.extend_from_slice(line),
        }
    }
    out
}

fn remove_fields(line: &mut serde_json::Value, excluded: &HashSet<String>) {
    let Some(object) = line.as_object_mut() else { return };
    for key in ["fields", "span"] {
        if let Some(serde_json::Value::Object(fields)) = object.get_mut(key) {
            fields.retain(|k, _| !excluded.contains(k));
        }
    }
    if let Some(serde_json::Value::Array(spans)) = object.get_mut("spans") {
        for span in spans.iter_mut().filter_map(|s| s.as_object_mut()) {
            span.retain(|k, _| !excluded.contains(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn excluded() -> Arc<HashSet<String>> {
        Arc::new(["email".to_string(), "groups".to_string()].into())
    }

    fn text(buffer: &Buffer) -> String {
        String::from_utf8_lossy(&buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
    }

    #[test]
    fn text_lines_drop_excluded_fields() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(Excluding(excluded()))
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("login", email = "jane@example.com");
            let _in = span.enter();
            tracing::info!(email = "jane@example.com", connector = "github", groups = ?["admins"], "login ok");
        });
        let line = text(&buffer);
        assert!(line.contains("login ok") && line.contains("connector=\"github\""), "{line}");
        assert!(!line.contains("jane@example.com") && !line.contains("admins"), "{line}");
    }

    #[test]
    fn json_lines_drop_excluded_fields() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(Stripping { excluded: excluded(), inner: move || out.clone() })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("login", email = "jane@example.com");
            let _in = span.enter();
            tracing::info!(email = "jane@example.com", connector = "github", "login ok");
        });
        let line = text(&buffer);
        let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(value["fields"]["connector"], "github", "{line}");
        assert!(!line.contains("jane@example.com"), "{line}");
        assert_eq!(strip(b"not json\n", &excluded()), b"not json\n");
    }
}
