//! The server's TLS echo (issue 20), as TLS clients see it: rustls pinned to
//! TLS 1.3 or 1.2, OpenSSL and socat; with a client CA, a certificate
//! renewed on disk, hostile and incompatible clients, its totals and its drain.
//!
//! Certificates are made here with rcgen (ECDSA P-256), a fresh set per test.
//! The client is rustls's buffered connection driven over a non-blocking
//! socket, sending and reading at once, so that a message of several MiB,
//! whose echo fills both ways' socket buffers, cannot deadlock the test.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use echo_proto::{BUFFER_SIZE, pattern};
use echo_tests::{Server, TempDir, WAIT, eventually, metrics, open_fds};
use nix::sys::signal::Signal;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};
use tokio::io::Interest;

/// The subject the good client certificate carries, which the server logs.
const CLIENT_NAME: &str = "echo test client";

// ---------------------------------------------------------------------------
// Certificates

/// A certificate authority of the test's own.
type Authority = CertifiedIssuer<'static, KeyPair>;

/// A new CA named `name`, able to sign certificates.
fn authority(name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a P-256 key")).expect("a CA")
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    /// A server certificate whose validity ended in 2020.
    ExpiredServer,
    Client,
    /// A client certificate whose validity ended in 2020.
    ExpiredClient,
}

impl Role {
    fn is_client(self) -> bool {
        matches!(self, Role::Client | Role::ExpiredClient)
    }

    fn is_expired(self) -> bool {
        matches!(self, Role::ExpiredServer | Role::ExpiredClient)
    }
}

/// A PEM certificate and its PEM key.
#[derive(Debug, Clone)]
struct Identity {
    cert: String,
    key: String,
}

impl Identity {
    /// The certificates in the PEM, the end entity's first, as sent.
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert.as_bytes())
            .collect::<Result<_, _>>()
            .expect("PEM certificates")
    }

    /// The (first) certificate in DER, as a peer receives it.
    fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert.as_bytes()).expect("PEM certificate")
    }
}

/// A certificate for `common_name`, signed by `issuer`: a server's for
/// localhost and 127.0.0.1, or a client's.
fn issue(issuer: &Authority, common_name: &str, role: Role) -> Identity {
    issue_padded(issuer, common_name, role, 0)
}

