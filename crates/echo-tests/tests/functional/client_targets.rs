//! `echo-client` out of the lab: host names (resolved, raced in the manner
//! of Happy Eyeballs, or not resolving), IPv6, no silent typos on the
//! command line, booleans from the environment, and a library that needs
//! none of the command's crates.
//!
//! Everything goes to loopback: a name with two addresses comes from a
//! hosts file bind-mounted in a mount namespace of the client's own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::Command;
use std::thread;
use std::time::Duration;

use assert_cmd::Command as Cmd;
use echo_tests::{Server, TempDir, WAIT, binary};
use predicates::prelude::*;

use super::client_probe::echo_client;

#[test]
fn a_host_name_is_resolved_and_its_answering_address_logged() {
    // Whatever localhost is here, a server listens on each of its addresses.
    let mut ips: Vec<_> = ("localhost", 0)
        .to_socket_addrs()
        .expect("localhost resolves")
        .map(|addr| addr.ip())
        .collect();
    ips.dedup();
    let first = Server::start_with(&["--listen", &SocketAddr::new(ips[0], 0).to_string()], 1);
    let port = first.addr().port();
    let _others: Vec<Server> = ips[1..]
        .iter()
        .map(|&ip| Server::start_with(&["--listen", &SocketAddr::new(ip, port).to_string()], 1))
        .collect();
    let target = format!("localhost:{port}");
    echo_client()
        .args(["-a", &target, "hi"])
        .assert()
        .success()
        .stdout("hi\n")
        .stderr("");
    let output = echo_client()
        .env("RUST_LOG", "debug")
        .args(["-a", &target, "hi"])
        .output()
        .expect("echo-client runs");
    assert!(output.status.success());
    assert_eq!(output.stdout, b"hi\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let answered = ips
        .iter()
        .map(|&ip| format!("connected address={}", SocketAddr::new(ip, port)))
        .any(|line| stderr.contains(&line));
    assert!(answered, "no answering address logged:\n{stderr}");
    // A probe run says what the name resolved to.
    let output = echo_client()
        .args(["-c", "1", "-a", &target])
        .output()
        .expect("echo-client runs");
    assert!(output.status.success(), "{output:?}");
    let header = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(header.starts_with(&format!("ECHO {target} (")), "{header}");
    for ip in &ips {
        let addr = SocketAddr::new(*ip, port).to_string();
        assert!(header.contains(&addr), "{header} lacks {addr}");
    }
}

#[test]
fn an_ipv6_address_in_brackets_echoes() {
    let server = Server::start_with(&["--listen", "[::1]:0"], 1);
    let addr = server.addr();
    assert!(addr.is_ipv6());
    echo_client()
        .args(["-a", &format!("[::1]:{}", addr.port()), "--check", "hi"])
        .assert()
        .success()
        .stdout("hi\n");
}

#[test]
fn a_name_that_does_not_resolve_is_one_error_line_and_exit_1() {
    // .invalid is reserved (RFC 6761): no resolver may answer for it. The
    // lookup is made where it cannot leave the machine: in a network
    // namespace with only a loopback, and with names looked up in files only.
    for args in [&["hi"][..], &["-c", "1"], &["--udp", "hi"]] {
        let mut all = vec!["-a", "no-such-host.invalid:7007"];
        all.extend_from_slice(args);
        let Some(output) = offline(&all) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(output.stdout, b"");
        assert!(
            stderr.starts_with("error: cannot resolve host name 'no-such-host.invalid': "),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// Runs `echo-client args` in network and mount namespaces of its own, where
/// nothing can leave the machine and names come from `/etc/hosts` only;
/// `None` (after saying so) where that cannot be done: it needs root and
/// util-linux's `unshare`.
fn offline(args: &[&str]) -> Option<std::process::Output> {
    let nsswitch = ("/etc/nsswitch.conf", "hosts: files\n");
    client_unshared(&["--mount", "--net"], nsswitch, args, &[])
}

/// Runs `echo-client args` with `env` under `unshare namespaces` (a mount
/// namespace among them), with `file`'s path of `/etc` showing the given
/// contents to it alone; `None` (after saying so) where `unshare` cannot.
fn client_unshared(
    namespaces: &[&str],
    (path, contents): (&str, &str),
    args: &[&str],
    env: &[(&str, &str)],
) -> Option<std::process::Output> {
    let usable = Command::new("unshare")
        .args(namespaces)
        .arg("true")
        .output()
        .is_ok_and(|output| output.status.success());
    if !usable {
        eprintln!("skipped: unshare {namespaces:?} needs root and util-linux");
        return None;
    }
    let dir = TempDir::new("etc");
    let stand_in = dir.path().join("file");
    std::fs::write(&stand_in, contents).expect("write the stand-in file");
    let mut command = Cmd::new("unshare");
    command
        .args(namespaces)
        .args([
            "sh",
            "-c",
            r#"mount --bind "$0" "$1" && shift && exec "$@""#,
        ])
        .arg(&stand_in)
        .arg(path)
        .arg(binary("echo-client"))
        .args(args)
        .env_remove("ECHO_ADDR")
        .env_remove("ECHO_TIMEOUT")
        .env_remove("ECHO_UDP")
        .env_remove("RUST_LOG")
        .timeout(WAIT);
    for (key, value) in env {
        command.env(key, value);
    }
    Some(command.output().expect("unshare runs"))
}

#[test]
fn a_host_without_a_port_is_a_usage_error() {
    for addr in ["localhost", "127.0.0.1", "[::1]"] {
        echo_client()
            .args(["-a", addr, "hi"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "invalid address '{addr}'"
            )))
            .stderr(predicate::str::contains("the port is missing"));
    }
    echo_client()
        .args(["-a", "::1:7007", "hi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("an IPv6 address goes in brackets"));
}

/// An echo server on a thread, on `listener`, answering `connections` connections.
fn thread_echo_server(listener: TcpListener, connections: usize) {
    thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            let mut message = Vec::new();
            if stream.read_to_end(&mut message).is_ok() {
                let _ = stream.write_all(&message);
            }
        }
    });
}

/// A listener on `[::1]:0` whose accept queue is full, so that a further
/// connect gets no answer at all (its SYN is dropped), with the
/// connections that fill it; `None` if the queue never filled.
fn black_hole() -> Option<(socket2::Socket, Vec<socket2::Socket>, u16)> {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV6, Type::STREAM, None).expect("socket");
    listener.set_only_v6(true).expect("IPv6 only");
    let any: SocketAddr = "[::1]:0".parse().expect("literal");
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("an IP address");
    let mut fillers = Vec::new();
    for _ in 0..16 {
        let filler = Socket::new(Domain::IPV6, Type::STREAM, None).expect("socket");
        // A probe of the queue, not a pause: it ends as soon as the connect
        // does, and a connect on loopback that takes a second is one the
        // listener dropped.
        match filler.connect_timeout(&addr.into(), Duration::from_secs(1)) {
            Ok(()) => fillers.push(filler),
            Err(_) => return Some((listener, fillers, addr.port())),
        }
    }
    None
}

/// Runs `echo-client args` in a mount namespace of its own whose
/// `/etc/hosts` is this machine's plus `extra`; `None` (after saying so)
/// where that cannot be done: it needs root and util-linux's `unshare`.
fn with_hosts(extra: &str, args: &[&str], env: &[(&str, &str)]) -> Option<std::process::Output> {
    let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts.push('\n');
    hosts.push_str(extra);
    client_unshared(&["--mount"], ("/etc/hosts", &hosts), args, env)
}

/// A name whose first address is `[::1]:PORT` and second `127.0.0.1:PORT`.
const DUAL: &str = "dual-stack.invalid";

fn dual_hosts() -> String {
    format!("::1 {DUAL}\n127.0.0.1 {DUAL}\n")
}

/// Binds `127.0.0.1:port` for an echo thread; `None` if the port is taken there.
fn echo_on_ipv4(port: u16) -> Option<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).ok()?;
    thread_echo_server(listener, 1);
    Some(())
}

