//! The broker's log output captured in memory, for the tests that search it (secrets must not
//! appear; denials must name the config line to add).
//!
//! The end-to-end tests share one binary, so the capture is per thread: one process-wide
//! subscriber (installed on first use, at debug level) writes each event into the buffer of
//! the thread that logged it, if that thread is capturing. A `#[tokio::test]` runs the broker it
//! starts (handlers, plugin calls) on its own thread, so each test sees its own broker's lines
//! and no other test's.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How captured lines are written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

thread_local! {
    /// The capture of this thread, if any.
    static CURRENT: RefCell<Option<(Buffer, Format)>> = const { RefCell::new(None) };
}

/// Everything this thread logged since `install`; stops capturing when dropped.
pub struct LogCapture {
    buffer: Buffer,
    /// Not `Send`: the capture belongs to the thread that made it.
    _thread: std::marker::PhantomData<*const ()>,
}

impl LogCapture {
    /// Captures what this thread logs at debug level (all but the test's own cookie jar), in
    /// `format`. The test must run on a current-thread runtime (the `#[tokio::test]` default)
    /// for the broker's tasks to log on this thread.
    pub fn install(format: Format) -> Self {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            let layer = |format: Format| {
                let capturing = tracing_subscriber::filter::filter_fn(move |_| {
                    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|(_, f)| *f == format))
                });
                let base = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(ThreadWriter);
                match format {
                    Format::Text => base.with_filter(capturing).boxed(),
                    Format::Json => base.json().with_filter(capturing).boxed(),
                }
            };
            let _ = tracing_subscriber::registry()
                .with(tracing_subscriber::EnvFilter::new("debug,cookie_store=off"))
                .with(vec![layer(Format::Text), layer(Format::Json)])
                .try_init();
        });
        let buffer = Buffer::default();
        CURRENT.with(|c| *c.borrow_mut() = Some((buffer.clone(), format)));
        Self { buffer, _thread: std::marker::PhantomData }
    }

    /// The log so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.0.lock().unwrap()).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// The bytes written so far.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

/// Writes to the capture of the thread the event is logged on (nothing if it is not capturing).
struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some((buffer, _)) = c.borrow().as_ref() {
                buffer.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadWriter {
    type Writer = ThreadWriter;

    fn make_writer(&'a self) -> Self::Writer {
        ThreadWriter
    }
}
