//! `echo-client` in probe mode (`-c`, `-i`, `-s`), as ping is used: over
//! new connections, one persistent connection and UDP, against the real
//! server and against test servers that corrupt, drop, duplicate or
//! reorder replies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use assert_cmd::Command as Cmd;
use echo_tests::{Server, WAIT, binary, refusing_address};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `echo-client` with a bounded run and no settings from the environment.
pub fn echo_client() -> Cmd {
    let mut command = super::client_cli::echo_client();
    command.env_remove("ECHO_UDP").env_remove("RUST_LOG");
    command
}

/// What a finished run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let output = echo_client().args(args).output().expect("echo-client runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A probe line's parts: `BYTES bytes from ADDR: seq=N time=T ms` and what follows.
#[derive(Debug, PartialEq)]
struct ProbeLine {
    bytes: usize,
    from: String,
    seq: u64,
    rest: String,
}

fn parse_probe_line(line: &str) -> Option<ProbeLine> {
    let (bytes, line) = line.split_once(" bytes from ")?;
    let (from, line) = line.split_once(": seq=")?;
    let (seq, line) = line.split_once(" time=")?;
    let (time, rest) = line.split_once(" ms")?;
    let time: f64 = time.parse().ok()?;
    assert!(time >= 0.0, "{time}");
    Some(ProbeLine {
        bytes: bytes.parse().ok()?,
        from: from.to_owned(),
        seq: seq.parse().ok()?,
        rest: rest.to_owned(),
    })
}

/// Checks the two summary lines' shape, returning the counts line without
/// its elapsed time (`5 probes sent, 5 received, 0% lost`).
fn summary_counts(stdout: &str, target: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    let title = format!("--- {target} echo statistics ---");
    let at = lines
        .iter()
        .position(|line| *line == title)
        .unwrap_or_else(|| panic!("no {title:?} in:\n{stdout}"));
    assert_eq!(
        lines[at - 1],
        "",
        "a blank line before the summary:\n{stdout}"
    );
    let counts = lines[at + 1];
    let (counts, elapsed) = counts
        .rsplit_once(", ")
        .unwrap_or_else(|| panic!("{counts:?}"));
    let millis = elapsed
        .strip_suffix(" ms")
        .unwrap_or_else(|| panic!("{elapsed:?}"));
    millis
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("{elapsed:?}"));
    if let Some(rtt) = lines.get(at + 2) {
        let values = rtt
            .strip_prefix("rtt min/avg/max/mdev = ")
            .and_then(|rest| rest.strip_suffix(" ms"))
            .unwrap_or_else(|| panic!("{rtt:?}"));
        let values: Vec<f64> = values
            .split('/')
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{rtt:?}")))
            .collect();
        assert_eq!(values.len(), 4, "{rtt:?}");
        assert!(values[0] <= values[1] && values[1] <= values[2], "{rtt:?}");
    }
    assert!(at + 3 >= lines.len(), "lines after the summary:\n{stdout}");
    counts.to_owned()
}

fn probe_lines(stdout: &str) -> Vec<ProbeLine> {
    stdout.lines().filter_map(parse_probe_line).collect()
}