/// Sends "hi" with `args` to [`DUAL`]`:port`, whose `[::1]` the test has made
/// fail and whose 127.0.0.1 echoes, and checks that the echo came back from
/// 127.0.0.1; returns the client's debug log, or `None` where the test cannot
/// give the client hosts of its own (skipped).
fn echoed_by_ipv4(port: u16, args: &[&str]) -> Option<String> {
    let target = format!("{DUAL}:{port}");
    let args = [&["-a", target.as_str()][..], args, &["hi"]].concat();
    let output = with_hosts(&dual_hosts(), &args, &[("RUST_LOG", "debug")])?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(output.stdout, b"hi\n");
    assert!(
        stderr.contains(&format!("connected address=127.0.0.1:{port}")),
        "{stderr}"
    );
    Some(stderr)
}

#[test]
fn a_black_holed_first_address_costs_one_attempt_delay_not_the_timeout() {
    // The black hole's port is random; the echo must get the same one on IPv4.
    let (_hole, _fillers, port) = (0..10)
        .find_map(|_| {
            let (hole, fillers, port) = black_hole()?;
            echo_on_ipv4(port).map(|()| (hole, fillers, port))
        })
        .expect("a black hole on [::1] with the same port free on 127.0.0.1");
    // One attempt after the other, the black hole would take all of the 5 s
    // and leave nothing for the second address.
    let Some(stderr) = echoed_by_ipv4(port, &["--timeout", "5s"]) else {
        return;
    };
    assert!(
        stderr.contains(&format!("addresses=[[::1]:{port}, 127.0.0.1:{port}]")),
        "the black hole is not tried first:\n{stderr}"
    );
}