/// [`issue`], with a private, non-critical extension of `padding` bytes to
/// make the certificate big: its handshake message then spans several records.
fn issue_padded(issuer: &Authority, common_name: &str, role: Role, padding: usize) -> Identity {
    let names = if role.is_client() {
        Vec::new()
    } else {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    };
    let mut params = CertificateParams::new(names).expect("parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if padding > 0 {
        // An OCTET STRING under an OID of the private arc (1.3.6.1.4.1.99999).
        let len = u16::try_from(padding).expect("at most 64 KiB of padding");
        let mut content = vec![0x04, 0x82];
        content.extend_from_slice(&len.to_be_bytes());
        content.extend(pattern(24, padding));
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 99999, 1],
                content,
            ));
    }
    params.extended_key_usages = vec![if role.is_client() {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    if role.is_expired() {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = KeyPair::generate().expect("a P-256 key");
    let cert = params.signed_by(&key, issuer).expect("signed");
    Identity {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// The files a TLS server is started with, in a directory of their own.
#[derive(Debug)]
struct Files {
    dir: TempDir,
    /// The CA that issued the server's certificate (and the good clients').
    ca: Authority,
    /// The server's certificate and key, as first written.
    server: Identity,
}

impl Files {
    /// A CA, and a server certificate it issued (expired, if `role` says so).
    fn new(tag: &str, role: Role) -> Files {
        let dir = TempDir::new(tag);
        let ca = authority("echo test CA");
        let server = issue(&ca, "localhost", role);
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("ca.pem");
        std::fs::write(dir.path().join("cert.pem"), &server.cert).expect("cert.pem");
        std::fs::write(dir.path().join("key.pem"), &server.key).expect("key.pem");
        Files { dir, ca, server }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The server's arguments: a TLS listener on loopback with these files, then `more`.
    fn server_args(&self, more: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "tls:127.0.0.1:0".into(),
            "--tls-cert".into(),
            path_arg(&self.path("cert.pem")),
            "--tls-key".into(),
            path_arg(&self.path("key.pem")),
        ];
        args.extend(more.iter().map(|arg| (*arg).to_owned()));
        args
    }

    /// Starts the server with these files and `more` arguments, RUST_LOG at `log`.
    fn start(&self, more: &[&str], log: &str) -> Server {
        let listeners = 1 + more.iter().filter(|arg| **arg == "--metrics").count();
        Server::start_command(
            Command::new(echo_tests::binary("echo-server"))
                .args(self.server_args(more))
                .env("RUST_LOG", log)
                .stdin(Stdio::null()),
            listeners,
        )
    }

    /// A client pinned to `version` that trusts this CA and presents no certificate.
    fn client(&self, version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
        client_config(version, &[&self.ca], None, &[])
    }
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

/// Writes `contents` to `path` by renaming a whole file over it, so that
/// the server never reads it half written.
fn replace(path: &Path, contents: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, contents).expect("written");
    std::fs::rename(&fresh, path).expect("renamed");
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Deprecated in 0.23.48 for want of post-quantum groups, and still the
    // one way to have ring's provider whole.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration: `version` only, trusting `roots`, presenting
/// `identity` if given, offering the `alpn` protocols.
fn client_config(
    version: &'static SupportedProtocolVersion,
    roots: &[&Authority],
    identity: Option<&Identity>,
    alpn: &[&str],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.der().clone()).expect("a usable root");
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("the version is supported")
        .with_root_certificates(store);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                identity.chain(),
                PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).expect("PEM key"),
            )
            .expect("a usable client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|name| name.as_bytes().to_vec()).collect();
    Arc::new(config)
}

// ---------------------------------------------------------------------------
// The client

/// A rustls client connection over a non-blocking socket, driven by hand:
/// each turn writes what rustls has to send, reads what came, and decrypts
/// it, and a turn that moved nothing waits for the socket (never longer than
/// [`WAIT`] in all for one step of the exchange).
struct TlsClient {
    /// Dropped before the runtime it is registered with.
    tcp: tokio::net::TcpStream,
    conn: ClientConnection,
    /// Only to wait for the socket's readiness: a current-thread runtime.
    runtime: tokio::runtime::Runtime,
    /// Plaintext received so far.
    received: Vec<u8>,
    /// The server's close_notify came (rustls then reads a clean end).
    close_notify_received: bool,
    /// The server ended the TCP stream.
    tcp_ended: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("received", &self.received.len())
            .field("close_notify_received", &self.close_notify_received)
            .field("tcp_ended", &self.tcp_ended)
            .finish_non_exhaustive()
    }
}

/// The socket as rustls reads and writes it: without blocking.
struct Nonblocking<'a>(&'a tokio::net::TcpStream);

impl Read for Nonblocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Nonblocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsClient {
    /// Connects to `addr` as a client of `config` asking for "localhost";
    /// the handshake starts with the first turn.
    fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsClient> {
        let name = ServerName::try_from("localhost").expect("a valid name");
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let tcp = {
            let _entered = runtime.enter();
            tokio::net::TcpStream::from_std(tcp)?
        };
        Ok(TlsClient {
            tcp,
            conn,
            runtime,
            received: Vec::new(),
            close_notify_received: false,
            tcp_ended: false,
        })
    }

    /// Sends the ClientHello now, its handshake message cut into records of
    /// `size` bytes, instead of the one record rustls makes.
    fn send_hello_in_records_of(&mut self, size: usize) {
        let hello = self.take_hello();
        // The handshake bytes out of the records rustls made (one, or more
        // when its fragment size is small), then records of `size` bytes.
        let mut handshake = Vec::new();
        let mut rest = &hello[..];
        while !rest.is_empty() {
            assert!(rest.len() > 5 && rest[0] == 22, "handshake records");
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            handshake.extend_from_slice(&rest[5..5 + len]);
            rest = &rest[5 + len..];
        }
        let mut records = Vec::new();
        for fragment in handshake.chunks(size) {
            records.extend_from_slice(&hello[..3]);
            records.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
            records.extend_from_slice(fragment);
        }
        self.send_raw(&records);
    }

    /// The ClientHello's records, taken from rustls before any went out,
    /// for the test to send as it likes.
    fn take_hello(&mut self) -> Vec<u8> {
        let mut hello = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut hello).expect("into memory");
        }
        hello
    }

    /// Writes `bytes` to the socket as they are, past rustls.
    fn send_raw(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        let deadline = Instant::now() + WAIT;
        while !rest.is_empty() {
            match self.tcp.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the bytes were not taken");
                    let tcp = &self.tcp;
                    let _ = self
                        .runtime
                        .block_on(async { tokio::time::timeout(WAIT, tcp.writable()).await });
                }
                Err(err) => panic!("writing past rustls: {err}"),
            }
        }
    }

    /// One turn; whether it moved anything.
    fn turn(&mut self) -> io::Result<bool> {
        let mut moved = false;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Nonblocking(&self.tcp)) {
                Ok(_) => moved = true,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) => return Err(err),
            }
        }
        if !self.tcp_ended {
            match self.conn.read_tls(&mut Nonblocking(&self.tcp)) {
                Ok(0) => {
                    self.tcp_ended = true;
                    moved = true;
                }
                Ok(_) => moved = true,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            if let Err(err) = self.conn.process_new_packets() {
                // Tell the server why, as a real client would: the alert is queued.
                // (after a TLS 1.3 middlebox-compatibility record, if any).
                while self.conn.wants_write()
                    && self.conn.write_tls(&mut Nonblocking(&self.tcp)).is_ok()
                {}
                return Err(io::Error::new(ErrorKind::InvalidData, err));
            }
        }
        let mut buf = vec![0u8; BUFFER_SIZE];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => {
                    self.close_notify_received = true;
                    break;
                }
                Ok(n) => {
                    self.received.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) => return Err(err),
            }
        }
        Ok(moved)
    }

    /// Waits until the socket is ready for what the connection wants, or the deadline.
    fn wait(&mut self, deadline: Instant) -> io::Result<()> {
        let interest = match (self.tcp_ended, self.conn.wants_write()) {
            (false, false) => Interest::READABLE,
            (false, true) => Interest::READABLE | Interest::WRITABLE,
            (true, true) => Interest::WRITABLE,
            (true, false) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let tcp = &self.tcp;
        // The timer is made inside the runtime, which it needs.
        let ready = self
            .runtime
            .block_on(async { tokio::time::timeout(left, tcp.ready(interest)).await });
        match ready {
            Ok(ready) => ready.map(drop),
            Err(_) => Err(io::Error::new(
                ErrorKind::TimedOut,
                format!("nothing moved within {WAIT:?}"),
            )),
        }
    }

    /// Gives rustls `outgoing` to send while turning, until `done` holds.
    fn run(&mut self, mut outgoing: &[u8], done: impl Fn(&TlsClient) -> bool) -> io::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut moved = false;
            if !outgoing.is_empty() {
                // rustls takes what its buffer limit allows, and encrypts it
                // at once once the handshake is over.
                let taken = self.conn.writer().write(outgoing)?;
                outgoing = &outgoing[taken..];
                moved = taken > 0;
            }
            if outgoing.is_empty() && done(self) {
                return Ok(());
            }
            moved |= self.turn()?;
            if !moved {
                self.wait(deadline)?;
            }
        }
    }

    /// Sends from `rest` without reading, until the socket takes no more
    /// (`Ok(true)`) or all of it is sent (`Ok(false)`).
    fn write_until_blocked(&mut self, rest: &mut &[u8]) -> io::Result<bool> {
        loop {
            if !self.conn.wants_write() {
                if rest.is_empty() {
                    return Ok(false);
                }
                let taken = self.conn.writer().write(rest)?;
                *rest = &rest[taken..];
            }
            match self.conn.write_tls(&mut Nonblocking(&self.tcp)) {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(err) => return Err(err),
            }
        }
    }

    /// Completes the handshake and sends what it leaves to send.
    fn handshake(&mut self) -> io::Result<()> {
        self.run(&[], |client| {
            !client.conn.is_handshaking() && !client.conn.wants_write()
        })
    }

    /// Sends `message` and reads until as many bytes came back; returns them.
    fn echo_part(&mut self, message: &[u8]) -> io::Result<Vec<u8>> {
        self.handshake()?;
        let start = self.received.len();
        let want = start + message.len();
        self.run(message, |client| {
            client.received.len() >= want || client.close_notify_received
        })?;
        Ok(self.received[start..].to_vec())
    }

    /// Sends our close_notify (once the handshake is over), then reads
    /// until the server's close_notify and the end of the TCP stream;
    /// returns what came after the bytes already received.
    fn close(&mut self) -> io::Result<Vec<u8>> {
        self.handshake()?;
        let start = self.received.len();
        self.conn.send_close_notify();
        self.run(&[], |client| {
            client.close_notify_received && client.tcp_ended && !client.conn.wants_write()
        })?;
        Ok(self.received[start..].to_vec())
    }

    /// Sends `message` and our close_notify behind it, then reads until the
    /// server's close_notify: returns all that came.
    fn echo_closing_first(&mut self, message: &[u8]) -> io::Result<Vec<u8>> {
        self.handshake()?;
        // Handshake over: the message is encrypted as it is taken, so our
        // close_notify follows all of it.
        self.run(message, |_| true)?;
        self.close()?;
        Ok(std::mem::take(&mut self.received))
    }

    /// The whole exchange as the version says a message ends (docs: TLS
    /// 1.3 half-closes with close_notify; TLS 1.2 reads its echo whole,
    /// then closes): returns everything the server sent before its
    /// close_notify. An error if the stream did not end cleanly.
    fn echo(&mut self, message: &[u8]) -> io::Result<Vec<u8>> {
        self.handshake()?;
        if self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            return self.echo_closing_first(message);
        }
        self.echo_part(message)?;
        self.close()?;
        Ok(std::mem::take(&mut self.received))
    }

    /// The end-entity certificate the server presented.
    fn server_certificate(&self) -> CertificateDer<'static> {
        self.conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("the server presented a certificate")
            .clone()
            .into_owned()
    }
}

/// One whole exchange of `message` with a new client of `config`.
fn echo(addr: SocketAddr, config: &Arc<ClientConfig>, message: &[u8]) -> io::Result<Vec<u8>> {
    TlsClient::connect(addr, Arc::clone(config))?.echo(message)
}

/// Asserts that a new client of `config` gets `message` back exactly.
fn assert_echoed(addr: SocketAddr, config: &Arc<ClientConfig>, message: &[u8]) {
    let reply = echo(addr, config, message).expect("the exchange succeeds");
    assert!(
        reply == message,
        "{} bytes sent, {} different bytes came back",
        message.len(),
        reply.len()
    );
}

/// The address of the server's TLS listener.
fn tls_addr(server: &Server) -> SocketAddr {
    server.listener_addr("tls", 0)
}

/// The seed's four message cases: short ones (empty included), one byte
/// short of a buffer, a buffer exactly, and several MiB.
fn seed_messages() -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"a".to_vec(),
        b"this is the message to send".to_vec(),
        b"\0\r\n\t".to_vec(),
        pattern(1, BUFFER_SIZE - 1),
        pattern(2, BUFFER_SIZE),
        pattern(3, 6 * 1024 * 1024 + 7),
    ]
}

