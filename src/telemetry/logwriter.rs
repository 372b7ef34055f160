//! Where log lines go when stderr is not a terminal: one shared 64 KiB buffer, written to stderr
//! when it fills, at least every 100 ms, at once after a warning or an error, and at exit. This
//! is nginx's `access_log ... buffer=64k flush=...` for the one line every request logs.
//!
//! Written straight to stderr, that line cost a `write` system call per request, 4% of all CPU
//! samples under a `/risk-score` load (perf, wrk on the same two cores); buffered, 0.3%, the
//! call being paid once per few hundred lines. The price is that a process killed outright
//! (SIGKILL, abort) loses at most the last 100 ms of info lines; warnings and errors are never
//! held back. On a terminal lines are written at once as before.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Bytes held before a write.
const CAPACITY: usize = 64 * 1024;
/// Longest time a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The buffered stderr writer; clones share one buffer.
#[derive(Clone, Debug)]
pub struct BufferedStderr {
    buffer: Arc<Mutex<Vec<u8>>>,
    /// Where a full or flushed buffer goes: stderr, or a test's collector.
    sink: fn(&[u8]),
}

fn to_stderr(bytes: &[u8]) {
    // A failed write drops the lines, as an unbuffered write to a broken stderr would.
    let _ = io::stderr().lock().write_all(bytes);
}

impl BufferedStderr {
    /// A writer with a thread that flushes it every [`FLUSH_EVERY`] for the rest of the process.
    ///
    /// # Errors
    /// The flushing thread could not be started.
    pub fn with_flusher() -> io::Result<Self> {
        let writer = Self::new(to_stderr);
        let flusher = writer.clone();
        std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                flusher.flush();
            })?;
        Ok(writer)
    }

    fn new(sink: fn(&[u8])) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(Vec::with_capacity(CAPACITY))),
            sink,
        }
    }

    /// Writes out what the buffer holds.
    pub fn flush(&self) {
        self.write_out(&mut self.lock());
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves at worst a partial line: keep logging.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, bytes: &[u8], urgent: bool) {
        let mut buffer = self.lock();
        buffer.extend_from_slice(bytes);
        if urgent || buffer.len() >= CAPACITY {
            self.write_out(&mut buffer);
        }
    }

    fn write_out(&self, buffer: &mut Vec<u8>) {
        if !buffer.is_empty() {
            (self.sink)(buffer);
            buffer.clear();
        }
    }
}

/// One event's writer: tracing's fmt layer hands it the whole formatted line in one call.
pub struct Line<'a> {
    target: &'a BufferedStderr,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.target.append(bytes, self.urgent);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.target.flush();
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            target: self,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            target: self,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static WRITTEN: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn collect(bytes: &[u8]) {
        WRITTEN.with(|w| w.borrow_mut().push(bytes.to_vec()));
    }

    fn written() -> Vec<Vec<u8>> {
        WRITTEN.with(|w| std::mem::take(&mut *w.borrow_mut()))
    }

    #[test]
    fn info_lines_wait_and_a_warning_writes_them_out_in_order() {
        let w = BufferedStderr::new(collect);
        let logger = tracing_subscriber::fmt()
            .with_writer(w.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(logger, || {
            tracing::info!("first");
            assert!(written().is_empty(), "an info line waits");
            tracing::warn!("second");
            let out = written();
            assert_eq!(out.len(), 1, "one write for both");
            let text = String::from_utf8(out[0].clone()).unwrap();
            assert!(text.find("first").unwrap() < text.find("second").unwrap());
            tracing::info!("third");
        });
        w.flush();
        assert!(String::from_utf8(written().concat())
            .unwrap()
            .contains("third"));
        w.flush();
        assert!(written().is_empty(), "nothing held, nothing written");
    }

    #[test]
    fn a_full_buffer_is_written_out_in_one_piece() {
        let w = BufferedStderr::new(collect);
        let line = vec![b'.'; 1000];
        for _ in 0..CAPACITY / 1000 + 1 {
            w.append(&line, false);
        }
        let out = written();
        assert_eq!(out.len(), 1);
        assert!(out[0].len() >= CAPACITY);
    }
}