fn five_probes_come_back(mode: &str) {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let run = run(&["-c", "5", "-i", "200ms", "--mode", mode, "-a", &addr]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr, "");
    let how = match mode {
        "connect" => "a new connection per probe",
        _ => "one connection for all probes",
    };
    assert_eq!(
        run.stdout.lines().next(),
        Some(format!("ECHO {addr} over tcp, {how}: 64 bytes per probe").as_str())
    );
    let probes = probe_lines(&run.stdout);
    assert_eq!(
        probes,
        (1..=5)
            .map(|seq| ProbeLine {
                bytes: 64,
                from: addr.clone(),
                seq,
                rest: String::new()
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "5 probes sent, 5 received, 0% lost"
    );
    assert_eq!(run.stdout.lines().count(), 1 + 5 + 4, "{}", run.stdout);
}

#[test]
fn five_probes_on_new_connections_all_come_back() {
    five_probes_come_back("connect");
}

#[test]
fn five_probes_on_one_persistent_connection_all_come_back() {
    five_probes_come_back("persistent");
}

/// A server that echoes each chunk it reads with the chunk's first byte
/// changed, on `connections` connections: wrong for both TCP modes.
fn corrupting_stream_server(connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buffer) {
                    buffer[0] ^= 0x20;
                    if stream.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn corrupt_replies_are_reported_on_their_lines_and_fail_the_run() {
    for mode in ["connect", "persistent"] {
        // A persistent run reconnects after each corrupt reply.
        let addr = corrupting_stream_server(3).to_string();
        let run = run(&["-c", "3", "-i", "100ms", "--mode", mode, "-a", &addr]);
        assert_eq!(run.code, Some(1), "{mode}: {}{}", run.stdout, run.stderr);
        let probes = probe_lines(&run.stdout);
        assert_eq!(probes.len(), 3, "{mode}: {}", run.stdout);
        for (probe, seq) in probes.iter().zip(1..) {
            assert_eq!(probe.seq, seq);
            assert_eq!(
                probe.rest,
                " CORRUPT: reply differs from what was sent at byte 0 (sent 64 bytes, received 64)",
                "{mode}"
            );
        }
        assert_eq!(
            summary_counts(&run.stdout, &addr),
            "3 probes sent, 0 received, 3 corrupt, 100% lost",
            "{mode}"
        );
        assert!(
            !run.stdout.contains("rtt "),
            "no round trips without an exact reply"
        );
    }
}

#[test]
fn a_refused_probe_says_so_and_the_run_goes_on() {
    let (_socket, addr) = refusing_address();
    let addr = addr.to_string();
    let run = run(&["-c", "2", "-i", "100ms", "-a", &addr]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr, "");
    let failures: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.starts_with("seq="))
        .collect();
    assert_eq!(failures.len(), 2, "{}", run.stdout);
    for (line, seq) in failures.iter().zip(1..) {
        let prefix = format!("seq={seq}: cannot connect to {addr}: ");
        assert!(line.starts_with(&prefix), "{line}");
        assert!(line.contains("refused"), "{line}");
    }
    // What to do is said once, on the first line.
    let next_step = format!(
        "; is an echo server running there? start one with \
         `cargo run -p echo-server -- --listen {addr}`, or pick another with --addr"
    );
    assert!(failures[0].ends_with(&next_step), "{}", failures[0]);
    assert!(
        !failures[1].contains("; is an echo server"),
        "{}",
        failures[1]
    );
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "2 probes sent, 0 received, 2 errors, 100% lost"
    );
}

/// A UDP server on a thread that answers the `n`th datagram it gets (from 0)
/// with what `answer` returns, for `limit` datagrams.
fn udp_test_server(
    limit: usize,
    mut answer: impl FnMut(usize, &[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("address");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    thread::spawn(move || {
        let mut buffer = vec![0u8; 70_000];
        for n in 0..limit {
            let Ok((len, peer)) = socket.recv_from(&mut buffer) else {
                return;
            };
            for reply in answer(n, &buffer[..len]) {
                let _ = socket.send_to(&reply, peer);
            }
        }
    });
    addr
}

fn seqs_where(stdout: &str, predicate: impl Fn(&ProbeLine) -> bool) -> Vec<u64> {
    probe_lines(stdout)
        .into_iter()
        .filter(|probe| predicate(probe))
        .map(|probe| probe.seq)
        .collect()
}

#[test]
fn udp_probes_count_the_ones_a_lossy_server_drops() {
    let addr = udp_test_server(6, |n, datagram| {
        if n % 2 == 0 {
            Vec::new()
        } else {
            vec![datagram.to_vec()]
        }
    })
    .to_string();
    let run = run(&[
        "--udp",
        "-c",
        "6",
        "-i",
        "100ms",
        "--timeout",
        "1s",
        "-a",
        &addr,
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        seqs_where(&run.stdout, |probe| probe.rest.is_empty()),
        [2, 4, 6]
    );
    let mut lost: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.ends_with(": no reply within 1s"))
        .collect();
    lost.sort_unstable();
    assert_eq!(
        lost,
        [
            "seq=1: no reply within 1s",
            "seq=3: no reply within 1s",
            "seq=5: no reply within 1s"
        ]
    );
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "6 probes sent, 3 received, 50% lost"
    );
}

#[test]
fn udp_duplicates_are_reported_and_fail_the_run() {
    let addr =
        udp_test_server(3, |_, datagram| vec![datagram.to_vec(), datagram.to_vec()]).to_string();
    let run = run(&["--udp", "-c", "3", "-i", "100ms", "-a", &addr]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        seqs_where(&run.stdout, |probe| probe.rest.is_empty()),
        [1, 2, 3]
    );
    assert_eq!(
        seqs_where(&run.stdout, |probe| probe.rest == " (DUP!)"),
        [1, 2, 3]
    );
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "3 probes sent, 3 received, +3 duplicates, 0% lost"
    );
}

#[test]
fn udp_replies_out_of_order_are_noted_but_not_failed() {
    // Holds the first datagram back and sends it after the second's reply.
    let mut held = None;
    let addr = udp_test_server(3, move |n, datagram| match n {
        0 => {
            held = Some(datagram.to_vec());
            Vec::new()
        }
        1 => vec![datagram.to_vec(), held.take().unwrap_or_default()],
        _ => vec![datagram.to_vec()],
    })
    .to_string();
    let run = run(&["--udp", "-c", "3", "-i", "100ms", "-a", &addr]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let order: Vec<(u64, String)> = probe_lines(&run.stdout)
        .into_iter()
        .map(|probe| (probe.seq, probe.rest))
        .collect();
    assert_eq!(
        order,
        [
            (2, String::new()),
            (1, " (out of order)".to_owned()),
            (3, String::new())
        ]
    );
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "3 probes sent, 3 received, 1 reordered, 0% lost"
    );
}

#[test]
fn udp_corruption_is_pinned_to_its_probe_and_foreign_datagrams_are_strays() {
    let addr = udp_test_server(2, |n, datagram| {
        let mut reply = datagram.to_vec();
        if n == 0 {
            // The last byte, so the header still names the probe.
            if let Some(last) = reply.last_mut() {
                *last ^= 1;
            }
            vec![reply]
        } else {
            vec![reply, b"not a probe".to_vec()]
        }
    })
    .to_string();
    let run = run(&["--udp", "-c", "2", "-i", "100ms", "-a", &addr]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let probes = probe_lines(&run.stdout);
    assert_eq!(probes.len(), 2, "{}", run.stdout);
    assert_eq!(
        probes[0].rest,
        " CORRUPT: reply differs from what was sent at byte 63 (sent 64 bytes, received 64)"
    );
    assert_eq!((probes[1].seq, probes[1].rest.as_str()), (2, ""));
    assert!(
        run.stdout.contains(&format!(
            "11 bytes from {addr}: stray datagram, no probe of this run"
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "2 probes sent, 1 received, 1 corrupt, 1 stray, 50% lost"
    );
}

#[test]
fn udp_probes_to_a_closed_port_say_nothing_listens_on_udp_there() {
    // A TCP-only server: its port is closed to UDP.
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let run = run(&["--udp", "-c", "2", "-i", "100ms", "-a", &addr]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr, "");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[1..3],
        [
            format!(
                "seq=1: nothing listens on UDP at {addr}: an ICMP port unreachable came back; \
                 echo-server answers UDP only when started with --udp, as in \
                 `cargo run -p echo-server -- --udp --listen {addr}`"
            ),
            format!("seq=2: nothing listens on UDP at {addr}: an ICMP port unreachable came back"),
        ],
        "{}",
        run.stdout
    );
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "2 probes sent, 0 received, 2 errors, 100% lost"
    );
}

#[test]
fn quiet_prints_the_header_and_the_summary_only() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let run = run(&["-q", "-c", "3", "-i", "100ms", "-a", &addr]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        [
            format!("ECHO {addr} over tcp, a new connection per probe: 64 bytes per probe")
                .as_str(),
            "",
            format!("--- {addr} echo statistics ---").as_str(),
        ],
        "{}",
        run.stdout
    );
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        "3 probes sent, 3 received, 0% lost"
    );
    let json = self::run(&["-q", "--json", "-c", "2", "-i", "100ms", "-a", &addr]);
    assert_eq!(json.code, Some(0), "{}{}", json.stdout, json.stderr);
    let lines: Vec<&str> = json.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", json.stdout);
    let summary: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["sent"], 2);
    assert_eq!(summary["received"], 2);
}

