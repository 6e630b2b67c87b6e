//! `tls-floor`: what TLS itself costs an echo server's CPU and memory, with
//! no socket, no kernel and no server in the way, as the floor that a TLS
//! server's measured costs are judged against.
//!
//! A rustls client and server run in this one thread and pass their records
//! through `Vec`s. The server's share is timed alone: the thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`, to the nanosecond) is read around each call
//! made on the server's connection and nothing else, so the client's work,
//! which a real server never does, is left out.
//!
//! Both sides are pinned to TLS 1.3, X25519 and TLS13_AES_128_GCM_SHA256,
//! with an ECDSA P-256 certificate: what our server negotiates with ring and
//! a ring client. Left to their defaults, other builds of rustls (aws-lc-rs)
//! negotiate X25519MLKEM768 and AES-256, whose costs differ, and a floor
//! that moved with the build would not be a floor.

pub mod memory;

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, RootCertStore, ServerConfig,
    ServerConnection,
};
use serde::{Deserialize, Serialize};

use crate::size::group_thousands;
use crate::tls::{ring_provider, version_name};

/// The plaintext carried by each application-data record: TLS's largest.
pub const RECORD_SIZE: usize = 16 * 1024;

/// Records sealed, then opened, per timed span: 1 MiB, so that reading the
/// clock costs nothing beside the crypto it times.
const RECORDS_PER_SPAN: usize = 64;

/// Bytes in a GiB, the unit of the bulk figures.
const GIB: f64 = (1u64 << 30) as f64;

/// The most flights a handshake may take before it is called stuck: TLS 1.3
/// needs three, and one more carries the server's ticket.
const MAX_FLIGHTS: usize = 8;

/// What to measure, and how much of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Full handshakes per run, each on a new pair of connections.
    pub handshakes: u32,
    /// Runs of `handshakes` handshakes; the figures are their medians.
    pub runs: u32,
    /// Application data to seal and open, in bytes.
    pub bytes: u64,
    /// Idle server connections to hold at once to weigh one.
    pub idle_connections: u32,
}

/// Why the floor could not be measured: rustls or rcgen refused something,
/// which with the pinned settings means a bug here, not a condition to handle.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// rcgen could not make the test certificate.
    #[error("cannot make the test certificate")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the pinned configuration, or a record of the pair's.
    #[error("rustls: {0}")]
    Tls(#[from] rustls::Error),
    /// Moving records between the two sides failed.
    #[error("moving records between client and server")]
    Io(#[from] io::Error),
    /// The certificate's name is not one (a bug here).
    #[error("invalid server name")]
    Name(#[from] rustls::pki_types::InvalidDnsNameError),
    /// The handshake did not end within [`MAX_FLIGHTS`] flights.
    #[error("the handshake did not end within {MAX_FLIGHTS} flights")]
    Stuck,
    /// The server opened other bytes than the client sealed.
    #[error("the server opened {got} bytes where the client sealed {sent}")]
    Lost {
        /// Bytes sealed.
        sent: u64,
        /// Bytes opened.
        got: u64,
    },
    /// Asked to resume, the server resumed no session.
    #[error("the server resumed none of {0} handshakes offered a session")]
    NotResumed(u32),
}

/// What the floor measured, as `--json` gives it; the field names are
/// stable, for xtask and BENCHMARKS.md to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// The protocol, as `TLSv1.3`.
    pub protocol: String,
    /// The cipher suite, as `TLS13_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
    /// The key exchange group, as `X25519`.
    pub group: String,
    /// The server's key and certificate, as `ECDSA P-256`.
    pub certificate: String,
    /// Handshakes per run.
    pub handshakes: u32,
    /// Runs; the handshake figures are medians over them.
    pub runs: u32,
    /// The server's CPU time per full handshake, in microseconds: median of the runs.
    pub server_handshake_us: f64,
    /// The same for each run, in the order run.
    pub server_handshake_us_runs: Vec<f64>,
    /// The server's CPU time per resumed handshake (a session ticket from the
    /// server's stateful cache, with a fresh X25519 exchange), in microseconds.
    pub server_resumed_handshake_us: f64,
    /// The client's CPU time per full handshake, in microseconds (certificate
    /// verification included): what the load generator spends per connection.
    pub client_handshake_us: f64,
    /// Application data sealed and opened, in bytes.
    pub bytes: u64,
    /// Plaintext per record, in bytes.
    pub record_size: usize,
    /// CPU time to seal one GiB, in seconds.
    pub seal_s_per_gib: f64,
    /// CPU time to open one GiB, in seconds.
    pub open_s_per_gib: f64,
    /// What an echo costs a server per GiB echoed: one open and one seal of
    /// each byte, in seconds.
    pub echo_s_per_gib: f64,
    /// Idle server connections held at once to weigh one.
    pub idle_connections: u32,
    /// Heap bytes one idle `ServerConnection` holds after its handshake;
    /// `null` where the counting allocator is not installed.
    pub idle_connection_bytes: Option<u64>,
}

/// The pinned provider: ring, X25519 alone, TLS13_AES_128_GCM_SHA256 alone.
fn pinned_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![kx_group::X25519],
        ..ring_provider()
    })
}