#[test]
fn a_refusing_first_address_is_logged_and_the_next_one_answers() {
    let (_refusing, port) = (0..10)
        .find_map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).ok()?;
            socket.set_only_v6(true).ok()?;
            let any: SocketAddr = "[::1]:0".parse().ok()?;
            socket.bind(&any.into()).ok()?;
            let port = socket.local_addr().ok()?.as_socket()?.port();
            echo_on_ipv4(port).map(|()| (socket, port))
        })
        .expect("a refusing [::1] port with the same port free on 127.0.0.1");
    let Some(stderr) = echoed_by_ipv4(port, &[]) else {
        return;
    };
    assert!(
        stderr.contains(&format!("connection attempt failed address=[::1]:{port}")),
        "{stderr}"
    );
}

#[test]
fn when_every_address_fails_each_is_named_on_the_one_error_line() {
    let (_refusing, addr) = echo_tests::refusing_address();
    let port = addr.port();
    // The name's only address refuses.
    let Some(output) = with_hosts(
        &format!("127.0.0.1 {DUAL}\n"),
        &["-a", &format!("{DUAL}:{port}"), "hi"],
        &[],
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot connect to {DUAL}:{port}: 127.0.0.1:{port}: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Probes [`DUAL`]`:port` twice with `family` (`-4` or `-6`), where `::1`
/// comes first, and returns the run's stdout; `None` where the test cannot
/// give the client hosts of its own (skipped).
fn probed_by_family(family: &str, port: u16) -> Option<String> {
    let target = format!("{DUAL}:{port}");
    let args = [family, "-c", "2", "-i", "100ms", "-a", &target];
    let output = with_hosts(&dual_hosts(), &args, &[])?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    Some(stdout)
}

#[test]
fn ipv4_and_ipv6_flags_keep_a_names_addresses_of_their_family() {
    for (family, ip) in [("-4", "127.0.0.1"), ("-6", "[::1]")] {
        let server = Server::start_with(&["--listen", &format!("{ip}:0")], 1);
        let addr = server.addr();
        let Some(stdout) = probed_by_family(family, addr.port()) else {
            return;
        };
        // The header lists the addresses probed: only the family's one.
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "ECHO {DUAL}:{} ({addr}) over tcp, a new connection per probe: 64 bytes per probe",
                addr.port()
            ),
            "{family}"
        );
        for (line, seq) in lines[1..3].iter().zip(1..) {
            let answered = format!("64 bytes from {addr}: seq={seq} time=");
            assert!(line.starts_with(&answered), "{family}: {stdout}");
        }
    }
}