fn version_name(version: &'static SupportedProtocolVersion) -> &'static str {
    if version == &TLS13 {
        "TLS 1.3"
    } else {
        "TLS 1.2"
    }
}

// ---------------------------------------------------------------------------
// 1. The echo

#[test]
fn the_seed_messages_come_back_over_tls_1_3_and_1_2() {
    let files = Files::new("tls-seed", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let config = files.client(version);
        for message in seed_messages() {
            let mut client = TlsClient::connect(addr, Arc::clone(&config)).expect("connects");
            let reply = client.echo(&message).unwrap_or_else(|err| {
                panic!("{}, {} bytes: {err}", version_name(version), message.len())
            });
            assert!(
                reply == message,
                "{}: {} bytes sent, {} different bytes came back",
                version_name(version),
                message.len(),
                reply.len()
            );
            assert_eq!(
                client.conn.protocol_version(),
                Some(version.version),
                "the version pinned"
            );
        }
    }
}

#[test]
fn several_tls_clients_at_once_each_get_their_own_message() {
    let files = Files::new("tls-many", Role::Server);
    for threads in ["1", "3"] {
        several_clients_at_once(&files, threads);
    }
}

/// Sixteen clients at once, of either version, against a server of `threads` event loops.
fn several_clients_at_once(files: &Files, threads: &str) {
    let server = files.start(&["--threads", threads], "info");
    let addr = tls_addr(&server);
    let clients: Vec<_> = (0..16u64)
        .map(|n| {
            let version = if n % 2 == 0 { &TLS13 } else { &TLS12 };
            let config = files.client(version);
            thread::spawn(move || {
                let message = pattern(n, 1000 + n as usize * 40_009);
                let reply = echo(addr, &config, &message);
                (n, message, reply)
            })
        })
        .collect();
    for handle in clients {
        let (n, message, reply) = handle.join().expect("client thread");
        let reply = reply.unwrap_or_else(|err| panic!("{threads} loops, client {n}: {err}"));
        assert!(
            reply == message,
            "{threads} loops: client {n} got other bytes than its own"
        );
    }
    assert_eq!(server.total("tls_handshakes"), 16);
}

/// A client that stops reading until the echo fills every buffer on the
/// way, then reads again, gets the whole echo: the records the server held
/// while the socket was full go out once it has room.
#[test]
fn a_reader_that_stalls_and_resumes_gets_the_whole_echo() {
    let files = Files::new("tls-stall", Role::Server);
    let server = files.start(&[], "info");
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let mut client =
            TlsClient::connect(tls_addr(&server), files.client(version)).expect("connects");
        client.handshake().expect("handshake");
        let message = pattern(27, 32 << 20);
        let mut rest = &message[..];
        for _ in 0..3 {
            let blocked = client
                .write_until_blocked(&mut rest)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert!(blocked, "{name}: all taken without a read");
            // The stall is what is tested: the server meanwhile fills the
            // socket with echo and holds what it cannot write.
            thread::sleep(Duration::from_millis(200));
        }
        assert!(!rest.is_empty(), "{name}: all taken without a read");
        let sent_before = message.len() - rest.len();
        let total = message.len();
        let ended = client
            .run(rest, |client| client.received.len() >= total)
            .and_then(|()| client.close());
        assert!(
            ended.is_ok() && client.received == message,
            "{name}: {total} bytes sent ({sent_before} before reading), {} came back, {ended:?}",
            client.received.len()
        );
    }
}

/// A bare end of TCP stream, without close_notify, also ends the message:
/// the server echoes what it has, then sends its close_notify.
#[test]
fn an_end_of_stream_without_close_notify_ends_the_message() {
    let files = Files::new("tls-fin", Role::Server);
    let server = files.start(&[], "info");
    let mut client = TlsClient::connect(tls_addr(&server), files.client(&TLS13)).expect("connects");
    let message = pattern(5, 3000);
    client.handshake().expect("handshake");
    client.run(&message, |_| true).expect("sent");
    client
        .run(&[], |client| !client.conn.wants_write())
        .expect("flushed");
    socket2::SockRef::from(&client.tcp)
        .shutdown(std::net::Shutdown::Write)
        .expect("half-closed");
    client
        .run(&[], |client| {
            client.close_notify_received && client.tcp_ended
        })
        .expect("the server's close_notify and end of stream");
    assert!(
        client.received == message,
        "{} bytes came back",
        client.received.len()
    );
}

/// A client that comes back resumes its session, over either version, and
/// is echoed as well; each resumption is a handshake in the totals.
#[test]
fn sessions_resume_over_tls_1_3_and_1_2() {
    let files = Files::new("tls-resume", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let config = files.client(version);
        let mut kinds = Vec::new();
        for n in 0..3u64 {
            let message = pattern(n, 5_000);
            let mut client = TlsClient::connect(addr, Arc::clone(&config)).expect("connects");
            let reply = client.echo(&message).expect("the exchange succeeds");
            assert!(reply == message, "{name}: connection {n} got other bytes");
            kinds.push(client.conn.handshake_kind());
        }
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed),
                Some(rustls::HandshakeKind::Resumed)
            ],
            "{name}"
        );
    }
    assert_eq!(server.total("tls_handshakes"), 6);
}

/// Records of every size the protocol allows: a ClientHello cut into
/// records of 16 bytes, and a message in records of 64 bytes (the least
/// rustls makes), which the server takes many to a read.
#[test]
fn a_hello_and_a_message_in_tiny_records_come_through() {
    let files = Files::new("tls-tiny", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let mut config = (*files.client(version)).clone();
        config.max_fragment_size = Some(64);
        let mut client = TlsClient::connect(addr, Arc::new(config)).expect("connects");
        client.send_hello_in_records_of(16);
        let message = pattern(15, 2 * BUFFER_SIZE + 999);
        let reply = client
            .echo(&message)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(
            reply == message,
            "{name}: {} bytes sent, {} different came back",
            message.len(),
            reply.len()
        );
    }
}

/// Application data in the flight of the client's Finished (TLS 1.3), as a
/// client that wrote before the handshake was over sends it.
#[test]
fn a_message_sent_with_the_clients_finished_comes_back() {
    let files = Files::new("tls-flight", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let message = pattern(16, 30_000);
        let mut client = TlsClient::connect(addr, files.client(version)).expect("connects");
        // Taken before any byte went: rustls sends it right behind its Finished.
        let taken = client.conn.writer().write(&message).expect("buffered");
        assert_eq!(taken, message.len());
        client
            .run(&[], |client| client.received.len() >= message.len())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(client.close().expect("the end").is_empty(), "{name}");
        assert!(client.received == message, "{name}: other bytes came back");
    }
}

/// A TLS 1.3 key update the client asks for mid-exchange: the server
/// answers with its own and the echo goes on under the new keys.
#[test]
fn a_key_update_mid_exchange_keeps_the_echo_whole() {
    let files = Files::new("tls-keyupdate", Role::Server);
    let server = files.start(&[], "info");
    let mut client = TlsClient::connect(tls_addr(&server), files.client(&TLS13)).expect("connects");
    let first = pattern(17, 40_000);
    assert!(client.echo_part(&first).expect("before the update") == first);
    client.conn.refresh_traffic_keys().expect("a key update");
    let second = pattern(18, 40_000);
    assert!(client.echo_part(&second).expect("after the update") == second);
    client.conn.refresh_traffic_keys().expect("another");
    let third = pattern(19, 10);
    assert!(client.echo_part(&third).expect("after the second update") == third);
    assert!(client.close().expect("the end").is_empty());
}

