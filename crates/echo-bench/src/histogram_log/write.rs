//! Writing a histogram log: [`LogWriter`] puts the lines into a file or on
//! stdout, and [`Recording`] takes one interval's latencies after another
//! from the run's [`Intervals`](crate::tally::Intervals), on a thread of its
//! own so that a slow disk or pipe never holds up a worker.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, IntervalLogWriterError};

use super::{LEGEND, LogError, REPORT_END, REPORT_START, STANDARD_STREAM, shown};
use crate::report::Report;
use crate::tally::{Live, latency_histogram};

/// A histogram log being written, to a file or to stdout.
pub struct LogWriter {
    /// The log's path as messages name it.
    path: String,
    out: Box<dyn Write + Send>,
    /// Whether `out` is stdout, where lines for people go as comments.
    stdout: bool,
    serializer: V2DeflateSerializer,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("path", &self.path)
            .field("stdout", &self.stdout)
            .finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Creates the log at `path` (`-`: stdout) and writes its header, which
    /// says what it holds: latencies in nanoseconds, one histogram per `every`.
    ///
    /// # Errors
    /// [`LogError::Io`] when the file cannot be created or written.
    pub fn create(path: &Path, every: Duration) -> Result<LogWriter, LogError> {
        let stdout = path.as_os_str() == STANDARD_STREAM;
        let shown = shown(path, "stdout");
        let out: Box<dyn Write + Send> = if stdout {
            Box::new(io::stdout())
        } else {
            let file = File::create(path).map_err(|source| LogError::Io {
                doing: "create",
                path: shown.clone(),
                source,
            })?;
            Box::new(BufWriter::new(file))
        };
        let mut log = LogWriter {
            path: shown,
            out,
            stdout,
            serializer: V2DeflateSerializer::new(),
        };
        log.comment(&format!(
            "[echo-bench {} histogram log: the latency of each exchange in nanoseconds, \
             one histogram per {} of the load]",
            env!("CARGO_PKG_VERSION"),
            echo_proto::Human(every)
        ))?;
        // As Java's HistogramLogWriter writes it, for readers that look.
        log.comment("[Histogram log format version 1.3]")?;
        Ok(log)
    }

    /// Whether the log goes to stdout, leaving no room there for anything else.
    pub fn is_stdout(&self) -> bool {
        self.stdout
    }

    /// Writes `text` as comments, one per line, at once.
    ///
    /// # Errors
    /// [`LogError::Io`] when the log cannot be written.
    pub fn comment(&mut self, text: &str) -> Result<(), LogError> {
        for line in text.lines() {
            writeln!(self.out, "#{line}").map_err(|source| self.failed(source))?;
        }
        self.flush()
    }

    /// Writes the start of the load, `start`, as the StartTime and BaseTime
    /// that interval timestamps count from, and the legend.
    pub(super) fn begin(&mut self, start: SystemTime) -> Result<(), LogError> {
        let header = IntervalLogWriterBuilder::new()
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut self.out, &mut self.serializer)
            .map(drop);
        header.map_err(|source| self.failed(source))?;
        writeln!(self.out, "{LEGEND}").map_err(|source| self.failed(source))?;
        self.flush()
    }

    /// Writes one interval: `histogram`, the latencies of the `length` from
    /// `from` after the start of the load.
    pub(super) fn interval(
        &mut self,
        histogram: &Histogram<u64>,
        from: Duration,
        length: Duration,
    ) -> Result<(), LogError> {
        // A builder with nothing to say writes no header: only the interval.
        let written = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.out, &mut self.serializer)
            .map_err(IntervalLogWriterError::IoError)
            .and_then(|mut log| log.write_histogram(histogram, from, length, None));
        written.map_err(|error| {
            self.failed(match error {
                IntervalLogWriterError::IoError(source) => source,
                IntervalLogWriterError::SerializeError(error) => {
                    io::Error::other(error.to_string())
                }
            })
        })?;
        self.flush()
    }

    /// Ends the log with the run's `report`, which a merge reads its counts,
    /// errors and CPU time from, and which proves the log whole.
    ///
    /// # Errors
    /// [`LogError::Io`] when the log cannot be written.
    pub fn finish(mut self, report: &Report) -> Result<(), LogError> {
        writeln!(self.out, "{REPORT_START}{}{REPORT_END}", report.to_json())
            .map_err(|source| self.failed(source))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<(), LogError> {
        self.out.flush().map_err(|source| self.failed(source))
    }

    fn failed(&self, source: io::Error) -> LogError {
        LogError::Io {
            doing: "write",
            path: self.path.clone(),
            source,
        }
    }
}

/// The log of a run as it goes: from its start, one interval's latencies
/// after another, and the last, shorter, when the run ends.
#[derive(Debug)]
pub struct Recording {
    /// Tells the thread the run is over; dropped, it does too.
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Result<LogWriter, LogError>>,
}

impl Recording {
    /// Starts logging into `log`, from now, which is the start of the load:
    /// every `every`, the latencies `live` gathered since the last interval.
    /// With no intervals gathered in `live`, each interval is empty.
    pub fn start(mut log: LogWriter, live: Arc<Live>, every: Duration) -> Recording {
        let (stop, stopped) = mpsc::channel();
        let started_at = SystemTime::now();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            log.begin(started_at)?;
            let mut from = Duration::ZERO;
            loop {
                let boundary = started + from + every;
                let ended = match stopped
                    .recv_timeout(boundary.saturating_duration_since(Instant::now()))
                {
                    Err(RecvTimeoutError::Timeout) => false,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                };
                let until = if ended {
                    started.elapsed()
                } else {
                    from + every
                };
                let length = until.saturating_sub(from);
                let histogram = live
                    .intervals
                    .as_ref()
                    .map_or_else(latency_histogram, |intervals| intervals.take(length));
                log.interval(&histogram, from, length)?;
                if ended {
                    return Ok(log);
                }
                from = until;
            }
        });
        Recording { stop, thread }
    }

    /// Ends the log's intervals with the last one, up to now, and hands the
    /// log back for its report.
    ///
    /// # Errors
    /// [`LogError::Io`] when the log could not be written.
    pub fn finish(self) -> Result<LogWriter, LogError> {
        // A thread that stopped early, its log failed, has the error to tell.
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_else(|_| {
            Err(LogError::Io {
                doing: "write",
                path: "the histogram log".to_owned(),
                source: io::Error::other("the thread writing it panicked"),
            })
        })
    }
}