#[test]
fn a_name_without_an_address_of_the_family_says_what_it_has() {
    let Some(output) = with_hosts(
        &format!("127.0.0.1 {DUAL}\n"),
        &["-6", "-a", &format!("{DUAL}:7"), "hi"],
        &[],
    ) else {
        return;
    };
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, b"");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("error: host name '{DUAL}' has no IPv6 address: it resolves to 127.0.0.1\n")
    );
}

#[test]
fn an_address_of_the_other_family_is_a_usage_error() {
    for (args, message) in [
        (
            &["-4", "-a", "[::1]:7", "hi"][..],
            "error: -4 uses IPv4 addresses only, and --addr [::1]:7 is not one",
        ),
        (
            &["-6", "-c", "1", "-a", "127.0.0.1:7"],
            "error: -6 uses IPv6 addresses only, and --addr 127.0.0.1:7 is not one",
        ),
        (
            &["--ipv6", "-a", "unix:/nowhere.sock", "hi"],
            "error: -6 chooses among a host name's addresses; --addr unix:/nowhere.sock has none",
        ),
        (
            &["-4", "-6", "hi"],
            "error: the argument '--ipv4' cannot be used with '--ipv6'",
        ),
    ] {
        echo_client()
            .args(args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::starts_with(message));
    }
}

#[test]
fn an_unknown_flag_is_a_usage_error_not_a_message() {
    // No server: a usage error must stop the command before it connects.
    for args in [
        &["--chek"][..],
        &["--chek", "hi"],
        &["-x"],
        &["hi", "--chek"],
    ] {
        echo_client()
            .args(args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("unexpected argument"));
    }
}

#[test]
fn a_message_that_starts_with_a_hyphen_goes_after_double_dash() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    echo_client()
        .args(["-a", &addr, "--", "-x"])
        .assert()
        .success()
        .stdout("-x\n");
    echo_client()
        .args(["-a", &addr, "-"])
        .write_stdin("from stdin")
        .assert()
        .success()
        .stdout("from stdin");
    echo_client()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("echo-client -- -x"));
}

#[test]
fn echo_udp_takes_booleans_as_people_write_them() {
    let server = Server::start_with(&["--listen", "127.0.0.1:0", "--udp"], 2);
    let udp = server.listener_addr("udp", 0).to_string();
    for yes in ["yes", "1", "on", "true", "TRUE"] {
        echo_client()
            .env("ECHO_UDP", yes)
            .args(["-a", &udp, "--check", "datagram"])
            .assert()
            .success()
            .stdout("datagram\n");
    }
    // UDP for certain: a TCP-only server's UDP port is closed.
    let tcp_only = Server::start(&[]);
    let tcp = tcp_only.addr().to_string();
    echo_client()
        .env("ECHO_UDP", "yes")
        .args(["-a", &tcp, "--timeout", "2s", "hi"])
        .assert()
        .code(1)
        .stderr(format!(
            "error: nothing listens on UDP at {tcp}: an ICMP port unreachable came back; \
             echo-server answers UDP only when started with --udp, as in \
             `cargo run -p echo-server -- --udp --listen {tcp}`\n"
        ));
    for no in ["no", "0", "off", "false"] {
        echo_client()
            .env("ECHO_UDP", no)
            .args(["-a", &tcp, "hi"])
            .assert()
            .success()
            .stdout("hi\n");
    }
    echo_client()
        .env("ECHO_UDP", "maybe")
        .args(["-a", &tcp, "hi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'maybe' for '--udp'"));
}

#[test]
fn the_library_needs_none_of_the_commands_crates() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Cmd::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "--package",
            "echo-client",
            "--no-default-features",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .timeout(WAIT)
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"echo-proto"), "{tree}");
    for cli_only in [
        "clap",
        "anyhow",
        "serde",
        "serde_json",
        "signal-hook",
        "tracing-subscriber",
    ] {
        assert!(!crates.contains(&cli_only), "{cli_only} in:\n{tree}");
    }
}