/// The pair's configurations: servers with a certificate for `localhost`
/// signed by a CA the clients trust.
struct Configs {
    /// As our server runs: session tickets from a stateful cache.
    server: Arc<ServerConfig>,
    /// The same with a cache of its own, for the resumed handshakes: the
    /// full ones' tickets would push the resuming client's out of a shared one.
    server_resuming: Arc<ServerConfig>,
    /// With no session storage and no tickets, so that holding connections
    /// grows nothing but them.
    server_stateless: Arc<ServerConfig>,
    /// Offers no session: every handshake is full.
    client: Arc<ClientConfig>,
    /// Keeps and offers sessions.
    client_resuming: Arc<ClientConfig>,
}

impl Configs {
    fn new() -> Result<Self, FloorError> {
        let provider = pinned_provider();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &ca)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)?;
        // One ticket per handshake, as echo-server sends.
        server.send_tls13_tickets = 1;
        let mut server_resuming = server.clone();
        server_resuming.session_storage = ServerSessionMemoryCache::new(256);
        let mut server_stateless = server.clone();
        server_stateless.session_storage = Arc::new(NoServerSessionStorage {});
        server_stateless.send_tls13_tickets = 0;

        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone())?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client_resuming = client.clone();
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Configs {
            server: Arc::new(server),
            server_resuming: Arc::new(server_resuming),
            server_stateless: Arc::new(server_stateless),
            client: Arc::new(client),
            client_resuming: Arc::new(client_resuming),
        })
    }
}

/// The thread's CPU time so far.
fn thread_cpu() -> Duration {
    // The clock exists on every Linux since 2.6.12; were it missing, every
    // figure would be 0, which the report shows and the tests catch.
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Runs `call`, adding the thread CPU time it took to `spent`.
fn timed<T>(spent: &mut Duration, call: impl FnOnce() -> T) -> T {
    let start = thread_cpu();
    let result = call();
    *spent += thread_cpu().saturating_sub(start);
    result
}

/// Feeds `records` to `conn` and processes them; plaintext they carry is
/// left for `conn`'s reader.
fn feed<Data>(conn: &mut ConnectionCommon<Data>, mut records: &[u8]) -> Result<(), FloorError> {
    while !records.is_empty() {
        conn.read_tls(&mut records)?;
        conn.process_new_packets()?;
    }
    Ok(())
}

/// Takes every record `conn` has to send into `out`, which it empties first.
fn drain<Data>(conn: &mut ConnectionCommon<Data>, out: &mut Vec<u8>) -> Result<(), FloorError> {
    out.clear();
    append(conn, out)
}

/// Adds every record `conn` has to send to the end of `out`.
fn append<Data>(conn: &mut ConnectionCommon<Data>, out: &mut Vec<u8>) -> Result<(), FloorError> {
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// The CPU time one handshake cost each side.
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    server: Duration,
    client: Duration,
}

/// Drives `client` and `server` through their handshake and the server's
/// tickets, with `wire` as scratch space for records in flight, and says
/// what each side spent.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
    wire: &mut Vec<u8>,
) -> Result<Spent, FloorError> {
    let mut spent = Spent::default();
    for _ in 0..MAX_FLIGHTS {
        timed(&mut spent.client, || drain(client, wire))?;
        if !wire.is_empty() {
            timed(&mut spent.server, || feed(server, wire))?;
        }
        timed(&mut spent.server, || drain(server, wire))?;
        if !wire.is_empty() {
            timed(&mut spent.client, || feed(client, wire))?;
        }
        let done = !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write();
        if done {
            return Ok(spent);
        }
    }
    Err(FloorError::Stuck)
}

