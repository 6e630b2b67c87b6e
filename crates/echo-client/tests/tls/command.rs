//! The echo-client command over TLS: what it prints, exactly, for an echo,
//! a stream, probes, each refusal and each usage error.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;

use assert_cmd::Command;
use echo_proto::pattern;

use crate::support::{Options, PATIENCE, Pki, Server};

/// The command, its environment emptied so that no ECHO_* variable of the
/// caller's leaks in, bounded by the patience.
fn client() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo-client"));
    command.env_clear().timeout(PATIENCE);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

#[test]
fn echoes_over_tls_with_a_ca_of_its_own() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let addr = format!("localhost:{}", server.addr.port());
    let output = client()
        .args(["--tls", "--tls-ca", path(&pki.ca), "-a", &addr, "hello"])
        .output()
        .expect("the command runs");
    assert_eq!(text(&output.stderr), "");
    assert_eq!(text(&output.stdout), "hello\n");
    assert!(output.status.success());
    let seen = server.next_seen();
    assert_eq!(seen.sni.as_deref(), Some("localhost"));
    assert!(seen.close_notify);
}

#[test]
fn streams_stdin_over_tls() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let message = pattern(5, 1 << 20);
    let output = client()
        .args(["--tls", "--tls-ca", path(&pki.ca), "--check", "-"])
        .env("ECHO_ADDR", server.addr.to_string())
        .write_stdin(message.clone())
        .output()
        .expect("the command runs");
    assert_eq!(text(&output.stderr), "");
    assert!(output.stdout == message, "the streamed reply differs");
    assert!(output.status.success());
}

#[test]
fn presents_a_client_certificate() {
    let pki = Pki::new();
    let server = Server::start(
        &pki,
        Options {
            require_client_cert: true,
            ..Options::default()
        },
    );
    client()
        .args(["--tls", "--tls-ca", path(&pki.ca)])
        .args(["--tls-cert", path(&pki.client_cert)])
        .args(["--tls-key", path(&pki.client_key)])
        .args(["-a", &server.addr.to_string(), "mutual"])
        .assert()
        .success()
        .stdout("mutual\n")
        .stderr("");
    assert!(server.next_seen().client_cert);
}

#[test]
fn refuses_an_untrusted_certificate_and_says_why() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    client()
        .args(["--tls", "--tls-ca", path(&pki.other_ca)])
        .args(["-a", &server.addr.to_string(), "hello"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: TLS handshake with {} failed: invalid peer certificate: UnknownIssuer; \
             if a CA of your own signed the server's certificate, trust it with --tls-ca FILE\n",
            server.addr
        ));
}

#[test]
fn refuses_a_server_name_the_certificate_does_not_hold() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let output = client()
        .args(["--tls", "--tls-ca", path(&pki.ca)])
        .args(["--tls-server-name", "elsewhere.example"])
        .args(["-a", &server.addr.to_string(), "hello"])
        .output()
        .expect("the command runs");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let prefix = format!(
        "error: TLS handshake with {} failed: invalid peer certificate: certificate not valid for name \"elsewhere.example\"",
        server.addr
    );
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert!(
        stderr.ends_with("; --tls-server-name NAME checks the certificate against another name\n"),
        "{stderr}"
    );
}

#[test]
fn insecure_checks_nothing_and_says_so_once() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let output = client()
        .args([
            "--tls",
            "--tls-insecure",
            "--tls-server-name",
            "elsewhere.example",
        ])
        .args(["-a", &server.addr.to_string(), "hello"])
        .output()
        .expect("the command runs");
    assert_eq!(text(&output.stdout), "hello\n");
    assert!(output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.trim_end().ends_with(
            "WARN TLS certificates are not checked: the server is not authenticated, \
             and anyone on the path can read and change the bytes"
        ),
        "{stderr}"
    );
}

#[test]
fn a_pem_file_that_is_not_there_is_named() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("missing.pem");
    client()
        .args(["--tls", "--tls-ca", path(&missing), "hello"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: cannot read the CA certificates from {}: No such file or directory (os error 2)\n",
            missing.display()
        ));
}

