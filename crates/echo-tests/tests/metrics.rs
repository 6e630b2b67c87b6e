//! `--metrics` as a scraper and a hostile client meet it: the real server's
//! `/metrics` checked by Prometheus's own `promtool`, its counters against
//! what echo-bench sent and got back, and slow, garbage and half requests
//! that must harm no echo and leave the endpoint serving.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use echo_tests::metrics::{count, exchange, sample, scrape, try_scrape};
use echo_tests::{Server, WAIT, binary, eventually, read_all};
use nix::sys::signal::Signal;

/// A server on port 0 with its metrics on port 0, and `args`, once it has
/// announced them all: its TCP listener (and UDP, with `--udp`), then its metrics.
fn with_metrics(args: &[&str]) -> Server {
    let mut all = vec!["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let announced = if args.contains(&"--udp") { 3 } else { 2 };
    let server = Server::start_with(&all, announced);
    let last = server.listeners().last().expect("announced");
    assert!(last.starts_with("metrics 127.0.0.1:"), "{last}");
    server
}

/// Echoes `payload` over one connection and checks every byte comes back.
fn assert_echoes(addr: SocketAddr, payload: &[u8]) {
    let mut stream = TcpStream::connect(addr).expect("the echo port accepts");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.set_write_timeout(Some(WAIT)).expect("timeout");
    let writer = {
        let mut stream = stream.try_clone().expect("clone");
        let payload = payload.to_vec();
        thread::spawn(move || {
            stream.write_all(&payload).expect("the payload goes");
            stream.shutdown(Shutdown::Write).expect("half-close");
        })
    };
    let echoed = read_all(&mut stream, payload.len() + 1).expect("the echo comes back");
    writer.join().expect("the writer finishes");
    assert!(
        echoed == payload,
        "{} bytes back of {}",
        echoed.len(),
        payload.len()
    );
}

/// `promtool`, from `PROMTOOL` or the `PATH`; `None`, said on stderr, when
/// there is none and this is not CI, where it must be.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PROMTOOL").map(PathBuf::from).or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("promtool"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is needed in CI: install Debian's prometheus package's promtool, \
             or set PROMTOOL to its path"
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipped: no promtool (set PROMTOOL, or put it on the PATH: \
             apt-get download prometheus && dpkg -x prometheus_*.deb DIR)"
        );
    }
    found
}

