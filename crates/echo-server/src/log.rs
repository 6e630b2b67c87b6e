//! Logging that can never take the server down or slow it: lines go to stderr
//! from a thread of their own, and a line that cannot be queued is dropped and counted.
//!
//! The usual writers fail in exactly the environments an operator does not
//! watch: `eprintln!` panics on a closed or full stderr, and a blocking write
//! to a stuck log shipper's pipe stalls whichever worker thread was logging.
//! Here the echo path only ever appends to a bounded queue; the writer thread
//! alone meets the pipe, and ignores what it says.
//! (tracing-appender's writer would do the queueing, but its guard prints to
//! stdout, which carries only the announcement lines, when its queue is full at exit.)

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::format::{DefaultFields, Json, JsonFields};
use tracing_subscriber::fmt::{self, MakeWriter, SubscriberBuilder};

/// Lines held for a slow stderr before new ones are dropped: enough for a
/// burst of connection logs, small enough that a stuck reader costs little memory.
const QUEUE_LINES: usize = 1024;

/// The process's log queue, once [`init`] has run.
static QUEUE: OnceLock<Arc<Queue>> = OnceLock::new();
/// The format [`init`] was given, which [`error_line`] and [`announcement`] follow too.
static FORMAT: OnceLock<Format> = OnceLock::new();

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A line of text per event, for a person.
    #[default]
    Human,
    /// A JSON object per event, fields at the top level with numbers as
    /// numbers, for a log shipper.
    Json,
}

/// Installs the global `tracing` subscriber: the level from `RUST_LOG`
/// (default `info`), lines in `format` on stderr through the lossy queue,
/// human ones coloured when `ansi` (see `echo_generate::color`).
///
/// Later calls change nothing.
pub fn init(format: Format, ansi: bool) {
    if QUEUE.get().is_some() {
        return;
    }
    let queue = match stderr_sink() {
        Ok(sink) => Queue::start(sink),
        // No stderr to write to at all: count every line as dropped.
        Err(_) => Arc::new(Queue::new()),
    };
    if QUEUE.set(Arc::clone(&queue)).is_err() {
        return;
    }
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Lines(queue))
        .log_internal_errors(false);
    let _ = match format {
        Format::Human => builder.with_ansi(ansi).try_init(),
        Format::Json => json(builder).try_init(),
    };
}

/// The format [`init`] was given; [`Format::Human`] without it.
pub fn format() -> Format {
    FORMAT.get().copied().unwrap_or_default()
}

/// The line that announces a socket on stdout, in the process's [`format`]:
/// `listening on tcp 127.0.0.1:7007`, or the same as a JSON event with
/// `kind` and `address` fields beside the message.
///
/// Any `kind` is written the same way, so readers of either form need
/// nothing new for a new kind of socket.
pub fn announcement(kind: &str, address: &str) -> Vec<u8> {
    match format() {
        Format::Human => format!("listening on {kind} {address}\n").into_bytes(),
        Format::Json => {
            json_line(|| tracing::info!(kind, address, "listening on {kind} {address}"))
        }
    }
}

/// The JSON form of every line, written once for [`init`] and [`json_line`].
fn json<F, W>(
    builder: SubscriberBuilder<DefaultFields, fmt::format::Format, F, W>,
) -> SubscriberBuilder<JsonFields, fmt::format::Format<Json>, F, W> {
    builder.json().flatten_event(true).with_current_span(false)
}

