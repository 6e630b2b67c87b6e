//! The inactivity timeout of one exchange, counted over both directions.
//!
//! The socket timeouts bound each read and each write on its own, but a
//! direction can rightly be quiet for long: a server that reads the whole
//! message before answering sends nothing back while the client's writes
//! are still moving. So a socket timeout is final only when the other
//! direction made no progress either, as the server counts it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::connection::{Connection, Direction};

/// When bytes last moved either way, shared by the writer and the reader.
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    /// Nanoseconds from `started` to the latest progress in either direction.
    latest: AtomicU64,
}

impl Activity {
    /// An exchange starting now, which counts as progress.
    pub(crate) fn new() -> Self {
        Activity {
            started: Instant::now(),
            latest: AtomicU64::new(0),
        }
    }

    fn progressed(&self) {
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // The other thread may store a stamp taken just before ours, after ours.
        self.latest.fetch_max(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let latest = Duration::from_nanos(self.latest.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(latest)
    }
}

/// One direction's reads or writes on the connection, retried through
/// socket timeouts while the exchange as a whole is still moving.
#[derive(Debug)]
pub(crate) struct Patience<'a> {
    connection: &'a Connection,
    direction: Direction,
    activity: &'a Activity,
    /// The socket's timeout for this direction, as the connection set it.
    timeout: Option<Duration>,
    /// Whether the socket's timeout is cut down to what was left of the
    /// quiet time at the last retry, and must be put back after progress.
    shortened: bool,
}

impl<'a> Patience<'a> {
    pub(crate) fn new(
        connection: &'a Connection,
        direction: Direction,
        activity: &'a Activity,
        timeout: Option<Duration>,
    ) -> Self {
        Patience {
            connection,
            direction,
            activity,
            timeout,
            shortened: false,
        }
    }

    /// The other direction's reads or writes on the same connection, within
    /// the same exchange: a reader that must send a few bytes of its own
    /// (a TLS close_notify) does so through this.
    pub(crate) fn other_way(&self) -> Patience<'a> {
        let direction = match self.direction {
            Direction::Send => Direction::Receive,
            Direction::Receive => Direction::Send,
        };
        Patience::new(self.connection, direction, self.activity, self.timeout)
    }

    /// Runs one read or write until it moves bytes (or reads the end), and
    /// records the progress; a socket timeout fails it only once nothing has
    /// moved either way for the whole timeout.
    pub(crate) fn attempt(
        &mut self,
        mut operation: impl FnMut(&Connection) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match operation(self.connection) {
                Ok(n) => {
                    self.activity.progressed();
                    if self.shortened {
                        self.connection.set_timeout(self.direction, self.timeout)?;
                        self.shortened = false;
                    }
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if crate::connection::is_timeout(&err) => {
                    let Some(timeout) = self.timeout else {
                        return Err(err);
                    };
                    let quiet = self.activity.quiet_for();
                    if quiet >= timeout {
                        return Err(err);
                    }
                    // Waiting a whole timeout again could let the exchange
                    // sit idle for nearly twice as long before giving up.
                    self.connection
                        .set_timeout(self.direction, Some(timeout - quiet))?;
                    self.shortened = true;
                }
                Err(err) => return Err(err),
            }
        }
    }
}