/// A new pair of connections, the client's towards `localhost`.
fn pair(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
) -> Result<(ClientConnection, ServerConnection), FloorError> {
    let name = ServerName::try_from("localhost")?;
    Ok((
        ClientConnection::new(Arc::clone(client), name)?,
        ServerConnection::new(Arc::clone(server))?,
    ))
}

/// Per-handshake CPU times of one run of `handshakes`, in microseconds: the
/// server's and the client's; `resumed` counts the handshakes the server resumed.
fn handshake_run(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    handshakes: u32,
    wire: &mut Vec<u8>,
    resumed: &mut u32,
) -> Result<(f64, f64), FloorError> {
    let mut total = Spent::default();
    for _ in 0..handshakes {
        let (mut client, mut server) = pair(client, server)?;
        let spent = handshake(&mut client, &mut server, wire)?;
        total.server += spent.server;
        total.client += spent.client;
        if server.handshake_kind() == Some(HandshakeKind::Resumed) {
            *resumed += 1;
        }
    }
    let each = |spent: Duration| spent.as_secs_f64() * 1e6 / f64::from(handshakes.max(1));
    Ok((each(total.server), each(total.client)))
}

/// The CPU time to seal `bytes` on the client and to open them on the
/// server, in [`RECORD_SIZE`] records, checking the server got them all.
fn seal_and_open(configs: &Configs, bytes: u64, wire: &mut Vec<u8>) -> Result<Spent, FloorError> {
    let (mut client, mut server) = pair(&configs.client, &configs.server)?;
    handshake(&mut client, &mut server, wire)?;
    let record: Vec<u8> = (0..RECORD_SIZE).map(|i| (i % 251) as u8).collect();
    let mut opened = vec![0u8; RECORD_SIZE];
    let mut spent = Spent::default();
    let (mut sealed, mut got) = (0u64, 0u64);
    while sealed < bytes {
        let span = (bytes - sealed).min((RECORD_SIZE * RECORDS_PER_SPAN) as u64);
        wire.clear();
        timed(&mut spent.client, || -> Result<(), FloorError> {
            let mut left = span;
            while left > 0 {
                let take = left.min(RECORD_SIZE as u64) as usize;
                client.writer().write_all(&record[..take])?;
                // Each record leaves as soon as it is sealed, as a server
                // writes it out, so rustls holds one buffer at a time.
                append(&mut client, wire)?;
                left -= take as u64;
            }
            Ok(())
        })?;
        sealed += span;
        timed(&mut spent.server, || -> Result<(), FloorError> {
            let mut records = &wire[..];
            while !records.is_empty() {
                server.read_tls(&mut records)?;
                server.process_new_packets()?;
                // Read as a server reads, into its own buffer, so the
                // plaintext never piles up in rustls's.
                loop {
                    match server.reader().read(&mut opened) {
                        Ok(0) => break,
                        Ok(n) => got += n as u64,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) => return Err(err.into()),
                    }
                }
            }
            Ok(())
        })?;
    }
    if got != sealed {
        return Err(FloorError::Lost { sent: sealed, got });
    }
    Ok(spent)
}

/// Heap bytes one idle server connection holds after its handshake, from
/// `count` held at once; `None` without the counting allocator.
fn idle_connection_bytes(
    configs: &Configs,
    count: u32,
    wire: &mut Vec<u8>,
) -> Result<Option<u64>, FloorError> {
    if !memory::counting() || count == 0 {
        return Ok(None);
    }
    let mut held = Vec::with_capacity(count as usize);
    // One handshake first, so that whatever rustls or ring builds once,
    // and the scratch buffer's growth, are not counted.
    let (mut client, mut server) = pair(&configs.client, &configs.server_stateless)?;
    handshake(&mut client, &mut server, wire)?;
    drop((client, server));
    let before = memory::live_bytes();
    for _ in 0..count {
        let (mut client, mut server) = pair(&configs.client, &configs.server_stateless)?;
        handshake(&mut client, &mut server, wire)?;
        held.push(server);
    }
    let after = memory::live_bytes();
    drop(held);
    Ok(Some(
        u64::try_from((after - before) / i64::from(count)).unwrap_or(0),
    ))
}

