//! The histogram log: a run's latencies as an HdrHistogram interval log,
//! the standard text form that HdrHistogram's tools in other languages read,
//! so that the runs of generators on many machines add up exactly.
//!
//! A log is made of lines: comments (`#`), the `#[StartTime: ...]` and
//! `#[BaseTime: ...]` of the load's start, a legend, then one interval per
//! line, `START,LENGTH,MAX,HISTOGRAM`, its histogram of latencies in
//! nanoseconds compressed (V2 with DEFLATE) and in base64, and last the
//! run's JSON report as the comment `#[echo-bench report: {...}]`, which
//! other tools skip. What a person would have read on stderr may come as
//! comments too, when the log goes to stdout.
//!
//! `write` makes logs as a run goes ([`LogWriter`], [`Recording`]); `read`
//! reads them back and [`merge_logs`] joins them into one [`Report`](crate::Report),
//! whose percentiles come from the sum of every interval of every log.

mod read;
mod write;

use std::io;

pub use read::merge_logs;
pub use write::{LogWriter, Recording};

use crate::report::MergeError;

/// How a log's report line begins; it ends with [`REPORT_END`].
const REPORT_START: &str = "#[echo-bench report: ";
/// How a log's report line ends.
const REPORT_END: &str = "]";
/// The legend line of Java's `HistogramLogWriter`, which readers skip.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";
/// The path that stands for stdout (writing) or stdin (reading).
pub const STANDARD_STREAM: &str = "-";

/// Why a histogram log cannot be written, read or merged.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log's file or stream could not be opened, written or read.
    #[error("cannot {doing} the histogram log {path}")]
    Io {
        /// `create`, `write` or `read`.
        doing: &'static str,
        /// The log's path as given (`stdout` or `stdin` for `-`).
        path: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A line of a log is not one a histogram log holds, or does not decode.
    #[error("{path} line {line}")]
    Corrupt {
        /// The log's path as given.
        path: String,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        #[source]
        problem: Corrupt,
    },
    /// A log ends without the report its run writes last: the run did not
    /// finish, or the log was cut short.
    #[error(
        "{path} ends without an echo-bench report: its run did not finish, or the log was cut short"
    )]
    NoReport {
        /// The log's path as given.
        path: String,
    },
    /// A log's intervals hold fewer latencies than its report counts
    /// exchanges: lines were lost (the start of a log rotated away, say).
    #[error(
        "{path} holds the latencies of {logged} exchanges but its report counts {exchanges}: \
         intervals are missing from it"
    )]
    Incomplete {
        /// The log's path as given.
        path: String,
        /// The latencies its intervals hold.
        logged: u64,
        /// The exchanges its report counts.
        exchanges: u64,
    },
    /// The logs' runs cannot be merged.
    #[error(transparent)]
    Merge(#[from] MergeError),
}

/// What is wrong with one line of a log.
#[derive(Debug, thiserror::Error)]
pub enum Corrupt {
    /// The line is neither a comment, nor the legend, nor an interval
    /// (another program's output mixed in, say).
    #[error("not a line of a histogram log: {0:?}")]
    Foreign(String),
    /// The line is not text.
    #[error("not UTF-8 text")]
    NotText,
    /// The line starts as an interval but is not `START,LENGTH,MAX,HISTOGRAM`.
    #[error("not an interval (START,LENGTH,MAX,HISTOGRAM)")]
    Interval,
    /// The interval's histogram is not base64.
    #[error("its histogram is not base64: {0}")]
    Base64(base64::DecodeError),
    /// The interval's histogram does not decode as a compressed histogram.
    #[error("its histogram does not decode: {0}")]
    Histogram(hdrhistogram::serialization::DeserializeError),
    /// The interval's histogram holds what latencies cannot be.
    #[error("its histogram cannot be added to the others: {0}")]
    Addition(hdrhistogram::AdditionError),
    /// The report line's JSON is not an echo-bench report.
    #[error("its report is not an echo-bench report: {0}")]
    Report(serde_json::Error),
    /// A second report: two logs joined into one file.
    #[error("a second report: each log holds one run, so give each its own file")]
    SecondReport,
    /// An interval after the report, which a run writes last.
    #[error("an interval after the report: each log holds one run, so give each its own file")]
    AfterReport,
}

/// `path` as messages name it: `stdout` or `stdin` for `-`.
fn shown(path: &std::path::Path, standard: &str) -> String {
    if path.as_os_str() == STANDARD_STREAM {
        standard.to_owned()
    } else {
        path.display().to_string()
    }
}
