//! Reading histogram logs back and merging them: every interval of every
//! log added into one histogram, each log's report kept for its counts, and
//! any line that is not what a log holds refused with its file and number.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use super::{Corrupt, LEGEND, LogError, REPORT_END, REPORT_START, STANDARD_STREAM, shown};
use crate::report::{self, Part, Report};
use crate::tally::latency_histogram;

/// How much of a foreign line an error quotes.
const QUOTED_CHARS: usize = 80;

/// The report of the runs whose histogram logs are at `paths` (`-`:
/// stdin), run together: see [`report::merge`].
///
/// # Errors
/// [`LogError::Io`] for a log that cannot be read, [`LogError::Corrupt`]
/// naming the file and line of the first line that is not what a log
/// holds, [`LogError::NoReport`] for a log cut short, and
/// [`LogError::Merge`] for runs that cannot be merged.
pub fn merge_logs(paths: &[PathBuf]) -> Result<Report, LogError> {
    let mut latency = latency_histogram();
    // Another tool's log may hold latencies past ours' ceiling.
    latency.auto(true);
    let mut logs = Vec::with_capacity(paths.len());
    for path in paths {
        let name = shown(path, "stdin");
        let report = if path.as_os_str() == STANDARD_STREAM {
            read_into(&name, io::stdin().lock(), &mut latency)?
        } else {
            read_into(&name, open(path, &name)?, &mut latency)?
        };
        logs.push((name, report));
    }
    let parts: Vec<Part<'_>> = logs
        .iter()
        .map(|(name, report)| Part { name, report })
        .collect();
    Ok(report::merge(&parts, &latency)?)
}

fn open(path: &Path, name: &str) -> Result<BufReader<File>, LogError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| LogError::Io {
            doing: "read",
            path: name.to_owned(),
            source,
        })
}