/// The elapsed milliseconds at the end of the counts line of a text summary.
fn elapsed_ms(stdout: &str) -> u64 {
    let counts = stdout
        .lines()
        .find(|line| line.contains(" probes sent, "))
        .unwrap_or_else(|| panic!("no counts in:\n{stdout}"));
    counts
        .rsplit_once(", ")
        .and_then(|(_, elapsed)| elapsed.strip_suffix(" ms"))
        .and_then(|millis| millis.parse().ok())
        .unwrap_or_else(|| panic!("{counts:?}"))
}

#[test]
fn a_deadline_ends_an_endless_run_with_the_summary() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    // No -c: only the deadline can end the run before echo_client's WAIT kills it.
    let run = run(&["-w", "500ms", "-i", "100ms", "-a", &addr]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr, "");
    let n = probe_lines(&run.stdout).len();
    // Probes start at 0, 100, ... 400 ms, and perhaps one at 500 ms.
    assert!((1..=6).contains(&n), "{n} probes in 500ms:\n{}", run.stdout);
    assert_eq!(
        summary_counts(&run.stdout, &addr),
        format!("{n} probes sent, {n} received, 0% lost")
    );
    assert!(elapsed_ms(&run.stdout) >= 500, "{}", run.stdout);
    // JSON: the summary counts the probe lines before it.
    let json = self::run(&["--json", "-w", "300ms", "-i", "100ms", "-a", &addr]);
    assert_eq!(json.code, Some(0), "{}{}", json.stdout, json.stderr);
    let values: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    let (summary, probes) = values.split_last().expect("a summary");
    assert_eq!(summary["type"], "summary", "{}", json.stdout);
    assert_eq!(summary["sent"], probes.len());
    assert_eq!(summary["received"], probes.len());
    assert!(
        summary["time_ms"].as_u64().is_some_and(|t| t >= 300),
        "{summary}"
    );
}