/// The JSON line of the event `emit` makes, formatted as [`init`]'s
/// subscriber formats events but whatever `RUST_LOG` says, for the lines
/// that must be written at any level: the announcement and the error at exit.
fn json_line(emit: impl FnOnce()) -> Vec<u8> {
    let line = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&line);
    let subscriber = json(tracing_subscriber::fmt())
        .with_writer(move || Captured(Arc::clone(&writer)))
        .log_internal_errors(false)
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    std::mem::take(&mut *line.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Reports the error that ends the process, behind the log lines already
/// queued, whatever `RUST_LOG` says: as the `error: MESSAGE` line of every
/// command, or in JSON as an error event like every other line. Without [`init`], the line goes to
/// stderr directly, a failure ignored, since there is nowhere left to report it.
pub fn error_line(message: &str) {
    let bytes = match format() {
        Format::Human => format!("error: {message}\n").into_bytes(),
        Format::Json => json_line(|| tracing::error!("{message}")),
    };
    match QUEUE.get() {
        Some(queue) => queue.push(bytes),
        None => {
            let _ = io::stderr().write_all(&bytes);
        }
    }
}

/// Waits up to `limit` for the queued lines to be written, so that the last
/// lines before an exit are not lost; returns at once without [`init`].
pub fn flush(limit: Duration) {
    if let Some(queue) = QUEUE.get() {
        queue.flush(Instant::now() + limit);
    }
}

/// How many log lines could not be written so far (queue full, or stderr failing).
pub fn dropped_lines() -> u64 {
    QUEUE.get().map_or(0, |queue| queue.dropped.load(Relaxed))
}

/// Stderr as a file of its own, so the writer thread never holds the lock of
/// `std::io::stderr`, which a panic message would then wait for.
fn stderr_sink() -> io::Result<File> {
    Ok(File::from(io::stderr().as_fd().try_clone_to_owned()?))
}

/// The bounded queue between the threads that log and the one that writes.
#[derive(Debug)]
struct Queue {
    state: Mutex<State>,
    /// Signalled when a line is queued, and when the writer has caught up.
    changed: Condvar,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    lines: VecDeque<Vec<u8>>,
    /// The writer holds a line it took off the queue and is writing it.
    writing: bool,
    /// There is a writer thread; without one every line is dropped.
    has_writer: bool,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// A queue whose lines a new thread writes to `sink`.
    fn start(sink: impl Write + Send + 'static) -> Arc<Queue> {
        let queue = Arc::new(Queue::new());
        let writer = Arc::clone(&queue);
        let started = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.write_all_to(sink));
        queue.lock().has_writer = started.is_ok();
        queue
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and a line is a line either way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a line unless the queue is full; never waits for the writer.
    fn push(&self, line: Vec<u8>) {
        let mut state = self.lock();
        if !state.has_writer || state.lines.len() >= QUEUE_LINES {
            drop(state);
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        state.lines.push_back(line);
        drop(state);
        self.changed.notify_all();
    }

    /// The writer thread's loop: takes lines off the queue and writes them,
    /// forever; a line the sink refuses is counted and forgotten.
    fn write_all_to(&self, mut sink: impl Write) {
        loop {
            let line = {
                let mut state = self.lock();
                loop {
                    if let Some(line) = state.lines.pop_front() {
                        state.writing = true;
                        break line;
                    }
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            if sink.write_all(&line).and_then(|()| sink.flush()).is_err() {
                self.dropped.fetch_add(1, Relaxed);
            }
            let mut state = self.lock();
            state.writing = false;
            let caught_up = state.lines.is_empty();
            drop(state);
            if caught_up {
                self.changed.notify_all();
            }
        }
    }

    /// Waits until every queued line is written or `deadline` passes.
    fn flush(&self, deadline: Instant) {
        let mut state = self.lock();
        while state.has_writer && (state.writing || !state.lines.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The `MakeWriter` the subscriber formats each event into: one event, one
/// `write` call, one queued line.
#[derive(Debug, Clone)]
struct Lines(Arc<Queue>);

impl<'a> MakeWriter<'a> for Lines {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

#[derive(Debug)]
struct LineWriter<'a>(&'a Queue);

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.push(bytes.to_vec());
        // Reported as written even when dropped: the caller could do nothing better.
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer of [`json_line`]: the line, kept for the caller.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink that accepts nothing until told to, like a pipe whose reader is stuck.
    struct Stuck {
        release: mpsc::Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.release.recv();
            self.written
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A sink that refuses everything, like a closed pipe or a full disk.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stderr_costs_the_loggers_nothing_and_bounds_the_flush() {
        let (release, released) = mpsc::channel();
        let written = Arc::default();
        let queue = Queue::start(Stuck {
            release: released,
            written: Arc::clone(&written),
        });
        let started = Instant::now();
        for n in 0..(3 * QUEUE_LINES) {
            queue.push(format!("line {n}\n").into_bytes());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "pushing waited for the stuck writer"
        );
        // At most one line is in the writer's hands and QUEUE_LINES queued; the rest are dropped.
        let dropped = queue.dropped.load(Relaxed);
        assert!(dropped >= (2 * QUEUE_LINES - 1) as u64, "{dropped}");
        let limit = Duration::from_millis(50);
        let flushing = Instant::now();
        queue.flush(Instant::now() + limit);
        assert!(flushing.elapsed() >= limit, "the flush returned early");

        // Once the reader wakes up, everything queued comes out, in order.
        for _ in 0..=QUEUE_LINES {
            release.send(()).expect("writer alive");
        }
        queue.flush(Instant::now() + Duration::from_secs(20));
        let text = String::from_utf8(written.lock().expect("not poisoned").clone()).expect("utf8");
        assert!(text.starts_with("line 0\nline 1\n"), "{text}");
        assert_eq!(
            text.lines().count() as u64,
            (3 * QUEUE_LINES) as u64 - dropped
        );
    }

    #[test]
    fn a_broken_stderr_counts_lines_as_dropped_and_flushes_at_once() {
        let queue = Queue::start(Broken);
        queue.push(b"lost\n".to_vec());
        queue.flush(Instant::now() + Duration::from_secs(20));
        assert_eq!(queue.dropped.load(Relaxed), 1);
        let mut writer = LineWriter(&queue);
        writeln!(writer, "also lost").expect("never fails");
    }
}
