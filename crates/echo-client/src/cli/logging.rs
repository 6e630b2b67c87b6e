//! The command's log lines: `tracing` events to stderr, filtered by
//! `RUST_LOG` (warnings only by default), coloured as `--color` says,
//! written so that a closed or full stderr can neither panic nor fail the command.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, with ANSI colours and styles when
/// `ansi`; a second call changes nothing.
pub(crate) fn init(ansi: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr)
        .with_ansi(ansi)
        .with_target(false)
        // Its own complaints about a failed write would go to stderr too.
        .log_internal_errors(false)
        .try_init();
}

/// Stderr that takes every line and drops what it cannot write: a log line
/// is never worth failing, or panicking, over.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().lock().write_all(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