#[test]
fn a_deadline_with_a_count_stops_at_whichever_comes_first() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    // The count first: an hour's deadline would outlast echo_client's WAIT.
    let run_count = run(&["-c", "2", "-i", "100ms", "-w", "1h", "-a", &addr]);
    assert_eq!(
        run_count.code,
        Some(0),
        "{}{}",
        run_count.stdout,
        run_count.stderr
    );
    assert_eq!(
        summary_counts(&run_count.stdout, &addr),
        "2 probes sent, 2 received, 0% lost"
    );
    // The deadline first: 100 probes would take ten seconds.
    let run_deadline = run(&["-c", "100", "-i", "100ms", "-w", "300ms", "-a", &addr]);
    assert_eq!(
        run_deadline.code,
        Some(0),
        "{}{}",
        run_deadline.stdout,
        run_deadline.stderr
    );
    let n = probe_lines(&run_deadline.stdout).len();
    assert!(
        (1..=4).contains(&n),
        "{n} probes in 300ms:\n{}",
        run_deadline.stdout
    );
    assert_eq!(
        summary_counts(&run_deadline.stdout, &addr),
        format!("{n} probes sent, {n} received, 0% lost")
    );
}

#[test]
fn the_message_is_every_probes_payload() {
    let server = Server::start_with(&["--listen", "127.0.0.1:0", "--udp"], 2);
    let addr = server.addr().to_string();
    let run_tcp = run(&["-c", "2", "-i", "100ms", "-a", &addr, "ping"]);
    assert_eq!(
        run_tcp.code,
        Some(0),
        "{}{}",
        run_tcp.stdout,
        run_tcp.stderr
    );
    assert!(
        probe_lines(&run_tcp.stdout).iter().all(|p| p.bytes == 4),
        "{}",
        run_tcp.stdout
    );
    // Over UDP, after the 16-byte header.
    let run_udp = run(&["--udp", "-c", "2", "-i", "100ms", "-a", &addr, "ping"]);
    assert_eq!(
        run_udp.code,
        Some(0),
        "{}{}",
        run_udp.stdout,
        run_udp.stderr
    );
    assert!(
        probe_lines(&run_udp.stdout).iter().all(|p| p.bytes == 20),
        "{}",
        run_udp.stdout
    );
    assert_eq!(
        summary_counts(&run_udp.stdout, &addr),
        "2 probes sent, 2 received, 0% lost"
    );
}