/// Adds every interval of the log `name`, read from `reader`, to
/// `latency`, and returns the report it ends with, once sure the intervals
/// hold a latency for each exchange it counts. (They may hold more: the
/// exchanges of workers abandoned at the run's hard deadline, whose counts
/// the report could not collect.)
fn read_into(
    name: &str,
    reader: impl BufRead,
    latency: &mut Histogram<u64>,
) -> Result<Report, LogError> {
    let before = latency.len();
    let mut report: Option<Report> = None;
    let mut deserializer = Deserializer::new();
    for (index, line) in reader.split(b'\n').enumerate() {
        let corrupt = |problem| LogError::Corrupt {
            path: name.to_owned(),
            line: index + 1,
            problem,
        };
        let bytes = line.map_err(|source| LogError::Io {
            doing: "read",
            path: name.to_owned(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| corrupt(Corrupt::NotText))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if let Some(json) = text
            .strip_prefix(REPORT_START)
            .and_then(|rest| rest.strip_suffix(REPORT_END))
        {
            if report.is_some() {
                return Err(corrupt(Corrupt::SecondReport));
            }
            report = Some(serde_json::from_str(json).map_err(|err| corrupt(Corrupt::Report(err)))?);
        } else if text.trim().is_empty() || text.starts_with('#') || text == LEGEND {
            // Comments (the start and base times among them) and the legend
            // say nothing the sum needs.
        } else if text.starts_with(|c: char| c.is_ascii_digit()) || text.starts_with("Tag=") {
            if report.is_some() {
                return Err(corrupt(Corrupt::AfterReport));
            }
            let interval = decode(text, &mut deserializer).map_err(corrupt)?;
            latency
                .add(&interval)
                .map_err(|err| corrupt(Corrupt::Addition(err)))?;
        } else {
            let mut quoted: String = text.chars().take(QUOTED_CHARS).collect();
            if quoted.len() < text.len() {
                quoted.push('…');
            }
            return Err(corrupt(Corrupt::Foreign(quoted)));
        }
    }
    let report = report.ok_or_else(|| LogError::NoReport {
        path: name.to_owned(),
    })?;
    let logged = latency.len() - before;
    if logged < report.exchanges {
        return Err(LogError::Incomplete {
            path: name.to_owned(),
            logged,
            exchanges: report.exchanges,
        });
    }
    Ok(report)
}

/// The histogram of one interval line, `[Tag=TAG,]START,LENGTH,MAX,HISTOGRAM`.
fn decode(line: &str, deserializer: &mut Deserializer) -> Result<Histogram<u64>, Corrupt> {
    // The parser wants the line's end, which splitting took off.
    let whole = format!("{line}\n");
    let Some(Ok(LogEntry::Interval(interval))) = IntervalLogIterator::new(whole.as_bytes()).next()
    else {
        return Err(Corrupt::Interval);
    };
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(interval.encoded_histogram())
        .map_err(Corrupt::Base64)?;
    deserializer
        .deserialize(&mut compressed.as_slice())
        .map_err(Corrupt::Histogram)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::histogram_log::LogWriter;
    use crate::plan::Scenario;
    use crate::report::tests::{plan, report_of};
    use crate::tally::Tally;

    /// A fresh file path under the system's temporary directory.
    fn temporary(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "echo-bench-{tag}-{}-{:?}.hlog",
            std::process::id(),
            std::thread::current().id()
        ))
    }

    /// The log of a `persistent` run whose exchanges took `latencies`,
    /// spread over intervals of three latencies each.
    fn log_of(tag: &str, latencies: &[Duration]) -> PathBuf {
        let path = temporary(tag);
        let mut log = LogWriter::create(&path, Duration::from_secs(1)).expect("create");
        log.begin(std::time::SystemTime::now()).expect("begin");
        let mut tally = Tally::new();
        for (n, chunk) in latencies.chunks(3).enumerate() {
            let mut interval = latency_histogram();
            for &latency in chunk {
                tally.succeeded(64, latency);
                interval
                    .record(u64::try_from(latency.as_nanos()).expect("small"))
                    .expect("in range");
            }
            let from = Duration::from_secs(n as u64);
            log.interval(&interval, from, Duration::from_secs(1))
                .expect("interval");
        }
        log.finish(&report_of(&plan(Scenario::Persistent), tally))
            .expect("finish");
        path
    }

    #[test]
    fn merged_percentiles_are_those_of_every_latency_in_one_histogram() {
        // Three generators with different shapes: a fast one, a slow one, one with a tail.
        let micros = |values: &[u64]| -> Vec<Duration> {
            values.iter().map(|&v| Duration::from_micros(v)).collect()
        };
        let generators = [
            micros(&(1..=400).map(|n| 20 + n % 17).collect::<Vec<_>>()),
            micros(&(1..=250).map(|n| 300 + n * 3).collect::<Vec<_>>()),
            micros(
                &(1..=100)
                    .map(|n| if n % 25 == 0 { 90_000 } else { 50 + n })
                    .collect::<Vec<_>>(),
            ),
        ];
        let paths: Vec<PathBuf> = generators
            .iter()
            .enumerate()
            .map(|(n, latencies)| log_of(&format!("merge{n}"), latencies))
            .collect();
        let merged = merge_logs(&paths);
        for path in &paths {
            let _ = std::fs::remove_file(path);
        }
        let merged = merged.expect("merges");

        let mut every = latency_histogram();
        for latency in generators.iter().flatten() {
            every
                .record(u64::try_from(latency.as_nanos()).expect("small"))
                .expect("in range");
        }
        let micros_at = |quantile: f64| every.value_at_quantile(quantile) as f64 / 1_000.0;
        assert_eq!(merged.exchanges, 750);
        assert_eq!(merged.bytes, 750 * 64);
        assert_eq!(merged.generators, Some(3));
        assert_eq!(merged.workers, 150);
        assert_eq!(merged.p50_us, micros_at(0.5));
        assert_eq!(merged.p99_us, micros_at(0.99));
        assert_eq!(merged.p999_us, micros_at(0.999));
        assert_eq!(merged.max_us, every.max() as f64 / 1_000.0);
        assert_eq!(merged.mean_us, every.mean() / 1_000.0);
        // An average of the three p99s would be far from the truth.
        assert!(merged.p99_us >= 1_000.0, "{}", merged.p99_us);
    }

    fn corrupt_line(log: &str) -> (usize, String) {
        let mut sum = latency_histogram();
        match read_into("x.hlog", log.as_bytes(), &mut sum) {
            Err(LogError::Corrupt {
                path,
                line,
                problem,
            }) => {
                assert_eq!(path, "x.hlog");
                (line, problem.to_string())
            }
            other => panic!("not a corrupt line: {other:?}"),
        }
    }

    #[test]
    fn a_corrupt_line_is_named_by_file_and_number() {
        let path = log_of("corrupt", &[Duration::from_micros(5); 7]);
        let good = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = good.lines().collect();
        let first_interval = lines
            .iter()
            .position(|line| line.starts_with("0.000,"))
            .expect("an interval");
        let replaced = |index: usize, with: &str| {
            let mut changed = lines.clone();
            changed[index] = with;
            changed.join("\n")
        };
        let line = first_interval + 1;
        let interval = lines[first_interval];
        let cut = &interval[..interval.len() - 10];
        let (at, problem) = corrupt_line(&replaced(first_interval, cut));
        assert_eq!(at, line);
        assert!(problem.starts_with("its histogram"), "{problem}");
        let (at, problem) = corrupt_line(&replaced(
            first_interval,
            "error: nothing listens at 10.0.0.1:7",
        ));
        assert_eq!(
            (at, problem.as_str()),
            (
                line,
                "not a line of a histogram log: \"error: nothing listens at 10.0.0.1:7\""
            )
        );
        let (_, problem) = corrupt_line(&replaced(first_interval, "0.000,1.000"));
        assert_eq!(problem, "not an interval (START,LENGTH,MAX,HISTOGRAM)");
        let (_, problem) = corrupt_line(&replaced(first_interval, "0.000,1.000,5.000,!!!!"));
        assert!(
            problem.starts_with("its histogram is not base64"),
            "{problem}"
        );
        let report = lines.last().expect("the report");
        let (at, problem) = corrupt_line(&format!("{good}{report}\n"));
        assert_eq!(at, lines.len() + 1);
        assert!(problem.starts_with("a second report"), "{problem}");
        let (_, problem) = corrupt_line(&format!("{good}{interval}\n"));
        assert!(
            problem.starts_with("an interval after the report"),
            "{problem}"
        );
        let (_, problem) = corrupt_line(&replaced(
            lines.len() - 1,
            "#[echo-bench report: {\"ok\":true}]",
        ));
        assert!(
            problem.starts_with("its report is not an echo-bench report"),
            "{problem}"
        );
        let mut sum = latency_histogram();
        let cut_short = lines[..lines.len() - 1].join("\n");
        assert!(matches!(
            read_into("x.hlog", cut_short.as_bytes(), &mut sum),
            Err(LogError::NoReport { .. })
        ));
        let mut headless = lines.clone();
        headless.remove(first_interval);
        let error = read_into("x.hlog", headless.join("\n").as_bytes(), &mut sum)
            .expect_err("an interval missing");
        assert_eq!(
            error.to_string(),
            "x.hlog holds the latencies of 4 exchanges but its report counts 7: intervals \
             are missing from it"
        );
        let mut sum = latency_histogram();
        assert!(read_into("x.hlog", good.as_bytes(), &mut sum).is_ok());
        assert_eq!(sum.len(), 7);
    }

    #[test]
    fn no_change_to_one_byte_of_an_interval_panics() {
        let path = log_of(
            "bytes",
            &[Duration::from_micros(5), Duration::from_millis(3)],
        );
        let good = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        let interval = good
            .lines()
            .find(|line| line.starts_with("0.000,"))
            .expect("an interval");
        let mut deserializer = Deserializer::new();
        let replacements = b"A/+9z,.";
        for at in 0..interval.len() {
            for &byte in replacements {
                let mut changed = interval.as_bytes().to_vec();
                changed[at] = byte;
                let Ok(changed) = String::from_utf8(changed) else {
                    continue;
                };
                // An error or a histogram, whichever: what is tested is that it returns.
                let _ = decode(&changed, &mut deserializer);
            }
        }
    }
}