#[test]
fn tls_where_it_is_not_spoken_is_a_usage_error() {
    for (args, says) in [
        (
            &["--tls", "--udp", "hello"][..],
            "--udp (or ECHO_UDP) has no TLS to speak",
        ),
        (
            &["--tls", "-a", "unix:/tmp/echo.sock", "hello"],
            "--addr unix:/tmp/echo.sock is a Unix socket",
        ),
        (&["--tls-ca", "ca.pem", "hello"], "--tls"),
        (&["--tls", "--tls-cert", "client.pem", "hello"], "--tls-key"),
    ] {
        let output = client().args(args).output().expect("the command runs");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_server_in_the_clear_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on loopback");
    let addr: SocketAddr = listener.local_addr().expect("its address");
    // A plain echo of one connection, which sends the ClientHello back.
    let echo = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("a connection");
        let _ = stream.set_read_timeout(Some(PATIENCE));
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buffer) {
            if stream.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
    });
    let pki = Pki::new();
    let output = client()
        .args([
            "--tls",
            "--tls-ca",
            path(&pki.ca),
            "-a",
            &addr.to_string(),
            "hello",
        ])
        .output()
        .expect("the command runs");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!("error: TLS handshake with {addr} failed: ")),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "; the server sent the client's hello back: it echoes in the clear, so leave out --tls\n"
        ),
        "{stderr}"
    );
    echo.join().expect("the plain echo ends");
}

/// The probe lines of a run, after its header: each `64 bytes from ...`.
fn probe_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect()
}

/// A probe line without its times, and whether it had a handshake.
fn shape(line: &str) -> (String, bool) {
    let before_time = line.split(" time=").next().expect("a line");
    let handshake = line
        .split(" handshake=")
        .nth(1)
        .map(|rest| rest.ends_with(" ms"));
    (before_time.to_owned(), handshake == Some(true))
}

#[test]
fn probes_name_the_version_and_suite_and_time_each_handshake() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let output = client()
        .args(["--tls", "--tls-ca", path(&pki.ca), "-c", "2", "-i", "0s"])
        .args(["-a", &server.addr.to_string()])
        .output()
        .expect("the command runs");
    let stdout = text(&output.stdout);
    assert_eq!(text(&output.stderr), "");
    assert!(output.status.success(), "{stdout}");
    let header = stdout.lines().next().expect("a header");
    assert_eq!(
        header,
        format!(
            "ECHO {} over tls (TLSv1.3 TLS13_AES_256_GCM_SHA384), \
             a new connection per probe: 64 bytes per probe",
            server.addr
        )
    );
    let lines: Vec<(String, bool)> = probe_lines(&stdout).into_iter().map(shape).collect();
    assert_eq!(
        lines,
        [1, 2].map(|seq| (format!("64 bytes from {}: seq={seq}", server.addr), true)),
        "{stdout}"
    );
}

#[test]
fn persistent_probes_over_tls12_make_one_handshake() {
    let pki = Pki::new();
    let server = Server::start(
        &pki,
        Options {
            version: Some(&rustls::version::TLS12),
            ..Options::default()
        },
    );
    let output = client()
        .args(["--tls", "--tls-ca", path(&pki.ca), "-c", "3", "-i", "0s"])
        .args(["--mode", "persistent", "-s", "100000"])
        .args(["-a", &server.addr.to_string()])
        .output()
        .expect("the command runs");
    let stdout = text(&output.stdout);
    assert_eq!(text(&output.stderr), "");
    assert!(output.status.success(), "{stdout}");
    let header = stdout.lines().next().expect("a header");
    assert_eq!(
        header,
        format!(
            "ECHO {} over tls (TLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384), \
             one connection for all probes: 100000 bytes per probe",
            server.addr
        )
    );
    let lines: Vec<(String, bool)> = probe_lines(&stdout).into_iter().map(shape).collect();
    assert_eq!(
        lines,
        [(1, true), (2, false), (3, false)].map(|(seq, handshake)| (
            format!("100000 bytes from {}: seq={seq}", server.addr),
            handshake
        )),
        "{stdout}"
    );
}