/// A TLS connection that goes quiet is closed by the idle timeout, as a
/// plain one is, and cleanly: the server's close_notify, then its end of stream.
#[test]
fn an_idle_tls_connection_is_closed_with_close_notify() {
    let files = Files::new("tls-idle", Role::Server);
    let server = files.start(&["--idle-timeout", "2s"], "info");
    let mut client = TlsClient::connect(tls_addr(&server), files.client(&TLS13)).expect("connects");
    assert_eq!(
        client.echo_part(b"then quiet").expect("echoed"),
        b"then quiet"
    );
    client
        .run(&[], |client| {
            client.close_notify_received && client.tcp_ended
        })
        .expect("closed by the server with close_notify");
    assert_eq!(client.received, b"then quiet");
    assert!(
        eventually(WAIT, || server.total("idle_closed") == 1),
        "idle_closed={}",
        server.total("idle_closed")
    );
}

// ---------------------------------------------------------------------------
// 2. Mutual TLS

#[test]
fn with_a_client_ca_only_clients_it_issued_are_served() {
    let files = Files::new("tls-mutual", Role::Server);
    let other_ca = authority("another CA");
    let good = issue(&files.ca, CLIENT_NAME, Role::Client);
    let foreign = issue(&other_ca, "foreign client", Role::Client);
    let expired = issue(&files.ca, "expired client", Role::ExpiredClient);
    // A server's certificate, from the right CA, but not for a client.
    let not_a_client = issue(&files.ca, "server as client", Role::Server);
    let ca = path_arg(&files.ca_path());
    let server = files.start(&["--tls-client-ca", &ca], "info");
    let addr = tls_addr(&server);
    let message = b"mutual TLS message";
    for version in [&TLS13, &TLS12] {
        let with_good = client_config(version, &[&files.ca], Some(&good), &[]);
        let with_none = client_config(version, &[&files.ca], None, &[]);
        let with_foreign = client_config(version, &[&files.ca], Some(&foreign), &[]);
        let with_expired = client_config(version, &[&files.ca], Some(&expired), &[]);
        let with_server_cert = client_config(version, &[&files.ca], Some(&not_a_client), &[]);
        assert_echoed(addr, &with_good, message);
        for (what, config) in [
            ("no", &with_none),
            ("another CA's", &with_foreign),
            ("an expired", &with_expired),
            ("a server's", &with_server_cert),
        ] {
            let result = echo(addr, config, message);
            assert!(
                result.is_err(),
                "{}: a client with {what} certificate got {:?}",
                version_name(version),
                result
            );
        }
        assert_echoed(addr, &with_good, message);
    }
    assert!(
        eventually(WAIT, || server
            .total("tls_handshake_failed_client_certificate")
            == 8),
        "tls_handshake_failed_client_certificate={}",
        server.total("tls_handshake_failed_client_certificate")
    );
    assert_eq!(server.total("tls_handshakes"), 4);
}

#[test]
fn a_handshake_logs_the_client_subject_once_at_debug() {
    let files = Files::new("tls-log", Role::Server);
    let good = issue(&files.ca, CLIENT_NAME, Role::Client);
    let ca = path_arg(&files.ca_path());
    let server = files.start(&["--tls-client-ca", &ca], "debug");
    let config = client_config(&TLS13, &[&files.ca], Some(&good), &[]);
    assert_echoed(tls_addr(&server), &config, b"logged");
    let line = server.wait_for_log("TLS handshake done");
    assert!(line.contains(&format!("CN={CLIENT_NAME}")), "{line}");
    assert!(line.contains("TLSv1.3"), "{line}");
    // The totals line comes after it: every line of the handshake is in.
    assert_eq!(server.total("tls_handshakes"), 1);
    let done_lines = server
        .stderr()
        .lines()
        .filter(|line| line.contains("TLS handshake done"))
        .count();
    assert_eq!(done_lines, 1, "{}", server.stderr());
}

/// A failed handshake is told at debug level, and nothing of it at info.
#[test]
fn a_failed_handshake_logs_at_debug_only() {
    let files = Files::new("tls-quiet", Role::Server);
    let config = files.client(&TLS13);
    for level in ["debug", "info"] {
        let server = files.start(&[], level);
        let addr = tls_addr(&server);
        let (ended, local) = plaintext_request(addr);
        ended.unwrap_or_else(|err| panic!("{level}: {err}"));
        assert!(
            eventually(WAIT, || server.total("tls_handshake_failed_protocol") == 1),
            "{level}: not counted"
        );
        // One event loop serves both in turn: once this echo is served, the
        // failure's lines (if any) are written.
        assert_echoed(addr, &config, b"after");
        server.total("tls_handshakes");
        let port = format!(":{}", local.port());
        let about_it: Vec<String> = server
            .stderr()
            .lines()
            .filter(|line| line.contains(&port))
            .map(str::to_owned)
            .collect();
        if level == "debug" {
            assert!(
                about_it.iter().any(|line| line.contains("DEBUG")),
                "no debug line about the failed handshake from {local}:\n{}",
                server.stderr()
            );
        }
        assert!(
            about_it
                .iter()
                .all(|line| line.contains("DEBUG") || line.contains("TRACE")),
            "{level}: {about_it:#?}"
        );
        if level == "info" {
            assert!(about_it.is_empty(), "{about_it:#?}");
        }
    }
}

/// A client certificate message of about 48 KiB, in four records or
/// more, is taken whole; one over the 64 KiB a handshake message may have
/// (a chain of two) is refused at once as a protocol error, and harms no
/// one else.
#[test]
fn a_big_client_certificate_is_taken_and_one_too_big_refused() {
    let files = Files::new("tls-bigcert", Role::Server);
    let big = issue_padded(&files.ca, CLIENT_NAME, Role::Client, 48 * 1024);
    // A chain whose message is over 64 KiB: the big certificate, and
    // another one after it (no certificate may be over 64 KiB alone).
    let filler = issue_padded(&files.ca, "filler", Role::Client, 20 * 1024);
    let too_big = Identity {
        cert: format!("{}{}", big.cert, filler.cert),
        key: big.key.clone(),
    };
    assert!(big.der().len() > 48 * 1024);
    assert_eq!(too_big.chain().len(), 2);
    let ca = path_arg(&files.ca_path());
    let server = files.start(&["--tls-client-ca", &ca], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let config = client_config(version, &[&files.ca], Some(&big), &[]);
        let reply = echo(addr, &config, b"big certificate");
        assert_eq!(
            reply.unwrap_or_else(|err| panic!("{name}: {err}")),
            b"big certificate"
        );
        let config = client_config(version, &[&files.ca], Some(&too_big), &[]);
        let result = echo(addr, &config, b"too big");
        assert!(result.is_err(), "{name}: {result:?}");
    }
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_protocol") == 2),
        "tls_handshake_failed_protocol={}",
        server.total("tls_handshake_failed_protocol")
    );
    assert_eq!(server.total("tls_handshakes"), 2);
}

/// A client certificate chain whose handshake message is just under the
/// 64 KiB limit, so that its records (with TLS 1.3's overhead and the
/// middlebox-compatibility record before them) are over 64 KiB: taken whole.
#[test]
fn a_client_certificate_message_just_under_64_kib_is_taken() {
    let files = Files::new("tls-64k", Role::Server);
    let leaf = issue_padded(&files.ca, CLIENT_NAME, Role::Client, 40 * 1024);
    // Certificates of 65,486 bytes in all: a TLS 1.3 message body of
    // 65,500 (4 + 3 + 5 per certificate), a TLS 1.2 one of 65,495.
    let want = 65_486 - leaf.der().len();
    let mut padding = want - 500;
    let filler = loop {
        let filler = issue_padded(&files.ca, "filler", Role::Client, padding);
        let len = filler.der().len();
        if len == want {
            break filler;
        }
        padding = padding + want - len;
    };
    let chain = Identity {
        cert: format!("{}{}", leaf.cert, filler.cert),
        key: leaf.key.clone(),
    };
    let ca = path_arg(&files.ca_path());
    let server = files.start(&["--tls-client-ca", &ca], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let config = client_config(version, &[&files.ca], Some(&chain), &[]);
        let reply = echo(addr, &config, b"a long chain");
        assert_eq!(
            reply.unwrap_or_else(|err| panic!("{name}: {err}")),
            b"a long chain",
            "{name}"
        );
    }
    assert_eq!(server.total("tls_handshakes"), 2);
}

