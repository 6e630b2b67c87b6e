//! The `echo-client` command: sends a message (or stdin) to an echo server
//! and prints what comes back.

use std::ffi::OsString;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use echo_client::{Client, DEFAULT_TIMEOUT, Error};
use echo_proto::{Endpoint, parse_duration, verify};

/// Sends a message to an RFC 862 echo server and prints the reply.
///
/// The message goes out over TCP (or a Unix socket), the client half-closes
/// to mark its end, and everything the server sends back until it closes is
/// the reply. With `-` as the message, stdin is streamed to the server and the
/// reply to stdout, byte for byte, whatever its size.
#[derive(Debug, Parser)]
#[command(version, after_help = AFTER_HELP)]
struct Cli {
    /// The message to send, or `-` to stream stdin to the server and the reply to stdout.
    #[arg(value_name = "MESSAGE", allow_hyphen_values = true)]
    message: OsString,

    /// The server: IP:PORT, [IPV6]:PORT or unix:PATH.
    #[arg(
        short,
        long,
        value_name = "ADDR",
        env = "ECHO_ADDR",
        default_value = "127.0.0.1:7007"
    )]
    addr: Endpoint,

    /// Give up when connecting, or when no byte moves either way, takes longer
    /// than this (0s: wait forever). With --udp, the whole wait for a reply (0s: 3s).
    #[arg(long, value_name = "DURATION", env = "ECHO_TIMEOUT",
          default_value = DEFAULT_TIMEOUT_TEXT.as_str(), value_parser = parse_duration)]
    timeout: Duration,

    /// Exit 1 with a message if the reply differs from what was sent: a health probe.
    #[arg(long)]
    check: bool,

    /// Send the message as one UDP datagram (at most 65,507 bytes over IPv4,
    /// 65,527 over IPv6), resending it a few times within --timeout until the
    /// reply comes.
    #[arg(long)]
    udp: bool,
}

/// The library's default timeout, as `--help` shows it and `--timeout` parses it.
static DEFAULT_TIMEOUT_TEXT: LazyLock<String> =
    LazyLock::new(|| format!("{}s", DEFAULT_TIMEOUT.as_secs()));

// Whole seconds, or the text above would not say the same duration.
const _: () = assert!(DEFAULT_TIMEOUT.subsec_nanos() == 0);

const AFTER_HELP: &str = "\
Examples:
  echo-client \"this is the message to send\"
  echo-client --addr [::1]:7007 --check ping
  echo-client - < big.bin | cmp - big.bin

Exit status: 0 success, 1 failure (refused, timeout, reply differs), 2 bad command line.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`echo-client msg | head -c1`) wanted no more.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // With stderr gone too there is no one left to tell: exit 1 all the same.
            let _ = writeln!(io::stderr().lock(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(cli.addr).timeout(Some(cli.timeout));
    if cli.message == "-" {
        if cli.udp {
            use clap::CommandFactory as _;
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--udp sends one message; it cannot stream stdin (-)",
                )
                .exit();
        }
        return stream_stdin(&client, cli.check);
    }
    let message = cli.message.as_bytes();
    let reply = if cli.udp {
        client.echo_udp(message)?
    } else {
        client.echo(message)?
    };
    if cli.check {
        verify(message, &reply)
            .with_context(|| format!("{} answered wrongly", client.endpoint()))?;
    }
    let mut stdout = io::stdout().lock();
    stdout.write_all(&reply)?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// Streams stdin through the server to stdout; with `check`, compares the
/// length and a digest of both directions, since neither fits in memory.
fn stream_stdin(client: &Client, check: bool) -> anyhow::Result<()> {
    let (sent_digest, input) = Digesting::new(io::stdin());
    let stdout = io::stdout().lock();
    let (received_digest, mut output) = Digesting::new(stdout);
    let transfer = client.stream(input, &mut output)?;
    if check {
        let sent = sent_digest.lock().map(|d| d.finish()).unwrap_or_default();
        let received = received_digest
            .lock()
            .map(|d| d.finish())
            .unwrap_or_default();
        if transfer.sent != transfer.received {
            bail!(
                "{} answered wrongly: reply is {} bytes long but {} were sent",
                client.endpoint(),
                transfer.received,
                transfer.sent
            );
        }
        if sent != received {
            bail!(
                "{} answered wrongly: the reply's bytes differ from what was sent",
                client.endpoint()
            );
        }
    }
    Ok(())
}

/// A reader or writer that digests the bytes passing through it.
struct Digesting<T> {
    inner: T,
    digest: SharedDigest,
}

type SharedDigest = std::sync::Arc<std::sync::Mutex<DefaultHasher>>;

impl<T> Digesting<T> {
    fn new(inner: T) -> (SharedDigest, Self) {
        let digest = SharedDigest::default();
        (std::sync::Arc::clone(&digest), Digesting { inner, digest })
    }

    fn absorb(&self, bytes: &[u8]) {
        if let Ok(mut digest) = self.digest.lock() {
            digest.write(bytes);
        }
    }
}

impl<T: Read> Read for Digesting<T> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.absorb(&buffer[..n]);
        Ok(n)
    }
}

impl<T: Write> Write for Digesting<T> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.absorb(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether the failure is our own stdout having been closed by its reader,
/// which is how `| head` says it wants no more: only the reply's destination
/// counts, never a broken connection to the server.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = |e: &io::Error| e.kind() == io::ErrorKind::BrokenPipe;
    match err.downcast_ref::<Error>() {
        Some(Error::Output(e)) => broken(e),
        Some(_) => false,
        // A bare io::Error comes only from `run`'s own writes to stdout.
        None => err.downcast_ref::<io::Error>().is_some_and(broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timeout_text_parses_back_to_the_default() {
        assert_eq!(parse_duration(&DEFAULT_TIMEOUT_TEXT), Ok(DEFAULT_TIMEOUT));
    }

    #[test]
    fn only_a_closed_stdout_is_a_quiet_end() {
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::from(pipe())));
        assert!(is_broken_pipe(&anyhow::Error::from(Error::Output(pipe()))));
        let endpoint: Endpoint = "127.0.0.1:7".parse().expect("literal");
        let server_gone = Error::Io {
            endpoint,
            source: pipe(),
        };
        assert!(!is_broken_pipe(&anyhow::Error::from(server_gone)));
        assert!(!is_broken_pipe(&anyhow::Error::from(Error::Input(pipe()))));
    }
}