#[test]
fn promtool_passes_the_live_endpoint() {
    let Some(promtool) = promtool() else {
        return;
    };
    let server = with_metrics(&["--udp"]);
    assert_echoes(server.addr(), b"hello");
    let body = scrape(server.listener_addr("metrics", 0));
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .expect("piped")
        .write_all(body.as_bytes())
        .expect("promtool reads the metrics");
    let output = check.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}\n--- the metrics ---\n{body}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_metric_is_there_with_its_help_type_and_value() {
    let server = with_metrics(&["--max-connections", "77"]);
    let body = scrape(server.listener_addr("metrics", 0));
    for family in [
        "echo_connections_accepted_total",
        "echo_connections_active",
        "echo_connections_closed_total",
        "echo_connections_aborted_total",
        "echo_stream_echoed_bytes_total",
        "echo_stream_unsent_bytes_total",
        "echo_udp_echoed_datagrams_total",
        "echo_udp_echoed_bytes_total",
        "echo_udp_dropped_datagrams_total",
        "echo_notifications_dropped_total",
        "echo_log_lines_dropped_total",
        "echo_connections_limit",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        for line in ["HELP", "TYPE"] {
            let once = body.matches(&format!("# {line} {family} ")).count();
            assert_eq!(once, 1, "# {line} {family}");
        }
    }
    assert_eq!(count(&body, "echo_connections_limit"), 77);
    for cause in ["idle", "error", "cut"] {
        let name = format!("echo_connections_closed_total{{cause=\"{cause}\"}}");
        assert_eq!(count(&body, &name), 0);
    }
    for cause in ["reflection", "rate_limit", "loop"] {
        let name = format!("echo_udp_dropped_datagrams_total{{cause=\"{cause}\"}}");
        assert_eq!(count(&body, &name), 0);
    }
    // The process figures are the server's own, as /proc tells them.
    let pid = server.pid();
    assert_eq!(
        count(&body, "process_max_fds"),
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .expect("getrlimit")
            .1,
        "the server raises its soft limit to the hard one, which it inherits from the test"
    );
    let open = count(&body, "process_open_fds");
    assert!((10..=40).contains(&open), "{open}");
    let resident = count(&body, "process_resident_memory_bytes");
    let (now_kib, peak_kib) = echo_tests::memory_kib(pid);
    assert!(
        resident > 1 << 20 && resident <= peak_kib * 1024,
        "{resident} {now_kib}"
    );
    let cpu = sample(&body, "process_cpu_seconds_total");
    assert!(
        cpu > 0.0 && cpu <= echo_tests::cpu_time(pid).as_secs_f64() + 0.02,
        "{cpu}"
    );
    let started = sample(&body, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(
        started <= now && started > now - WAIT.as_secs_f64(),
        "{started} {now}"
    );
    // It was read once: a second scrape says the same.
    let again = scrape(server.listener_addr("metrics", 0));
    assert_eq!(sample(&again, "process_start_time_seconds"), started);
}

#[test]
fn the_counters_equal_what_echo_bench_sent_and_got_back() {
    let server = with_metrics(&[]);
    let target = server.addr().to_string();
    let output = Command::new(binary("echo-bench"))
        .args(["persistent", "-a", &target, "-n", "1000", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("echo-bench runs");
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON report");
    let field = |name: &str| {
        report[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    assert_eq!(field("exchanges"), 1000);
    assert_eq!(field("bytes"), 1000 * field("size"));
    let metrics = server.listener_addr("metrics", 0);
    // Every byte is counted before its connection closes: once none is
    // open, the counts are final.
    assert!(
        eventually(WAIT, || count(&scrape(metrics), "echo_connections_active")
            == 0),
        "connections still open after the run"
    );
    let body = scrape(metrics);
    // Its workers' connections, and the one it makes first to check that
    // something listens.
    assert_eq!(
        count(&body, "echo_connections_accepted_total"),
        field("workers") + 1
    );
    assert_eq!(
        count(&body, "echo_stream_echoed_bytes_total"),
        field("bytes")
    );
    assert_eq!(count(&body, "echo_stream_unsent_bytes_total"), 0);
    assert_eq!(
        count(&body, "echo_connections_closed_total{cause=\"error\"}"),
        0
    );
    // The scrapes themselves count nowhere, and the totals line agrees.
    assert_eq!(server.total("accepted"), field("workers") + 1);
    assert_eq!(server.total("bytes"), field("bytes"));
}

#[test]
fn other_paths_and_methods_are_refused() {
    let server = with_metrics(&[]);
    let metrics = server.listener_addr("metrics", 0);
    let not_found = exchange(metrics, b"GET /other HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(
        not_found.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{not_found}"
    );
    assert!(
        not_found.ends_with("\r\n\r\nnot found: the metrics are at /metrics\n"),
        "{not_found}"
    );
    let post = exchange(
        metrics,
        b"POST /metrics HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    assert!(post.contains("\r\nallow: GET, HEAD\r\n"), "{post}");
    let head = exchange(metrics, b"HEAD /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "a HEAD answer has no body: {head}"
    );
    // HTTP/1.0 without a Host is still a scrape.
    let old = exchange(metrics, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(old.starts_with("HTTP/1.0 200 OK\r\n"), "{old}");
}

/// What one hostile client of the metrics port does.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// Sends a request's first bytes one at a time, never finishing it.
    Trickle,
    /// Sends bytes that are no HTTP at all.
    Garbage,
    /// Sends half a request, then half-closes.
    Half,
    /// Sends a header far longer than any scrape's.
    Huge,
}

impl Hostile {
    /// Does its harm for at most `hold`, then lets go.
    fn run(self, addr: SocketAddr, hold: Duration) {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return;
        };
        let _ = stream.set_write_timeout(Some(WAIT));
        let _ = stream.set_read_timeout(Some(WAIT));
        // A write or read failing is the server closing on us: what it may do.
        let _ = match self {
            Hostile::Trickle => {
                let until = Instant::now() + hold;
                for byte in b"GET /metrics HTTP/1.1\r\nHost: slow".iter().cycle() {
                    if Instant::now() >= until || stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                Ok(())
            }
            Hostile::Garbage => stream
                .write_all(b"\x00\xff\x16\x03\x01 not http at all\r\n\r\n")
                .and_then(|()| read_all(&mut stream, 1 << 16).map(drop)),
            Hostile::Half => stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: ha")
                .and_then(|()| stream.shutdown(Shutdown::Write))
                .and_then(|()| read_all(&mut stream, 1 << 16).map(drop)),
            Hostile::Huge => stream
                .write_all(b"GET /metrics HTTP/1.1\r\nX-Big: ")
                .and_then(|()| stream.write_all(&vec![b'a'; 256 * 1024]))
                .and_then(|()| read_all(&mut stream, 1 << 16).map(drop)),
        };
    }
}

#[test]
fn a_hundred_hostile_requests_harm_no_echo_and_the_endpoint_serves_again() {
    let server = with_metrics(&[]);
    let metrics = server.listener_addr("metrics", 0);
    let kinds = [
        Hostile::Trickle,
        Hostile::Garbage,
        Hostile::Half,
        Hostile::Huge,
    ];
    let hostile: Vec<_> = (0..100)
        .map(|index| {
            let kind = kinds[index % kinds.len()];
            thread::spawn(move || kind.run(metrics, Duration::from_secs(2)))
        })
        .collect();
    let payload = echo_proto::pattern(7, 256 * 1024);
    let mut echoes = 0;
    while hostile.iter().any(|client| !client.is_finished()) {
        assert_echoes(server.addr(), &payload);
        echoes += 1;
    }
    for client in hostile {
        client.join().expect("a hostile client ends");
    }
    // Once the server has seen them go, a scrape is served, and counted none of them.
    let mut body = None;
    assert!(
        eventually(WAIT, || {
            body = try_scrape(metrics);
            body.is_some()
        }),
        "the endpoint does not serve again"
    );
    let body = body.unwrap_or_default();
    assert!(echoes > 0);
    assert_eq!(count(&body, "echo_connections_accepted_total"), echoes);
    assert_eq!(
        count(&body, "echo_stream_echoed_bytes_total"),
        echoes * payload.len() as u64
    );
}

#[test]
fn a_request_never_finished_is_closed_after_the_header_timeout() {
    let server = with_metrics(&[]);
    let mut stream = TcpStream::connect(server.listener_addr("metrics", 0)).expect("connects");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: sl")
        .expect("half a request goes");
    let sent = Instant::now();
    let mut answer = Vec::new();
    // hyper answers a header timeout with a 408 or nothing; either way it closes.
    let _ = stream.read_to_end(&mut answer);
    let waited = sent.elapsed();
    // Not the 10 s that any connection gets in all.
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_secs(9),
        "closed after {waited:?}, not the 5 s header timeout"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408 "),
        "{answer}"
    );
}

#[test]
fn beyond_eight_connections_one_more_is_closed_at_once() {
    let server = with_metrics(&[]);
    let metrics = server.listener_addr("metrics", 0);
    // Eight unfinished requests take every place (until the header timeout).
    let held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(metrics).expect("connects");
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\n")
                .expect("writes");
            stream
        })
        .collect();
    let mut ninth = TcpStream::connect(metrics).expect("the kernel accepts it");
    ninth.set_read_timeout(Some(WAIT)).expect("timeout");
    let _ = ninth.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let started = Instant::now();
    let answer = read_all(&mut ninth, 1 << 16).unwrap_or_default();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not closed at once"
    );
    // Letting go of them frees the places at once.
    drop(held);
    assert!(eventually(WAIT, || try_scrape(metrics).is_some()));
}

#[test]
fn the_endpoint_closes_when_the_drain_starts_and_holds_no_exit_up() {
    let mut server = with_metrics(&["--grace", "60s"]);
    let metrics = server.listener_addr("metrics", 0);
    // An echo still open keeps the drain going (its first byte back proves
    // it is served); a scraper sits on the port.
    let mut echo = TcpStream::connect(server.addr()).expect("connects");
    echo.set_read_timeout(Some(WAIT)).expect("timeout");
    echo.write_all(b"x").expect("writes");
    let mut first = [0; 1];
    echo.read_exact(&mut first).expect("the byte comes back");
    assert_eq!(&first, b"x");
    let mut scraper = TcpStream::connect(metrics).expect("connects");
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .expect("writes");
    assert_eq!(count(&scrape(metrics), "echo_connections_active"), 1);
    server.signal(Signal::SIGTERM);
    server.wait_for_log("shutting down");
    let refused = eventually(WAIT, || {
        TcpStream::connect(metrics)
            .is_err_and(|err| err.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    assert!(refused, "the metrics port still accepts during the drain");
    scraper.set_read_timeout(Some(WAIT)).expect("timeout");
    assert!(
        read_all(&mut scraper, 1 << 16)
            .unwrap_or_default()
            .is_empty(),
        "the waiting scraper is closed unanswered"
    );
    assert!(
        server.is_running(),
        "the drain is still waiting for the echo"
    );
    echo.shutdown(Shutdown::Write).expect("half-close");
    let status = server.wait_exit(WAIT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_metrics_address_is_announced_as_the_listeners_are_in_either_log_format() {
    let text = with_metrics(&[]);
    let metrics = text.listener_addr("metrics", 0);
    assert_eq!(
        text.announcements().last().map(String::as_str),
        Some(format!("listening on metrics {metrics}").as_str())
    );
    assert!(!scrape(metrics).is_empty());
    let json = with_metrics(&["--log-format", "json"]);
    let metrics = json.listener_addr("metrics", 0);
    let event: serde_json::Value =
        serde_json::from_str(json.announcements().last().expect("announced"))
            .expect("a JSON event");
    assert_eq!(event["kind"], "metrics");
    assert_eq!(event["address"], metrics.to_string());
    assert_eq!(event["message"], format!("listening on metrics {metrics}"));
    let started = json.wait_for_log("serving metrics");
    let started: serde_json::Value = serde_json::from_str(&started).expect("a JSON event");
    assert_eq!(started["url"], format!("http://{metrics}/metrics"));
}

#[test]
fn a_metrics_address_in_use_is_a_start_up_error_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = taken.local_addr().expect("address");
    let output = Command::new(binary("echo-server"))
        .args(["--listen", "127.0.0.1:0", "--metrics", &addr.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "error: cannot listen on {addr}: the address is in use (is another server running \
             there? stop it, or pick another port: port 0 picks a free one)\n"
        )
    );
}
