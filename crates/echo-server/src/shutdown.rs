//! What starts a shutdown: Ctrl-C, SIGTERM, or Ctrl-D on a terminal; and what
//! a second signal does (exit at once).

use std::io::{IsTerminal, Read};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Exit status after a second SIGINT: 128 + 2, as shells report it.
pub const EXIT_SECOND_SIGINT: i32 = 130;
/// Exit status after a second SIGTERM: 128 + 15.
pub const EXIT_SECOND_SIGTERM: i32 = 143;

/// Installs the signal handlers and returns a token cancelled at the first
/// SIGINT, SIGTERM, or end of input on a terminal stdin.
///
/// After that, a second SIGINT or SIGTERM exits the process at once with
/// [`EXIT_SECOND_SIGINT`] or [`EXIT_SECOND_SIGTERM`]: an operator who asks
/// twice does not want to wait out the drain.
/// Stdin that is not a terminal (`/dev/null`, a pipe) is left alone, so a
/// server run by a process manager keeps serving.
///
/// Must be called within a tokio runtime; the handlers are in place when it returns.
///
/// # Errors
/// A signal handler could not be installed.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut end_of_input = terminal_eof();
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let reason = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            Ok(()) = &mut end_of_input => "end of input",
        };
        info!(reason, "shutting down");
        trigger.cancel();
        let code = tokio::select! {
            _ = interrupt.recv() => EXIT_SECOND_SIGINT,
            _ = terminate.recv() => EXIT_SECOND_SIGTERM,
        };
        warn!("second signal, exiting without waiting for connections");
        std::process::exit(code);
    });
    Ok(token)
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
