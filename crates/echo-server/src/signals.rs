//! Every signal the server heeds: what starts a shutdown (Ctrl-C, SIGTERM,
//! SIGHUP, or Ctrl-D on a terminal), what a second one does (exit at once),
//! and SIGUSR1, which logs the running totals.

use std::io::{IsTerminal, Read};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::stats::Stats;

/// Exit status after a second SIGHUP: 128 + 1, as shells report it.
pub const EXIT_SECOND_SIGHUP: i32 = 129;
/// Exit status after a second SIGINT: 128 + 2.
pub const EXIT_SECOND_SIGINT: i32 = 130;
/// Exit status after a second SIGTERM: 128 + 15.
pub const EXIT_SECOND_SIGTERM: i32 = 143;

/// How long an exit at a second signal waits for the log lines before it.
const EXIT_LOG_FLUSH: Duration = Duration::from_millis(200);

/// What ends the serving: a token cancelled at the first signal, and which
/// signal it was.
#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
    reason: Arc<OnceLock<&'static str>>,
}

impl Shutdown {
    /// Resolves when the shutdown starts, and says why (`"SIGTERM"`, say).
    pub async fn started(self) -> &'static str {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or("unknown")
    }
}

/// Installs the signal handlers and returns a [`Shutdown`] that starts at the
/// first SIGINT, SIGTERM, SIGHUP, or end of input on a terminal stdin.
///
/// After that, a second one of those signals exits the process at once with
/// [`EXIT_SECOND_SIGINT`], [`EXIT_SECOND_SIGTERM`] or [`EXIT_SECOND_SIGHUP`]:
/// an operator who asks twice does not want to wait out the drain.
/// SIGHUP (the terminal went away) is handled only if it was not ignored
/// when the process started, so `nohup echo-server &` survives the terminal.
/// Stdin that is not a terminal (`/dev/null`, a pipe) is left alone, so a
/// server run by a process manager keeps serving.
///
/// Must be called within a tokio runtime; the handlers are in place when it returns.
///
/// # Errors
/// A signal handler could not be installed.
pub fn on_signals() -> std::io::Result<Shutdown> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    // Checked before any handler is installed, since installing one replaces the "ignore".
    let mut hangup = if hangup_ignored() {
        None
    } else {
        Some(signal(SignalKind::hangup())?)
    };
    let mut end_of_input = terminal_eof();
    let token = CancellationToken::new();
    let trigger = token.clone();
    let reason = Arc::new(OnceLock::new());
    let told = Arc::clone(&reason);
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            () = next(&mut hangup) => "SIGHUP",
            Ok(()) = &mut end_of_input => "end of input",
        };
        // Cancel before anything else: the drain starts whatever happens
        // next; whoever awaits the shutdown logs it, in its place.
        let _ = told.set(first);
        trigger.cancel();
        let code = tokio::select! {
            _ = interrupt.recv() => EXIT_SECOND_SIGINT,
            _ = terminate.recv() => EXIT_SECOND_SIGTERM,
            () = next(&mut hangup) => EXIT_SECOND_SIGHUP,
        };
        warn!("second signal, exiting without waiting for connections");
        crate::log::flush(EXIT_LOG_FLUSH);
        std::process::exit(code);
    });
    Ok(Shutdown { token, reason })
}

/// Logs the totals, and how many log lines were dropped, whenever SIGUSR1
/// arrives, and tells them to the service manager, if there is one.
///
/// Must be called within a tokio runtime.
///
/// # Errors
/// The handler could not be installed.
pub fn report_on_sigusr1(stats: Arc<Stats>) -> std::io::Result<()> {
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let totals = stats.snapshot();
            totals.log("totals");
            crate::notify::status(&totals, &stats);
        }
    });
    Ok(())
}

/// Resolves at the next delivery of `signal`; never, when it is not handled.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Whether SIGHUP was set to be ignored when the process started, as
/// `nohup` does; the kernel shows the ignored signals in `/proc/self/status`.
fn hangup_ignored() -> bool {
    let hangup = nix::sys::signal::Signal::SIGHUP as u32;
    echo_os::process::ignored_signals(std::process::id())
        .is_ok_and(|mask| mask & (1 << (hangup - 1)) != 0)
}

/// Resolves when a terminal stdin reaches end of input (Ctrl-D); fails at once
/// when stdin is not a terminal.
fn terminal_eof() -> tokio::sync::oneshot::Receiver<()> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    if std::io::stdin().is_terminal() {
        // A plain thread, not the runtime's blocking pool: a read on a
        // terminal cannot be cancelled, and the runtime would wait for it at exit.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut discard = [0u8; 256];
            loop {
                match stdin.read(&mut discard) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    // A terminal gone away (hang-up) is the end of input too.
                    Err(_) => break,
                }
            }
            let _ = sender.send(());
        });
    }
    // Without a terminal the sender is dropped here, and the receiver's error
    // disables its branch of the `select!` above.
    receiver
}