/// The middle of `values`, or the mean of the two middle ones.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Measures the floor as `settings` say, in this thread.
///
/// # Errors
/// A [`FloorError`] when rustls or rcgen refuse the pinned configuration,
/// which would be a bug here.
pub fn measure(settings: &Settings) -> Result<Floor, FloorError> {
    let configs = Configs::new()?;
    let mut wire = Vec::with_capacity(64 * 1024);
    // One pair first, to learn what was negotiated and to warm up.
    let (mut client, mut server) = pair(&configs.client, &configs.server)?;
    handshake(&mut client, &mut server, &mut wire)?;
    let protocol = server
        .protocol_version()
        .map(version_name)
        .unwrap_or_default();
    let cipher_suite = server
        .negotiated_cipher_suite()
        .and_then(|suite| suite.suite().as_str())
        .unwrap_or_default()
        .to_owned();
    let group = server
        .negotiated_key_exchange_group()
        .and_then(|group| group.name().as_str())
        .unwrap_or_default()
        .to_owned();

    let runs = settings.runs.max(1);
    let mut server_runs = Vec::new();
    let mut client_runs = Vec::new();
    let mut resumed_runs = Vec::new();
    let mut no_resumption = 0;
    let mut resumed = 0;
    for _ in 0..runs {
        let (server_us, client_us) = handshake_run(
            &configs.client,
            &configs.server,
            settings.handshakes,
            &mut wire,
            &mut no_resumption,
        )?;
        server_runs.push(server_us);
        client_runs.push(client_us);
        // The resuming client's first handshake of all is full; after it,
        // every one offers a ticket from the one before.
        if resumed_runs.is_empty() {
            let mut first = 0;
            handshake_run(
                &configs.client_resuming,
                &configs.server_resuming,
                1,
                &mut wire,
                &mut first,
            )?;
        }
        let (resumed_us, _) = handshake_run(
            &configs.client_resuming,
            &configs.server_resuming,
            settings.handshakes,
            &mut wire,
            &mut resumed,
        )?;
        resumed_runs.push(resumed_us);
    }
    if resumed < settings.handshakes * runs {
        return Err(FloorError::NotResumed(settings.handshakes * runs - resumed));
    }
    let bulk = seal_and_open(&configs, settings.bytes, &mut wire)?;
    let per_gib = |spent: Duration| {
        if settings.bytes == 0 {
            0.0
        } else {
            spent.as_secs_f64() / (settings.bytes as f64 / GIB)
        }
    };
    let idle_connection_bytes =
        idle_connection_bytes(&configs, settings.idle_connections, &mut wire)?;
    Ok(Floor {
        protocol,
        cipher_suite,
        group,
        certificate: "ECDSA P-256".to_owned(),
        handshakes: settings.handshakes,
        runs,
        server_handshake_us: median(&server_runs),
        server_handshake_us_runs: server_runs,
        server_resumed_handshake_us: median(&resumed_runs),
        client_handshake_us: median(&client_runs),
        bytes: settings.bytes,
        record_size: RECORD_SIZE,
        seal_s_per_gib: per_gib(bulk.client),
        open_s_per_gib: per_gib(bulk.server),
        echo_s_per_gib: per_gib(bulk.client) + per_gib(bulk.server),
        idle_connections: settings.idle_connections,
        idle_connection_bytes,
    })
}

impl Floor {
    /// The report as one JSON object on one line.
    pub fn to_json(&self) -> String {
        // A struct of plain fields always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for Floor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "TLS crypto floor: {}, {}, {}, {} certificate; in memory, no sockets",
            self.protocol, self.cipher_suite, self.group, self.certificate
        )?;
        writeln!(
            f,
            "  full handshake     server {:.1} µs CPU  (median of {} runs of {}; runs {})",
            self.server_handshake_us,
            self.runs,
            group_thousands(u64::from(self.handshakes)),
            self.server_handshake_us_runs
                .iter()
                .map(|us| format!("{us:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "  resumed handshake  server {:.1} µs CPU",
            self.server_resumed_handshake_us
        )?;
        writeln!(
            f,
            "  full handshake     client {:.1} µs CPU  (the load generator's share)",
            self.client_handshake_us
        )?;
        writeln!(
            f,
            "  per GiB in {} KiB records: seal {:.3} s, open {:.3} s, echo (open + seal) {:.3} s CPU",
            self.record_size / 1024,
            self.seal_s_per_gib,
            self.open_s_per_gib,
            self.echo_s_per_gib
        )?;
        match self.idle_connection_bytes {
            Some(bytes) => writeln!(
                f,
                "  idle connection    {} B of heap per ServerConnection after its handshake ({} held)",
                group_thousands(bytes),
                group_thousands(u64::from(self.idle_connections))
            ),
            None => writeln!(
                f,
                "  idle connection    not measured (no counting allocator)"
            ),
        }
    }
}