#[test]
fn json_lines_all_parse_with_the_documented_fields() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64()
    };
    let before = unix_now();
    let run = run(&["--json", "-c", "3", "-i", "100ms", "-s", "32", "-a", &addr]);
    let after = unix_now();
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let values: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    assert_eq!(values.len(), 4, "{}", run.stdout);
    for (probe, seq) in values[..3].iter().zip(1..) {
        let mut keys: Vec<&str> = probe
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bytes",
                "duplicate",
                "error",
                "from",
                "handshake_ms",
                "late",
                "reordered",
                "seq",
                "status",
                "time_ms",
                "type",
                "unix_time_s"
            ]
        );
        assert_eq!(probe["type"], "probe");
        assert_eq!(probe["seq"], seq);
        assert_eq!(probe["status"], "ok");
        assert_eq!(probe["from"], addr.as_str());
        assert_eq!(probe["bytes"], 32);
        assert!(probe["time_ms"].as_f64().is_some_and(|t| t >= 0.0));
        assert_eq!(probe["duplicate"], false);
        assert_eq!(probe["error"], serde_json::Value::Null);
        // No TLS, no handshake to time.
        assert_eq!(probe["handshake_ms"], serde_json::Value::Null);
        let at = probe["unix_time_s"].as_f64().expect("a number");
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
        // To the microsecond, as ping -D: no more digits than that.
        let micros = at * 1e6;
        assert!((micros - micros.round()).abs() < 0.01, "{at}");
    }
    let stamps: Vec<f64> = values[..3]
        .iter()
        .map(|probe| probe["unix_time_s"].as_f64().expect("a number"))
        .collect();
    // In the order of the lines: stamped as they were reported.
    assert!(stamps.is_sorted(), "{stamps:?}");
    let summary = &values[3];
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["target"], addr.as_str());
    assert_eq!(summary["mode"], "connect");
    for (key, value) in [
        ("sent", 3),
        ("received", 3),
        ("lost", 0),
        ("corrupt", 0),
        ("errors", 0),
        ("duplicates", 0),
        ("reordered", 0),
        ("late", 0),
        ("stray", 0),
    ] {
        assert_eq!(summary[key], value, "{key}");
    }
    assert_eq!(summary["loss_percent"], 0.0);
    assert!(summary["time_ms"].is_u64());
    for key in ["min", "avg", "max", "mdev"] {
        assert!(summary["rtt_ms"][key].is_f64(), "{key}: {summary}");
    }
    assert_eq!(summary["exact"], true);
}