// ---------------------------------------------------------------------------
// 3. A certificate renewed on disk

#[test]
fn a_certificate_replaced_on_disk_is_served_and_a_broken_one_is_not() {
    let files = Files::new("tls-renew", Role::Server);
    let second_ca = authority("second CA");
    let renewed = issue(&second_ca, "localhost", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    // Without resumption: a resumed session is not given a certificate, and
    // rustls reports the one of the session it resumed.
    let mut config = (*client_config(&TLS13, &[&files.ca, &second_ca], None, &[])).clone();
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let served = || {
        let mut client = TlsClient::connect(addr, Arc::clone(&config)).expect("connects");
        let reply = client.echo(b"renewal").expect("the exchange succeeds");
        assert_eq!(reply, b"renewal");
        client.server_certificate()
    };
    assert_eq!(served(), files.server.der(), "the first certificate");

    // Key first, then certificate, as a renewal tool might; each file whole.
    replace(&files.path("key.pem"), &renewed.key);
    replace(&files.path("cert.pem"), &renewed.cert);
    assert!(
        eventually(WAIT, || served() == renewed.der()),
        "the renewed certificate is not served"
    );

    let warned = |stderr: &str| stderr.matches("does not load").count();
    let before = warned(&server.stderr());
    replace(
        &files.path("cert.pem"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    );
    // The server looks at the files only as handshakes start, at most once
    // a second: handshake until it has looked, each still given the renewed one.
    assert!(
        eventually(WAIT, || {
            assert_eq!(served(), renewed.der(), "a broken certificate was served");
            warned(&server.stderr()) > before
        }),
        "the broken certificate was not refused:\n{}",
        server.stderr()
    );
    assert_eq!(served(), renewed.der());
}

/// A certificate renewed as a Kubernetes secret is: the files are reached
/// through a symbolic link to a directory, and the link is swapped to a new
/// directory in one rename.
#[test]
fn a_certificate_renewed_by_swapping_a_directory_link_is_served() {
    let files = Files::new("tls-secret", Role::Server);
    let second_ca = authority("second CA");
    let renewed = issue(&second_ca, "localhost", Role::Server);
    let secret = files.path("secret");
    let first = files.path("..2026_01");
    std::fs::create_dir(&first).expect("a directory");
    std::fs::write(first.join("tls.crt"), &files.server.cert).expect("written");
    std::fs::write(first.join("tls.key"), &files.server.key).expect("written");
    std::fs::create_dir(&secret).expect("a directory");
    let data = secret.join("..data");
    std::os::unix::fs::symlink(&first, &data).expect("a link");
    for name in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(data.join(name), secret.join(name)).expect("a link");
    }
    let server = Server::start_command(
        Command::new(echo_tests::binary("echo-server"))
            .args(["--listen", "tls:127.0.0.1:0", "--tls-cert"])
            .arg(secret.join("tls.crt"))
            .arg("--tls-key")
            .arg(secret.join("tls.key"))
            .stdin(Stdio::null()),
        1,
    );
    let addr = tls_addr(&server);
    let mut config = (*client_config(&TLS13, &[&files.ca, &second_ca], None, &[])).clone();
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let served = || {
        let mut client = TlsClient::connect(addr, Arc::clone(&config)).expect("connects");
        assert_eq!(client.echo(b"secret").expect("echoed"), b"secret");
        client.server_certificate()
    };
    assert_eq!(served(), files.server.der());

    let second = files.path("..2026_02");
    std::fs::create_dir(&second).expect("a directory");
    std::fs::write(second.join("tls.crt"), &renewed.cert).expect("written");
    std::fs::write(second.join("tls.key"), &renewed.key).expect("written");
    let fresh_link = secret.join("..data_tmp");
    std::os::unix::fs::symlink(&second, &fresh_link).expect("a link");
    std::fs::rename(&fresh_link, &data).expect("the link swapped");
    assert!(
        eventually(WAIT, || served() == renewed.der()),
        "the renewed certificate is not served:\n{}",
        server.stderr()
    );
}

// ---------------------------------------------------------------------------
// 4. Hostile clients

/// Sends `bytes` as they are and reads until the server ends the
/// connection: `Ok` with what came (nothing, or an alert record) on an end
/// of stream or a reset, an error if it stayed open [`WAIT`].
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (io::Result<Vec<u8>>, SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    let local = stream.local_addr().expect("an address");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(bytes).expect("written");
    let mut came = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Ok(came),
            Ok(n) => came.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => break Ok(came),
            // A signal meant for no one here (a child exiting) stops a read too.
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => break Err(err),
        }
    };
    (ended, local)
}

/// What the server answered a plaintext HTTP request with, checked to be
/// nothing or alert records; returns the client's address.
fn plaintext_request(addr: SocketAddr) -> (io::Result<()>, SocketAddr) {
    let (came, local) = send_raw(addr, b"GET / HTTP/1.1\r\n\r\n");
    (came.map(|came| assert_alerts_only(&came)), local)
}

/// `came` is nothing, or TLS alert records only (content type 21).
fn assert_alerts_only(came: &[u8]) {
    let mut rest = came;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 5 && rest[0] == 21,
            "not an alert record: {came:02x?}"
        );
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(rest.len() >= 5 + len, "a cut record: {came:02x?}");
        rest = &rest[5 + len..];
    }
}

/// Garbage that is not a TLS record from its first byte: a content type
/// outside 20 to 24 ends the handshake at once (else the server would wait
/// for the rest of a record as long as it claimed).
fn garbage() -> Vec<u8> {
    let mut bytes = pattern(7, 1500);
    bytes[0] = 0x99;
    bytes
}

/// The ClientHello a rustls client of `config` sends first.
fn client_hello(config: Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("a valid name");
    let mut conn = ClientConnection::new(config, name).expect("a client");
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).expect("into memory");
    }
    hello
}

/// Sends the ClientHello one byte per 200 ms until the server cuts the
/// connection; returns how long that took and how many bytes went.
fn slow_hello(addr: SocketAddr, hello: Vec<u8>) -> (Duration, usize) {
    let stream = TcpStream::connect(addr).expect("connects");
    let mut writer = stream.try_clone().expect("a second handle");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let started = Instant::now();
    let sender = thread::spawn(move || {
        let mut sent = 0;
        for byte in hello {
            if stopped.load(Ordering::Relaxed) || writer.write_all(&[byte]).is_err() {
                break;
            }
            sent += 1;
            // The slow pace is what is tested: a client that keeps sending
            // is never idle, and only the handshake timeout cuts it.
            thread::sleep(Duration::from_millis(200));
        }
        sent
    });
    let mut reader = stream;
    reader.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 256];
    let end = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => break Ok(()),
            // A signal meant for no one here (a child exiting) stops a read too.
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => break Err(err),
        }
    };
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("the sending thread");
    end.unwrap_or_else(|err| panic!("the slow client was not cut within {WAIT:?}: {err}"));
    (took, sent)
}

