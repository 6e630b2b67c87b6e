//! Probe mode's output: a line per probe and ping's summary, as text or as
//! JSON lines, and the summary also on Ctrl-C and at the `-w` deadline.
//!
//! Ctrl-C and the deadline are each handled on a thread of their own, which
//! prints the summary of the probes finished so far and exits at once: a
//! probe in flight may be blocked for up to the timeout, and ping's users
//! expect the summary now. The probe in flight is in no count (see
//! [`Tally`]), so stopping a healthy run exits 0.

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use echo_client::probe::{Event, Plan, Prober, Rtt, Tally, Transport};
use echo_client::{Client, Endpoint, Target};
use serde::Serialize;
use signal_hook::consts::SIGINT;
use signal_hook::iterator::Signals;

/// The exit status of a second Ctrl-C while the summary is being written,
/// the shell's for death by SIGINT.
const SECOND_INTERRUPT_STATUS: i32 = 130;

/// What probe mode prints, and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// JSON lines instead of ping's text.
    pub(crate) json: bool,
    /// No line per probe.
    pub(crate) quiet: bool,
    /// When to stop, after the first probe starts.
    pub(crate) deadline: Option<Duration>,
}

/// Runs the plan against `client`, printing as it goes; the exit status
/// follows the run: 0 only when every probe came back exact.
///
/// # Errors
/// A host name that does not resolve, or a UDP socket that cannot be made.
pub(crate) fn run(client: &Client, plan: Plan, output: Output) -> anyhow::Result<ExitCode> {
    let transport = plan.transport;
    let prober = Prober::new(client, plan)?;
    let report = Arc::new(Mutex::new(Report {
        json: output.json,
        target: client.target().clone(),
        transport,
        tls: client.is_tls(),
        started: Instant::now(),
        tally: Tally::default(),
        hinted: false,
        output: None,
        finished: None,
    }));
    handle_interrupt(Arc::clone(&report))?;
    {
        let mut report = lock(&report);
        if !output.json {
            let header = header(client.target(), &prober, transport);
            report.write_line(&header);
        }
        report.started = Instant::now();
    }
    if let Some(deadline) = output.deadline {
        let report = Arc::clone(&report);
        thread::spawn(move || {
            // Not synchronisation: the deadline is a span of time.
            thread::sleep(deadline);
            stop(&report);
        });
    }
    prober.run(|event| {
        let mut report = lock(&report);
        report.tally.record(&event);
        if !output.quiet {
            let line = report.event_line(&event, SystemTime::now());
            report.write_line(&line);
        }
        if report.output.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    Ok(ExitCode::from(lock(&report).finish()))
}

/// On the first Ctrl-C, writes the summary and exits by the usual rule; a
/// second one, should the first be stuck writing, exits at once.
fn handle_interrupt(report: Arc<Mutex<Report>>) -> anyhow::Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    // The shutdown is registered first, so it is armed only by the second signal.
    signal_hook::flag::register_conditional_shutdown(
        SIGINT,
        SECOND_INTERRUPT_STATUS,
        Arc::clone(&interrupted),
    )
    .context("cannot handle Ctrl-C")?;
    signal_hook::flag::register(SIGINT, interrupted).context("cannot handle Ctrl-C")?;
    let mut signals = Signals::new([SIGINT]).context("cannot handle Ctrl-C")?;
    thread::spawn(move || {
        if signals.forever().next().is_some() {
            stop(&report);
        }
    });
    Ok(())
}

/// Ends the run from outside it (Ctrl-C, the deadline): writes the summary,
/// unless the run's end wrote it first, and exits by the usual rule.
fn stop(report: &Mutex<Report>) -> ! {
    let mut report = lock(report);
    let code = report.finish();
    // Still holding the report, so no probe line can follow the summary:
    // exit does not return.
    std::process::exit(i32::from(code));
}

fn lock(report: &Mutex<Report>) -> MutexGuard<'_, Report> {
    // A panic elsewhere does not make the counts wrong.
    report.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What probe mode prints, and what it has counted.
#[derive(Debug)]
struct Report {
    json: bool,
    target: Target,
    transport: Transport,
    /// Whether the probes go over TLS.
    tls: bool,
    started: Instant,
    tally: Tally,
    /// Whether a text line already said what to do about a server that is
    /// not there: once is enough.
    hinted: bool,
    /// Set once a write to stdout failed: nothing more is written.
    output: Option<io::Error>,
    /// The exit status, once the summary is written: the run's end and
    /// Ctrl-C may both come to write it, and only the first does.
    finished: Option<u8>,
}

impl Report {
    /// Writes one line to stdout, unless an earlier write failed; remembers
    /// a failure, which ends the run.
    fn write_line(&mut self, line: &str) {
        if self.output.is_some() {
            return;
        }
        let mut stdout = io::stdout().lock();
        let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        if let Err(err) = written {
            self.output = Some(err);
        }
    }

    /// Writes the summary (once) and gives the exit status: 0 when every
    /// probe came back exact, else 1; a closed stdout ends quietly with 0, as
    /// for one message, and a stdout that fails otherwise with an `error:` line and 1.
    fn finish(&mut self) -> u8 {
        if let Some(code) = self.finished {
            return code;
        }
        let elapsed = self.started.elapsed();
        for line in self.summary_lines(elapsed) {
            self.write_line(&line);
        }
        let code = match &self.output {
            Some(err) if err.kind() == io::ErrorKind::BrokenPipe => 0,
            Some(err) => {
                let _ = writeln!(io::stderr().lock(), "error: cannot write to stdout: {err}");
                1
            }
            None => u8::from(!self.tally.all_exact()),
        };
        self.finished = Some(code);
        code
    }

    /// The line for `event`, reported at `at`; the first text line about
    /// a server that is not there says what to do about it.
    fn event_line(&mut self, event: &Event, at: SystemTime) -> String {
        if self.json {
            return json_line(&ProbeLine::new(event, at));
        }
        let mut line = text_line(event);
        let step = match event {
            Event::Failed { error, .. } if !self.hinted => {
                crate::cli::hint::next_step(error, self.transport == Transport::Udp, self.tls)
            }
            _ => None,
        };
        if let Some(step) = step {
            self.hinted = true;
            line.push_str("; ");
            line.push_str(&step);
        }
        line
    }

    fn summary_lines(&self, elapsed: Duration) -> Vec<String> {
        if self.json {
            let summary = SummaryLine::new(&self.target, self.transport, &self.tally, elapsed);
            vec![json_line(&summary)]
        } else {
            text_summary(&self.target, &self.tally, elapsed)
        }
    }
}

/// The line before the first probe, as ping's `PING host (address) ...`.
fn header(target: &Target, prober: &Prober, transport: Transport) -> String {
    let addresses = prober.addresses();
    let resolved = match target {
        Target::Name { .. } if !addresses.is_empty() => {
            let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            format!(" ({})", list.join(", "))
        }
        _ => String::new(),
    };
    let stream = match (target, prober.tls()) {
        (_, Some(negotiated)) => format!("tls ({negotiated})"),
        (Target::Endpoint(Endpoint::Unix(_)), None) => "a unix socket".to_owned(),
        _ => "tcp".to_owned(),
    };
    let how = match transport {
        Transport::Connect => format!("{stream}, a new connection per probe"),
        Transport::Persistent => format!("{stream}, one connection for all probes"),
        Transport::Udp => "udp".to_owned(),
    };
    format!(
        "ECHO {target}{resolved} over {how}: {} bytes per probe",
        prober.probe_len()
    )
}

/// Milliseconds, as ping shows round trips.
fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Milliseconds to the microsecond, so that JSON carries no digits of float noise.
fn json_millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// One probe's line: `64 bytes from 127.0.0.1:7007: seq=3 time=0.211 ms`,
/// then a TLS handshake's time (`handshake=0.150 ms`) for a probe that made
/// one, and what went wrong after it, or in its place.
fn text_line(event: &Event) -> String {
    match event {
        Event::Reply(reply) => {
            let mut line = format!(
                "{} bytes from {}: seq={} time={:.3} ms",
                reply.bytes,
                reply.from,
                reply.seq,
                millis(reply.rtt)
            );
            if let Some(handshake) = reply.handshake {
                line.push_str(&format!(" handshake={:.3} ms", millis(handshake)));
            }
            if reply.duplicate {
                line.push_str(" (DUP!)");
            }
            if reply.reordered {
                line.push_str(" (out of order)");
            }
            if reply.late {
                line.push_str(" (late: counted lost)");
            }
            if let Err(mismatch) = &reply.check {
                line.push_str(&format!(" CORRUPT: {mismatch}"));
            }
            line
        }
        Event::Failed { seq, error } => format!("seq={seq}: {}", chain(error)),
        Event::Lost { seq, after } => {
            format!("seq={seq}: no reply within {}", echo_proto::Human(*after))
        }
        Event::Stray { from, bytes } => {
            format!("{bytes} bytes from {from}: stray datagram, no probe of this run")
        }
    }
}

/// An error and its causes on one line, as `error:` lines give them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Ping's summary: a blank line, a title, the counts and the round trips.
fn text_summary(target: &Target, tally: &Tally, elapsed: Duration) -> Vec<String> {
    let mut counts = format!("{} probes sent, {} received", tally.sent, tally.received);
    for (count, what) in [
        (tally.duplicates, "duplicates"),
        (tally.reordered, "reordered"),
        (tally.late, "late"),
        (tally.corrupt, "corrupt"),
        (tally.errors, "errors"),
        (tally.stray, "stray"),
    ] {
        if count > 0 {
            let sign = if what == "duplicates" { "+" } else { "" };
            counts.push_str(&format!(", {sign}{count} {what}"));
        }
    }
    counts.push_str(&format!(
        ", {}% lost, {} ms",
        percent(tally.lost(), tally.sent),
        elapsed.as_millis()
    ));
    let mut lines = vec![
        String::new(),
        format!("--- {target} echo statistics ---"),
        counts,
    ];
    if let Some(rtt) = tally.rtt() {
        lines.push(format!(
            "rtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
            millis(rtt.min),
            millis(rtt.avg),
            millis(rtt.max),
            millis(rtt.mdev)
        ));
    }
    lines
}

/// `part` of `whole` as a percentage for people: one decimal at most, and
/// never rounded to 0 or 100 when it is not exactly that.
fn percent(part: u64, whole: u64) -> String {
    if part == 0 || whole == 0 {
        return "0".to_owned();
    }
    if part >= whole {
        return "100".to_owned();
    }
    let exact = part as f64 * 100.0 / whole as f64;
    let mut text = format!("{exact:.1}");
    if text == "0.0" || text == "100.0" {
        text = format!("{exact:.6}");
    }
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    text
}

fn json_line(value: &impl Serialize) -> String {
    // Plain structs of numbers, strings and booleans always serialize.
    serde_json::to_string(value).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
}

/// One probe as a JSON object; every key is always there, `null` when it
/// does not apply.
#[derive(Debug, Serialize)]
struct ProbeLine {
    /// Always `"probe"`.
    #[serde(rename = "type")]
    kind: &'static str,
    seq: Option<u64>,
    /// `ok`, `corrupt`, `error`, `lost` or `stray`.
    status: &'static str,
    from: Option<String>,
    bytes: Option<usize>,
    time_ms: Option<f64>,
    /// Over TLS, the handshake's time, for a probe that made a connection.
    handshake_ms: Option<f64>,
    /// When the event was reported, in seconds since 1970 to the
    /// microsecond, as ping -D stamps its lines.
    unix_time_s: f64,
    duplicate: bool,
    reordered: bool,
    late: bool,
    /// What went wrong: the error, or where a corrupt reply departs.
    error: Option<String>,
}

impl ProbeLine {
    fn new(event: &Event, at: SystemTime) -> Self {
        let since_epoch = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = ProbeLine {
            kind: "probe",
            seq: event.seq(),
            status: "ok",
            from: None,
            bytes: None,
            time_ms: None,
            handshake_ms: None,
            // Whole microseconds, so that JSON carries no digits of float noise.
            unix_time_s: since_epoch.as_micros() as f64 / 1e6,
            duplicate: false,
            reordered: false,
            late: false,
            error: None,
        };
        match event {
            Event::Reply(reply) => {
                line.from = Some(reply.from.to_string());
                line.bytes = Some(reply.bytes);
                line.time_ms = Some(json_millis(reply.rtt));
                line.handshake_ms = reply.handshake.map(json_millis);
                line.duplicate = reply.duplicate;
                line.reordered = reply.reordered;
                line.late = reply.late;
                if let Err(mismatch) = &reply.check {
                    line.status = "corrupt";
                    line.error = Some(mismatch.to_string());
                }
            }
            Event::Failed { error, .. } => {
                line.status = if event.is_corrupt() {
                    "corrupt"
                } else {
                    "error"
                };
                line.error = Some(chain(error));
            }
            Event::Lost { after, .. } => {
                line.status = "lost";
                line.error = Some(format!("no reply within {}", echo_proto::Human(*after)));
            }
            Event::Stray { from, bytes } => {
                line.status = "stray";
                line.from = Some(from.to_string());
                line.bytes = Some(*bytes);
            }
        }
        line
    }
}

/// The summary as a JSON object.
#[derive(Debug, Serialize)]
struct SummaryLine {
    /// Always `"summary"`.
    #[serde(rename = "type")]
    kind: &'static str,
    target: String,
    /// `connect`, `persistent` or `udp`.
    mode: &'static str,
    sent: u64,
    received: u64,
    lost: u64,
    loss_percent: f64,
    corrupt: u64,
    errors: u64,
    duplicates: u64,
    reordered: u64,
    late: u64,
    stray: u64,
    time_ms: u64,
    /// `null` when no probe came back exact.
    rtt_ms: Option<RttLine>,
    /// Whether every probe came back exactly once, byte for byte: the exit status is 0.
    exact: bool,
}

#[derive(Debug, Serialize)]
struct RttLine {
    min: f64,
    avg: f64,
    max: f64,
    mdev: f64,
}

impl From<Rtt> for RttLine {
    fn from(rtt: Rtt) -> Self {
        RttLine {
            min: json_millis(rtt.min),
            avg: json_millis(rtt.avg),
            max: json_millis(rtt.max),
            mdev: json_millis(rtt.mdev),
        }
    }
}

impl SummaryLine {
    fn new(target: &Target, transport: Transport, tally: &Tally, elapsed: Duration) -> Self {
        SummaryLine {
            kind: "summary",
            target: target.to_string(),
            mode: match transport {
                Transport::Connect => "connect",
                Transport::Persistent => "persistent",
                Transport::Udp => "udp",
            },
            sent: tally.sent,
            received: tally.received,
            lost: tally.lost(),
            loss_percent: tally.loss_percent(),
            corrupt: tally.corrupt,
            errors: tally.errors,
            duplicates: tally.duplicates,
            reordered: tally.reordered,
            late: tally.late,
            stray: tally.stray,
            time_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            rtt_ms: tally.rtt().map(RttLine::from),
            exact: tally.all_exact(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_client::probe::Reply;
    use echo_proto::Mismatch;

    fn reply(seq: u64) -> Reply {
        Reply {
            seq,
            from: Endpoint::Ip("127.0.0.1:7007".parse().expect("literal")),
            bytes: 64,
            rtt: Duration::from_micros(211),
            handshake: None,
            check: Ok(()),
            duplicate: false,
            reordered: false,
            late: false,
        }
    }

    #[test]
    fn percentages_never_round_to_a_lie() {
        assert_eq!(percent(0, 5), "0");
        assert_eq!(percent(0, 0), "0");
        assert_eq!(percent(5, 5), "100");
        assert_eq!(percent(3, 6), "50");
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(1, 100_000), "0.001");
        assert_eq!(percent(99_999, 100_000), "99.999");
    }

    #[test]
    fn probe_lines_read_like_pings() {
        assert_eq!(
            text_line(&Event::Reply(reply(3))),
            "64 bytes from 127.0.0.1:7007: seq=3 time=0.211 ms"
        );
        let corrupt = Reply {
            check: Err(Mismatch {
                offset: 0,
                sent_len: 64,
                received_len: 64,
            }),
            duplicate: true,
            ..reply(4)
        };
        assert_eq!(
            text_line(&Event::Reply(corrupt)),
            "64 bytes from 127.0.0.1:7007: seq=4 time=0.211 ms (DUP!) CORRUPT: \
             reply differs from what was sent at byte 0 (sent 64 bytes, received 64)"
        );
        let over_tls = Reply {
            handshake: Some(Duration::from_micros(150)),
            ..reply(5)
        };
        assert_eq!(
            text_line(&Event::Reply(over_tls)),
            "64 bytes from 127.0.0.1:7007: seq=5 time=0.211 ms handshake=0.150 ms"
        );
        assert_eq!(
            text_line(&Event::Lost {
                seq: 5,
                after: Duration::from_secs(1)
            }),
            "seq=5: no reply within 1s"
        );
    }

    #[test]
    fn the_summary_has_pings_shape() {
        let mut tally = Tally::default();
        tally.record(&Event::Reply(reply(1)));
        tally.record(&Event::Lost {
            seq: 2,
            after: Duration::from_secs(1),
        });
        tally.record(&Event::Reply(Reply {
            duplicate: true,
            ..reply(1)
        }));
        let target: Target = "localhost:7007".parse().expect("literal");
        let lines = text_summary(&target, &tally, Duration::from_millis(1204));
        assert_eq!(
            lines,
            [
                "",
                "--- localhost:7007 echo statistics ---",
                "2 probes sent, 1 received, +1 duplicates, 50% lost, 1204 ms",
                "rtt min/avg/max/mdev = 0.211/0.211/0.211/0.000 ms",
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&json_line(&SummaryLine::new(
            &target,
            Transport::Udp,
            &tally,
            Duration::from_millis(1204),
        )))
        .expect("JSON");
        assert_eq!(json["type"], "summary");
        assert_eq!(json["sent"], 2);
        assert_eq!(json["duplicates"], 1);
        assert_eq!(json["loss_percent"], 50.0);
        assert_eq!(json["exact"], false);
        assert_eq!(json["rtt_ms"]["min"], 0.211);
    }
}