#[test]
fn a_failed_json_probe_names_its_error() {
    let (_socket, addr) = refusing_address();
    let run = run(&["--json", "-c", "1", "-a", &addr.to_string()]);
    assert_eq!(run.code, Some(1));
    let probe: serde_json::Value =
        serde_json::from_str(run.stdout.lines().next().expect("a line")).expect("JSON");
    assert_eq!(probe["status"], "error");
    assert_eq!(probe["from"], serde_json::Value::Null);
    let error = probe["error"].as_str().expect("a message");
    assert!(
        error.starts_with(&format!("cannot connect to {addr}: ")),
        "{error}"
    );
}

#[test]
fn json_to_a_closed_stdout_ends_quietly() {
    let server = Server::start(&[]);
    for format in [&["--json"][..], &[]] {
        let mut child = Command::new(binary("echo-client"))
            .args(format)
            .args(["-c", "0", "-i", "50ms", "-a", &server.addr().to_string()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("echo-client starts");
        // `| head -c0`: the first line written meets a closed pipe.
        drop(child.stdout.take());
        let stderr = read_bounded(child.stderr.take().expect("piped"));
        let status = child.wait().expect("echo-client exits");
        assert!(status.success(), "{format:?}: {status}: {stderr}");
        assert_eq!(stderr, "", "{format:?}");
    }
}

/// Reads a child's pipe to its end on a thread, waiting at most [`WAIT`].
fn read_bounded(mut pipe: impl Read + Send + 'static) -> String {
    let (done, text) = mpsc::channel();
    thread::spawn(move || {
        let mut all = String::new();
        let _ = pipe.read_to_string(&mut all);
        let _ = done.send(all);
    });
    text.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("the pipe stayed open for {WAIT:?}"))
}

#[test]
fn ctrl_c_prints_the_summary_and_exits_by_the_usual_rule() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let mut child = Command::new(binary("echo-client"))
        .args(["-c", "0", "-i", "100ms", "-a", &addr])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("echo-client starts");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    let stdout = child.stdout.take().expect("piped");
    let (line_sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_sender.send(line);
        }
    });
    let mut seen = Vec::new();
    // The header, then two probes: the run is going on.
    while seen
        .iter()
        .filter(|line: &&String| line.contains("seq="))
        .count()
        < 2
    {
        match lines.recv_timeout(WAIT) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = kill(pid, Signal::SIGKILL);
                panic!("no two probe lines within {WAIT:?}: {seen:?}");
            }
        }
    }
    kill(pid, Signal::SIGINT).expect("signal echo-client");
    loop {
        match lines.recv_timeout(WAIT) {
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = kill(pid, Signal::SIGKILL);
                panic!("echo-client still runs {WAIT:?} after Ctrl-C: {seen:?}");
            }
        }
    }
    let stderr = read_bounded(child.stderr.take().expect("piped"));
    let status = child.wait().expect("echo-client exits");
    let stdout = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stderr, "");
    let probes = probe_lines(&stdout);
    assert!(probes.len() >= 2, "{stdout}");
    // A probe in flight at Ctrl-C is in no count, so the counts match the lines.
    let n = probes.len();
    assert_eq!(
        summary_counts(&stdout, &addr),
        format!("{n} probes sent, {n} received, 0% lost")
    );
}

#[test]
fn flags_that_cannot_make_a_probe_are_usage_errors() {
    for (args, needle) in [
        (&["--udp", "-s", "8", "-c", "1"][..], "at least 16 bytes"),
        (&["-s", "4", "-c", "1", "hi"], "cannot be used with"),
        (&["-c", "2", "-"], "stdin (-) cannot be probed"),
        (
            &["--udp", "--mode", "persistent", "-c", "1"],
            "UDP has no connection to keep",
        ),
        (
            &["--mode", "persistent", "-s", "0"],
            "needs at least one byte",
        ),
        (&["--json", "hi"], "required arguments were not provided"),
        (&["-i", "1", "-c", "1"], "invalid duration '1'"),
        (
            &["-w", "0s"],
            "-w 0s would stop before the first probe; give a deadline longer than 0s",
        ),
        (&["-q", "hi"], "required arguments were not provided"),
    ] {
        echo_client()
            .args(args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicates::str::contains(needle));
    }
}