/// Hostile clients, one after the other, while a good exchange is half
/// done: the hostile ones end as they should, each counted by its cause,
/// and the good one then finishes with its bytes whole.
#[test]
fn hostile_clients_end_and_are_counted_while_a_good_one_is_served() {
    let files = Files::new("tls-hostile", Role::Server);
    let server = files.start(
        &["--tls-handshake-timeout", "2s", "--idle-timeout", "60s"],
        "info",
    );
    let addr = tls_addr(&server);
    let config = files.client(&TLS13);
    let first = pattern(8, 100_000);
    let second = pattern(9, 70_000);
    let mut in_flight = TlsClient::connect(addr, Arc::clone(&config)).expect("connects");
    let echoed = in_flight.echo_part(&first).expect("the first half");
    assert!(echoed == first, "the first half came back different");
    let descriptors = open_fds(server.pid());

    let (ended, _) = plaintext_request(addr);
    ended.expect("plaintext ends the connection");
    let (came, _) = send_raw(addr, &garbage());
    assert_alerts_only(&came.expect("garbage ends the connection"));
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_protocol") == 2),
        "tls_handshake_failed_protocol={}",
        server.total("tls_handshake_failed_protocol")
    );

    drop(TcpStream::connect(addr).expect("connects"));
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_closed") == 1),
        "tls_handshake_failed_closed={}",
        server.total("tls_handshake_failed_closed")
    );

    let hello = client_hello(Arc::clone(&config));
    let hello_len = hello.len();
    let (took, sent) = slow_hello(addr, hello);
    assert!(
        sent < hello_len,
        "the whole hello of {hello_len} bytes went in {took:?}"
    );
    // A handshake timeout of 2 s, looked for every eighth of it; the idle
    // timeout of 60 s would not cut a client that sends every 200 ms.
    assert!(took < WAIT / 2, "cut after {took:?}");
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_timeout") == 1),
        "tls_handshake_failed_timeout={}",
        server.total("tls_handshake_failed_timeout")
    );

    // Every hostile connection is closed: none holds a descriptor.
    assert!(
        eventually(WAIT, || open_fds(server.pid()) == descriptors),
        "{} descriptors open, {descriptors} before the hostile clients",
        open_fds(server.pid())
    );
    let echoed = in_flight.echo_part(&second).expect("the second half");
    assert!(echoed == second, "the second half came back different");
    assert!(
        in_flight.close().expect("the end").is_empty(),
        "bytes after the echo"
    );
    assert_echoed(addr, &config, b"after the hostile ones");
    assert_eq!(server.total("tls_handshakes"), 2);
    assert_eq!(server.total("tls_handshake_failed_protocol"), 2);
}

/// A client reset in the middle of its hello counts as one that left.
#[test]
fn a_client_reset_mid_hello_counts_as_closed() {
    let files = Files::new("tls-reset", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    let hello = client_hello(files.client(&TLS13));
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .write_all(&hello[..hello.len() / 2])
        .expect("written");
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(stream);
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_closed") == 1),
        "tls_handshake_failed_closed={}",
        server.total("tls_handshake_failed_closed")
    );
    assert_echoed(addr, &files.client(&TLS13), b"after a reset");
    assert_eq!(server.total("tls_handshake_failed_protocol"), 0);
}

/// A record that does not decrypt, after the handshake, ends that
/// connection with an alert (bad_record_mac) and no more: it is no failed
/// handshake, and the next client is served.
#[test]
fn a_corrupt_record_after_the_handshake_ends_only_that_connection() {
    let files = Files::new("tls-corrupt", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let mut client = TlsClient::connect(addr, files.client(version)).expect("connects");
        assert_eq!(
            client.echo_part(b"fine").expect("echoed"),
            b"fine",
            "{name}"
        );
        // An application-data record of 100 bytes no key made.
        let mut record = vec![23, 3, 3, 0, 100];
        record.extend_from_slice(&pattern(22, 100));
        client.send_raw(&record);
        let end = client.run(&[], |client| client.tcp_ended);
        let err = end.expect_err("the server refuses the record");
        assert!(
            err.to_string().contains("BadRecordMac"),
            "{name}: {err}, after {} bytes",
            client.received.len()
        );
    }
    assert_echoed(addr, &files.client(&TLS13), b"the next one");
    assert_eq!(server.total("tls_handshakes"), 3);
    assert_eq!(server.total("tls_handshake_failed_protocol"), 0);
    assert_eq!(server.total("failed"), 2);
}

/// The handshake timeout ends with the handshake: a connection quiet for
/// longer afterwards is served still.
#[test]
fn a_connection_quiet_after_its_handshake_outlives_the_handshake_timeout() {
    let files = Files::new("tls-quiet-after", Role::Server);
    let server = files.start(&["--tls-handshake-timeout", "2s"], "info");
    let mut client = TlsClient::connect(tls_addr(&server), files.client(&TLS13)).expect("connects");
    client.handshake().expect("handshake");
    // The quiet, two handshake timeouts long, is what is tested.
    thread::sleep(Duration::from_millis(4_500));
    assert_eq!(client.echo(b"still here").expect("served"), b"still here");
    assert_eq!(server.total("tls_handshake_failed_timeout"), 0);
}

/// A hello that comes slowly, a piece every 250 ms, keeps the connection
/// busy: it is read, so the idle timeout (1 s here, shorter than the whole
/// hello takes) does not cut it, and within the handshake timeout the
/// handshake completes and the echo comes back.
#[test]
fn a_slow_hello_within_the_handshake_timeout_is_not_cut_as_idle() {
    let files = Files::new("tls-slow-ok", Role::Server);
    let server = files.start(
        &["--idle-timeout", "1s", "--tls-handshake-timeout", "15s"],
        "debug",
    );
    let mut client = TlsClient::connect(tls_addr(&server), files.client(&TLS13)).expect("connects");
    let hello = client.take_hello();
    for piece in hello.chunks(hello.len().div_ceil(10)) {
        client.send_raw(piece);
        // The pace is what is tested: a piece well within each idle timeout.
        thread::sleep(Duration::from_millis(250));
    }
    let reply = client.echo(b"slow but steady");
    assert_eq!(
        reply.expect("the handshake completes and the echo comes back"),
        b"slow but steady"
    );
    assert_eq!(server.total("idle_closed"), 0);
}

/// A client that sends and never reads is not buffered without end: it is
/// reset by the idle timeout (two of them, being owed bytes), as a plain
/// one is.
#[test]
fn a_tls_client_that_never_reads_is_reset_by_the_idle_timeout() {
    let files = Files::new("tls-noread", Role::Server);
    let server = files.start(&["--idle-timeout", "3s"], "info");
    let mut client = TlsClient::connect(tls_addr(&server), files.client(&TLS13)).expect("connects");
    client.handshake().expect("handshake");
    let message = pattern(23, 64 << 20);
    let mut rest = &message[..];
    let deadline = Instant::now() + WAIT;
    // Write only, until the server resets the connection.
    let end = loop {
        match client.write_until_blocked(&mut rest) {
            Ok(blocked) => assert!(blocked, "all {} bytes taken without a read", message.len()),
            Err(err) => break err,
        }
        assert!(Instant::now() < deadline, "not reset within {WAIT:?}");
        let tcp = &client.tcp;
        let ready = client.runtime.block_on(async {
            tokio::time::timeout(WAIT, tcp.ready(Interest::WRITABLE | Interest::ERROR)).await
        });
        assert!(ready.is_ok(), "not reset within {WAIT:?}");
    };
    assert!(
        matches!(
            end.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "{end}"
    );
    assert!(!rest.is_empty(), "all of it was taken");
    assert!(
        eventually(WAIT, || server.total("idle_closed") == 1),
        "idle_closed={}",
        server.total("idle_closed")
    );
    // What the kernel still held is not counted as echoed; the server
    // counted no more than it was sent.
    let (bytes, unsent) = (server.total("bytes"), server.total("bytes_unsent"));
    let sent = (message.len() - rest.len()) as u64;
    assert!(unsent > 0, "bytes={bytes} bytes_unsent={unsent}");
    assert!(
        bytes + unsent <= sent,
        "more counted than was sent: bytes={bytes} bytes_unsent={unsent}, sent {sent}"
    );
}

#[test]
fn tls_is_served_on_ipv6_loopback() {
    let files = Files::new("tls-ipv6", Role::Server);
    let mut args = files.server_args(&[]);
    args[1] = "tls:[::1]:0".into();
    let server = Server::start_command(
        Command::new(echo_tests::binary("echo-server"))
            .args(&args)
            .stdin(Stdio::null()),
        1,
    );
    let addr = tls_addr(&server);
    assert!(addr.is_ipv6(), "{addr}");
    for version in [&TLS13, &TLS12] {
        assert_echoed(addr, &files.client(version), b"over IPv6");
    }
}

#[test]
fn an_expired_server_certificate_is_refused_by_the_client_and_counted() {
    let files = Files::new("tls-expired", Role::ExpiredServer);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let mut client = TlsClient::connect(addr, files.client(version)).expect("connects");
        let err = client.handshake().expect_err("an expired certificate");
        let said = err.to_string();
        assert!(
            said.contains("expired"),
            "{}: {said}",
            version_name(version)
        );
    }
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_peer_alert")
            == 2),
        "tls_handshake_failed_peer_alert={}",
        server.total("tls_handshake_failed_peer_alert")
    );
    // A client that does not check the date is served still: the server is whole.
    let mut lenient = (*files.client(&TLS13)).clone();
    lenient.dangerous().set_certificate_verifier(Arc::new(
        echo_client::tls::insecure::Verifier::new(provider()),
    ));
    assert_echoed(addr, &Arc::new(lenient), b"still served");
}

