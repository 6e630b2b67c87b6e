//! The reference echo server the benchmark compares ours against: the canonical
//! tokio echo, one task per connection reading into a 4 KiB buffer and writing
//! back with `write_all`, and nothing more.
//!
//! Try it with `cargo run --release -p echo-bench --example reference -- --listen 127.0.0.1:7008`,
//! then `echo-bench persistent --addr 127.0.0.1:7008`.
//! It prints `listening on tcp ADDR` once bound, as echo-server does, and exits
//! on Ctrl-C or SIGTERM.
//! Beyond the canonical program it only raises its open-files limit, as
//! `ulimit -n` would before any server benchmark, so that the idle scenario
//! measures memory rather than the default limit of 1,024 descriptors.
//! Like the canonical program it leaves Nagle's algorithm on, so a message
//! longer than its buffer comes back in pieces that can wait for the client's
//! delayed ACK (about 40 ms); `--nodelay` shows what that costs.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// The canonical tokio echo server, as a benchmark reference.
#[derive(Debug, Parser)]
struct Cli {
    /// Where to listen; port 0 picks a free port, announced on stdout.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Set TCP_NODELAY on accepted connections (the canonical program does not).
    #[arg(long)]
    nodelay: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    echo_bench::limits::raise_fd_limit();
    let mut terminate = signal(SignalKind::terminate())?;
    let listener = TcpListener::bind(cli.listen).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on tcp {}", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    if cli.nodelay {
                        // Fails only on a connection already dead, which the echo then finds out.
                        let _ = socket.set_nodelay(true);
                    }
                    tokio::spawn(echo(socket));
                }
                // Out of descriptors, typically: pause rather than spin.
                Err(err) => {
                    // A broken stderr must not take the server down with it.
                    let _ = writeln!(std::io::stderr().lock(), "accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    Ok(())
}

async fn echo(mut socket: TcpStream) {
    let mut buf = vec![0; 4096];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
