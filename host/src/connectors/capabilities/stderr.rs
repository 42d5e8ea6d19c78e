//! The guest's stdout and stderr: each line goes to the broker's log tagged with the connector
//! id, and the last lines are kept so a trap's error can quote the panic message. They are the
//! only thing the call's WASI context grants ([`wasi_ctx`]); its view is wasmtime-wasi's own
//! `WasiCtxView`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiView};

/// Output a guest may write in one call; the rest is dropped (never a trap).
const MAX_OUTPUT: usize = 64 * 1024;
/// How much of the tail is kept for error messages.
const TAIL: usize = 1024;

#[derive(Debug, Default)]
struct Buffer {
    pending: Vec<u8>,
    written: usize,
    tail: String,
}

/// The WASI context of one call: no preopened directories, environment, arguments, sockets or
/// stdin; stdout and stderr go to `output`.
pub(crate) fn wasi_ctx(output: GuestStderr) -> WasiCtx {
    wasmtime_wasi::WasiCtxBuilder::new().stderr(output.clone()).stdout(output).build()
}

/// Links WASI 0.2, which every component built by Rust imports; it grants what [`wasi_ctx`] holds.
pub(crate) fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
}

/// A line-buffered sink shared by the guest's stdout and stderr.
#[derive(Clone, Debug)]
pub(crate) struct GuestStderr {
    connector: Arc<str>,
    buffer: Arc<Mutex<Buffer>>,
}

impl GuestStderr {
    pub(crate) fn new(connector: Arc<str>) -> Self {
        Self { connector, buffer: Arc::default() }
    }

    fn push(&self, bytes: &[u8]) {
        let Ok(mut buf) = self.buffer.lock() else { return };
        let room = MAX_OUTPUT.saturating_sub(buf.written);
        let take = bytes.get(..bytes.len().min(room)).unwrap_or_default();
        buf.written += take.len();
        buf.pending.extend_from_slice(take);
        while let Some(pos) = buf.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.pending.drain(..=pos).collect();
            self.emit(&mut buf, &line);
        }
    }

    fn emit(&self, buf: &mut Buffer, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        // A `\r` or an escape sequence in the guest's output must not rewrite the log line.
        let line = crate::connectors::guest_text::escape(line);
        tracing::warn!(connector = %self.connector, "plugin output: {line}");
        buf.tail.push_str(&line);
        buf.tail.push('\n');
        if buf.tail.len() > TAIL {
            let cut = buf.tail.len() - TAIL;
            let cut = (cut..buf.tail.len()).find(|i| buf.tail.is_char_boundary(*i)).unwrap_or(0);
            buf.tail.drain(..cut);
        }
    }

    /// Flushes a trailing partial line and returns the last lines written.
    pub(crate) fn finish(&self) -> String {
        let Ok(mut buf) = self.buffer.lock() else { return String::new() };
        let rest = std::mem::take(&mut buf.pending);
        self.emit(&mut buf, &rest);
        buf.tail.trim_end().to_string()
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestStderr {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStderr {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestStderr {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest's output cannot write a forged log line or a terminal escape (audit finding F7).
    #[test]
    fn control_characters_in_output_are_escaped() {
        let out = GuestStderr::new("c".into());
        out.push(b"panicked\rINFO portcullis: admin logged in\x1b[2K\n");
        assert_eq!(out.finish(), r"panicked\rINFO portcullis: admin logged in\u{1b}[2K");
    }

    #[test]
    fn lines_are_kept_for_the_error_and_output_is_capped() {
        let out = GuestStderr::new("c".into());
        out.push(b"first\nthread 'main' panicked at src/lib.rs:1:1");
        assert_eq!(out.finish(), "first\nthread 'main' panicked at src/lib.rs:1:1", "a partial line is flushed");

        let out = GuestStderr::new("c".into());
        let line = [b'x'; 99].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
        for _ in 0..(MAX_OUTPUT / line.len() + 10) {
            out.push(&line);
        }
        let Ok(buf) = out.buffer.lock() else { panic!("poisoned") };
        assert_eq!(buf.written, MAX_OUTPUT, "output past the cap is dropped");
        assert!(buf.tail.len() <= TAIL, "only the tail is kept: {}", buf.tail.len());
    }
}