#[test]
fn alpn_h2_refuses_other_protocols_and_serves_clients_offering_none() {
    let files = Files::new("tls-alpn", Role::Server);
    let server = files.start(&["--tls-alpn", "h2"], "info");
    let addr = tls_addr(&server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let http1 = client_config(version, &[&files.ca], None, &["http/1.1"]);
        let result = TlsClient::connect(addr, http1)
            .expect("connects")
            .echo(b"http/1.1");
        assert!(result.is_err(), "{name}: http/1.1 only got {result:?}");

        let h2 = client_config(version, &[&files.ca], None, &["http/1.1", "h2"]);
        let mut client = TlsClient::connect(addr, h2).expect("connects");
        assert_eq!(client.echo(b"h2").expect("h2 is served"), b"h2");
        assert_eq!(client.conn.alpn_protocol(), Some(&b"h2"[..]), "{name}");

        let none = client_config(version, &[&files.ca], None, &[]);
        let mut client = TlsClient::connect(addr, none).expect("connects");
        assert_eq!(client.echo(b"no ALPN").expect("served"), b"no ALPN");
        assert_eq!(client.conn.alpn_protocol(), None, "{name}");
    }
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_incompatible")
            == 2),
        "tls_handshake_failed_incompatible={}",
        server.total("tls_handshake_failed_incompatible")
    );
    assert_eq!(server.total("tls_handshakes"), 4);
}

// ---------------------------------------------------------------------------
// 5. Other TLS clients: OpenSSL and socat

/// Whether `program` can be run; a test that needs it says so when it skips.
fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        let _ = writeln!(io::stderr(), "skipped: {program} is not installed");
    }
    found
}

/// A child process killed and reaped when dropped, whatever happens.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads exactly `len` bytes of `child`'s stdout on a thread of its own;
/// `None` if they did not come within [`WAIT`]. The rest of the output, if
/// it ends, is given too.
fn read_stdout(child: &mut Child, len: usize) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = vec![0u8; len];
        let first = stdout.read_exact(&mut bytes).map(|()| bytes);
        let _ = sender.send(first);
        let mut rest = Vec::new();
        let _ = sender.send(stdout.read_to_end(&mut rest).map(|_| rest));
    });
    receiver
}

#[test]
fn openssl_s_client_is_echoed() {
    if !have("openssl") {
        return;
    }
    let files = Files::new("tls-openssl", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    for version in ["-tls1_3", "-tls1_2"] {
        let mut child = Reaped(
            Command::new("openssl")
                .args(["s_client", "-quiet", version, "-verify_return_error"])
                .args(["-connect", &addr.to_string(), "-servername", "localhost"])
                .arg("-CAfile")
                .arg(files.ca_path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("openssl runs"),
        );
        let message = format!("hello from openssl {version}\n");
        let echoed = read_stdout(&mut child.0, message.len());
        child
            .0
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(message.as_bytes())
            .expect("written");
        let reply = echoed
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{version}: no echo within {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{version}: {err}"));
        assert_eq!(String::from_utf8_lossy(&reply), message, "{version}");
    }
    assert_eq!(server.total("tls_handshakes"), 2);
}

/// OpenSSL clients with no version, suite or group in common with the
/// server (TLS 1.1; RSA key exchange; only a finite-field group; only a CCM
/// suite, which ring lacks) are refused in the handshake, each counted as
/// incompatible, and told so with a handshake_failure alert.
#[test]
fn openssl_clients_with_nothing_in_common_are_counted_incompatible() {
    if !have("openssl") {
        return;
    }
    let files = Files::new("tls-incompatible", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    let cases: [&[&str]; 4] = [
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
        &["-tls1_2", "-cipher", "AES128-SHA"],
        &["-tls1_3", "-groups", "ffdhe2048"],
        &["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"],
    ];
    for args in cases {
        let mut child = Reaped(
            Command::new("openssl")
                .args(["s_client", "-quiet"])
                .args(args)
                .args(["-connect", &addr.to_string()])
                .arg("-CAfile")
                .arg(files.ca_path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("openssl runs"),
        );
        let said = read_stderr(&mut child.0);
        assert!(
            eventually(WAIT, || matches!(child.0.try_wait(), Ok(Some(_)))),
            "{args:?}: openssl did not end"
        );
        let status = child.0.wait().expect("reaped");
        assert!(!status.success(), "{args:?}: served");
        let said = said.recv_timeout(WAIT).expect("its stderr");
        assert!(said.contains("alert handshake failure"), "{args:?}: {said}");
    }
    assert!(
        eventually(WAIT, || server.total("tls_handshake_failed_incompatible")
            == 4),
        "tls_handshake_failed_incompatible={}",
        server.total("tls_handshake_failed_incompatible")
    );
    assert_eq!(server.total("tls_handshake_failed_protocol"), 0);
    assert_echoed(addr, &files.client(&TLS12), b"compatible");
}

/// All of `child`'s stderr, read on a thread of its own.
fn read_stderr(child: &mut Child) -> mpsc::Receiver<String> {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut said = String::new();
        let _ = stderr.read_to_string(&mut said);
        let _ = sender.send(said);
    });
    receiver
}

/// `socat -t 10 - OPENSSL:...` with the message on stdin: its end of stdin
/// sends close_notify; returns socat's status and all it printed.
fn socat(addr: SocketAddr, ca: &Path, options: &str, message: &[u8]) -> (Option<i32>, Vec<u8>) {
    let address = format!("OPENSSL:{addr},cafile={}{options}", ca.display());
    let mut child = Reaped(
        Command::new("socat")
            .args(["-t", "10", "-", &address])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("socat runs"),
    );
    let output = read_stdout(&mut child.0, 0);
    let mut stdin = child.0.stdin.take().expect("stdin is piped");
    stdin.write_all(message).expect("written");
    drop(stdin);
    let _ = output.recv_timeout(WAIT);
    let printed = output
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("socat{options} did not end within {WAIT:?}"))
        .expect("socat's stdout");
    let status = eventually(WAIT, || matches!(child.0.try_wait(), Ok(Some(_))));
    assert!(status, "socat{options} did not exit");
    let code = child.0.wait().expect("reaped").code();
    (code, printed)
}

#[test]
fn socat_is_echoed_and_ends_with_its_close_notify() {
    if !have("socat") {
        return;
    }
    let files = Files::new("tls-socat", Role::Server);
    let server = files.start(&[], "info");
    let addr = tls_addr(&server);
    let message = pattern(12, 200_000);
    let (code, printed) = socat(addr, &files.ca_path(), "", &message);
    assert_eq!(code, Some(0), "socat's status");
    assert!(
        printed == message,
        "{} bytes sent, {} different came back",
        message.len(),
        printed.len()
    );
}

/// Over TLS 1.2 socat sends its close_notify as its stdin ends, before the
/// echo came. close_notify closes both ways there (RFC 5246 7.2.1), yet the
/// server keeps echoing what it read before it (docs/server.md), and socat
/// reads on: the whole echo comes back.
#[test]
fn socat_over_tls_1_2_gets_its_whole_echo_though_its_close_notify_comes_first() {
    if !have("socat") {
        return;
    }
    let files = Files::new("tls-socat12", Role::Server);
    let server = files.start(&[], "debug");
    let addr = tls_addr(&server);
    let message = pattern(13, 200_000);
    let (code, printed) = socat(
        addr,
        &files.ca_path(),
        ",openssl-max-proto-version=TLS1.2",
        &message,
    );
    assert_eq!(code, Some(0), "socat's status");
    assert!(
        printed == message,
        "{} bytes sent, {} different came back",
        message.len(),
        printed.len()
    );
    let line = server.wait_for_log("TLS handshake done");
    assert!(line.contains("TLSv1.2"), "{line}");
}

/// What socat relies on, with rustls: a TLS 1.2 client that sends its
/// close_notify right behind its message still reads the whole echo, then
/// the server's close_notify.
#[test]
fn a_tls_1_2_close_notify_sent_early_still_gets_the_whole_echo() {
    let files = Files::new("tls-early12", Role::Server);
    let server = files.start(&[], "info");
    let message = pattern(14, 3 * BUFFER_SIZE + 5);
    let mut client = TlsClient::connect(tls_addr(&server), files.client(&TLS12)).expect("connects");
    let reply = client.echo_closing_first(&message).expect("the exchange");
    assert!(
        reply == message,
        "{} bytes sent, {} different came back",
        message.len(),
        reply.len()
    );
}

/// A client that sends close_notify and then ends its TCP stream (a
/// half-close) right behind its message still reads the whole echo, over
/// either version: its end of stream is no reason to drop what it is owed.
#[test]
fn close_notify_then_a_half_close_still_gets_the_whole_echo() {
    let files = Files::new("tls-halfclose", Role::Server);
    let server = files.start(&[], "info");
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let message = pattern(26, 2 << 20);
        let mut client =
            TlsClient::connect(tls_addr(&server), files.client(version)).expect("connects");
        client.handshake().expect("handshake");
        client.run(&message, |_| true).expect("taken");
        client.conn.send_close_notify();
        client
            .run(&[], |client| !client.conn.wants_write())
            .unwrap_or_else(|err| panic!("{name}: sending: {err}"));
        socket2::SockRef::from(&client.tcp)
            .shutdown(std::net::Shutdown::Write)
            .expect("half-closed");
        client
            .run(&[], |client| {
                client.close_notify_received && client.tcp_ended
            })
            .unwrap_or_else(|err| panic!("{name}: after {} bytes: {err}", client.received.len()));
        assert!(
            client.received == message,
            "{name}: {} bytes sent, {} different came back",
            message.len(),
            client.received.len()
        );
    }
}

// ---------------------------------------------------------------------------
// 6. Totals and metrics

#[test]
fn totals_and_metrics_count_handshakes_by_outcome_and_plaintext_bytes() {
    let files = Files::new("tls-totals", Role::Server);
    let server = files.start(&["--metrics", "127.0.0.1:0"], "info");
    let addr = tls_addr(&server);
    let mut sent = 0u64;
    for (n, version) in [&TLS13, &TLS12, &TLS13, &TLS12, &TLS13]
        .into_iter()
        .enumerate()
    {
        let message = pattern(n as u64, 10_000 + n * 3_333);
        assert_echoed(addr, &files.client(version), &message);
        sent += message.len() as u64;
    }
    assert_eq!(server.total("tls_handshakes"), 5);
    // The last echo's bytes are counted once the server's turn is over,
    // which may be a moment after this client saw the end of it.
    assert!(
        eventually(WAIT, || server.total("bytes") == sent),
        "bytes={}, {sent} plaintext bytes echoed",
        server.total("bytes")
    );

    let (ended, _) = plaintext_request(addr);
    ended.expect("plaintext ends the connection");
    drop(TcpStream::connect(addr).expect("connects"));
    let scrape = || metrics::scrape(server.listener_addr("metrics", 0));
    let failed = |body: &str, cause: &str| {
        metrics::count(
            body,
            &format!("echo_tls_handshakes_failed_total{{cause=\"{cause}\"}}"),
        )
    };
    assert!(
        eventually(WAIT, || {
            let body = scrape();
            failed(&body, "protocol") == 1 && failed(&body, "closed") == 1
        }),
        "{}",
        scrape()
    );
    let body = scrape();
    assert_eq!(metrics::count(&body, "echo_tls_handshakes_total"), 5);
    for cause in [
        "timeout",
        "client_certificate",
        "peer_alert",
        "incompatible",
    ] {
        assert_eq!(failed(&body, cause), 0, "{cause}");
    }
    assert_eq!(
        metrics::count(&body, "echo_stream_echoed_bytes_total"),
        sent
    );
    assert!(
        eventually(WAIT, || server.total("active") == 0),
        "active={}",
        server.total("active")
    );
    assert_eq!(metrics::count(&scrape(), "echo_connections_active"), 0);
    assert_eq!(server.total("accepted"), 7);
}

// ---------------------------------------------------------------------------
// 7. The drain

/// A handshake under way when SIGTERM comes is a connection in flight as
/// well: it finishes within the grace, and is echoed, while new clients
/// are refused.
#[test]
fn a_handshake_under_way_at_sigterm_finishes_within_the_grace() {
    let files = Files::new("tls-drain-hs", Role::Server);
    let mut server = files.start(&["--grace", "15s"], "info");
    let addr = tls_addr(&server);
    let mut client = TlsClient::connect(addr, files.client(&TLS13)).expect("connects");
    // Half the hello now, the rest once the drain is on.
    let hello = client.take_hello();
    let (now, later) = hello.split_at(hello.len() / 2);
    client.send_raw(now);
    // The server has accepted it once it counts it active.
    assert!(
        eventually(WAIT, || server.total("active") == 1),
        "the connection is not accepted"
    );
    server.signal(Signal::SIGTERM);
    server.wait_for_log("draining connections");
    assert!(
        eventually(WAIT, || TcpStream::connect(addr)
            .is_err_and(|err| err.kind() == ErrorKind::ConnectionRefused)),
        "still accepting new clients during the drain"
    );
    client.send_raw(later);
    let message = pattern(25, 20_000);
    let reply = client.echo(&message).expect("the exchange finishes");
    assert!(reply == message, "{} bytes came back", reply.len());
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

#[test]
fn a_tls_exchange_in_flight_at_sigterm_finishes_within_the_grace() {
    let files = Files::new("tls-drain", Role::Server);
    for version in [&TLS13, &TLS12] {
        let name = version_name(version);
        let mut server = files.start(&["--grace", "15s"], "info");
        let first = pattern(20, 50_000);
        let second = pattern(21, 300_000);
        let mut in_flight =
            TlsClient::connect(tls_addr(&server), files.client(version)).expect("connects");
        assert!(
            in_flight.echo_part(&first).expect("first half") == first,
            "{name}"
        );
        server.signal(Signal::SIGTERM);
        server.wait_for_log("draining connections");
        assert!(
            in_flight.echo_part(&second).expect("second half") == second,
            "{name}"
        );
        assert!(
            in_flight
                .close()
                .expect("the server's close_notify")
                .is_empty(),
            "{name}: bytes after the echo"
        );
        let status = server.wait_exit(WAIT);
        assert_eq!(status.code(), Some(0), "{name}: {}", server.stderr());
    }
}
