//! Connecting to a host name with several addresses, in the manner of Happy
//! Eyeballs (RFC 8305): families interleaved, a new attempt every
//! [`ATTEMPT_DELAY`] while the earlier ones are still pending, the first
//! connection made wins, all within one timeout.
//!
//! Trying the addresses one after the other would let a single black-holed
//! address (a firewall that drops, an IPv6 route that goes nowhere) spend the
//! whole timeout before the address that works is even tried.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use tracing::debug;

/// How long an attempt may be pending before the next one starts beside it:
/// RFC 8305's recommended Connection Attempt Delay.
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// One address a connection was attempted to, and why it did not answer.
#[derive(Debug)]
pub struct Attempt {
    /// The address tried.
    pub addr: SocketAddr,
    /// What went wrong: the operating system's error, or a
    /// [`TimedOut`](io::ErrorKind::TimedOut) one when the timeout ran out
    /// while the attempt was pending, or before it could start.
    pub error: io::Error,
}

/// The attempts of a failed connection, one after the other on one line.
pub(crate) fn describe(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|attempt| format!("{}: {}", attempt.addr, attempt.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Asks the system's resolver for `host`'s addresses, giving up after
/// `timeout` (`None`: as long as the resolver takes), and returns them in the
/// order connections are attempted.
///
/// The lookup runs on a thread of its own, since `getaddrinfo` cannot be
/// bounded; when it takes too long, the thread is left to finish by itself.
pub(crate) fn resolve(
    host: &str,
    port: u16,
    timeout: Option<Duration>,
) -> io::Result<Vec<SocketAddr>> {
    let (done, lookup) = mpsc::sync_channel(1);
    let name = host.to_owned();
    thread::spawn(move || {
        let addresses = (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect::<Vec<_>>);
        // Nobody listens any more when the lookup took too long.
        let _ = done.send(addresses);
    });
    let addresses = match timeout {
        Some(after) => lookup.recv_timeout(after).map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer from the resolver within {}",
                    echo_proto::Human(after)
                ),
            )
        })?,
        None => lookup
            .recv()
            .map_err(|_| io::Error::other("the resolver thread panicked"))?,
    }?;
    let ordered = order(addresses);
    if ordered.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name has no addresses",
        ));
    }
    Ok(ordered)
}

/// The order of attempts: the resolver's order (which ranks addresses by
/// RFC 6724) within each family, the families alternating from the
/// resolver's first choice, duplicates dropped (RFC 8305, section 4).
pub(crate) fn order(addresses: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut unique = Vec::new();
    for addr in addresses {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    let Some(first) = unique.first().copied() else {
        return unique;
    };
    let (mut preferred, mut other): (Vec<_>, Vec<_>) = unique
        .into_iter()
        .partition(|addr| addr.is_ipv6() == first.is_ipv6());
    preferred.reverse();
    other.reverse();
    let mut ordered = Vec::with_capacity(preferred.len() + other.len());
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => return ordered,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
}

/// Connects to one of `addresses`, tried in order, a new attempt starting
/// when the previous one fails or after `delay`, whichever comes first;
/// returns the first connection made and its address. The whole race,
/// pending attempts included, ends after `timeout` (`None`: when every
/// attempt has failed by itself).
///
/// Attempts still pending when one wins are abandoned: each runs on a thread
/// of its own, bounded by what was left of the timeout when it started, and
/// closes its connection if it makes one after all.
///
/// # Errors
/// Every address's [`Attempt`], in order, when none could be connected to.
pub(crate) fn race<T, F>(
    addresses: &[SocketAddr],
    timeout: Option<Duration>,
    delay: Duration,
    connect: F,
) -> Result<(T, SocketAddr), Vec<Attempt>>
where
    T: Send + 'static,
    F: Fn(SocketAddr, Option<Duration>) -> io::Result<T> + Send + Sync + 'static,
{
    let connect = Arc::new(connect);
    let started = Instant::now();
    let deadline = timeout.map(|after| started + after);
    let (results, outcomes) = mpsc::channel();
    let mut failures: Vec<Option<io::Error>> = addresses.iter().map(|_| None).collect();
    let mut launched = 0;
    let mut failed = 0;
    let mut next_start = started;
    loop {
        let now = Instant::now();
        let left = deadline.map(|deadline| deadline.saturating_duration_since(now));
        if left.is_some_and(|left| left.is_zero()) {
            break;
        }
        if launched < addresses.len() && now >= next_start {
            let index = launched;
            let addr = addresses[index];
            let connect = Arc::clone(&connect);
            let results = results.clone();
            thread::spawn(move || {
                // Once the race is over, the receiver is gone and a late
                // connection is dropped here, which closes it.
                let _ = results.send((index, connect(addr, left)));
            });
            launched += 1;
            next_start = now + delay;
            continue;
        }
        if failed == addresses.len() {
            break;
        }
        let wake = [(launched < addresses.len()).then_some(next_start), deadline]
            .into_iter()
            .flatten()
            .min();
        let outcome = match wake {
            Some(wake) => match outcomes.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(outcome) => outcome,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match outcomes.recv() {
                Ok(outcome) => outcome,
                Err(_) => break,
            },
        };
        match outcome {
            (index, Ok(connection)) => return Ok((connection, addresses[index])),
            (index, Err(error)) => {
                debug!(address = %addresses[index], %error, "connection attempt failed");
                failures[index] = Some(error);
                failed += 1;
                // A failed attempt frees its turn at once (RFC 8305, section 5).
                next_start = Instant::now();
            }
        }
    }
    let after = timeout.unwrap_or_default();
    Err(addresses
        .iter()
        .zip(failures)
        .enumerate()
        .map(|(index, (&addr, failure))| {
            let error = failure.unwrap_or_else(|| {
                let what = if index < launched {
                    format!("no answer within {}", echo_proto::Human(after))
                } else {
                    format!(
                        "not tried: the {} timeout ran out first",
                        echo_proto::Human(after)
                    )
                };
                debug!(address = %addr, "connection attempt {what}");
                io::Error::new(io::ErrorKind::TimedOut, what)
            });
            Attempt { addr, error }
        })
        .collect())
}

/// One TCP connection attempt, bounded by `timeout` when there is one.
pub(crate) fn connect_tcp(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    match timeout {
        Some(timeout) => TcpStream::connect_timeout(&addr, timeout),
        None => TcpStream::connect(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// How long a fake black hole can hang, at most, should a test forget it.
    const WAIT_LIMIT: Duration = Duration::from_secs(60);

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test literal")
    }

    #[test]
    fn families_alternate_from_the_resolvers_first_choice() {
        let v6a = addr("[2001:db8::1]:7");
        let v6b = addr("[2001:db8::2]:7");
        let v6c = addr("[2001:db8::3]:7");
        let v4a = addr("192.0.2.1:7");
        let v4b = addr("192.0.2.2:7");
        assert_eq!(order([v6a, v6b, v6c, v4a, v4b]), [v6a, v4a, v6b, v4b, v6c]);
        assert_eq!(order([v4a, v6a, v6b, v4b]), [v4a, v6a, v4b, v6b]);
        assert_eq!(order([v4a, v4b]), [v4a, v4b]);
        assert_eq!(order([v6a, v4a, v6a, v4a]), [v6a, v4a]);
        assert_eq!(order([]), Vec::<SocketAddr>::new());
    }

    /// What a fake connection attempt does: succeed or fail at once, or
    /// hang like a black hole until its timeout (or the test) ends.
    #[derive(Clone, Copy)]
    enum Fake {
        Answers,
        Refuses,
        BlackHole,
    }

    /// Which fake won, and where it was, or every attempt.
    type Outcome = Result<(usize, SocketAddr), Vec<Attempt>>;

    /// A race over fake addresses; returns the outcome and the order and
    /// time (since the race began) at which the attempts started.
    fn run(
        fakes: &[Fake],
        timeout: Option<Duration>,
        delay: Duration,
    ) -> (Outcome, Vec<(usize, Duration)>) {
        let addresses: Vec<SocketAddr> = (0..fakes.len())
            .map(|i| SocketAddr::from(([192, 0, 2, i as u8 + 1], 7)))
            .collect();
        let started = Instant::now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&starts);
        let fakes = fakes.to_vec();
        let known = addresses.clone();
        // Black holes wait on this; dropping it at the end of the test frees them.
        let (_hold, held) = mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let outcome = race(&addresses, timeout, delay, move |addr, left| {
            let index = known.iter().position(|a| *a == addr).expect("known");
            recorded
                .lock()
                .expect("lock")
                .push((index, started.elapsed()));
            match fakes[index] {
                Fake::Answers => Ok(index),
                Fake::Refuses => Err(io::ErrorKind::ConnectionRefused.into()),
                Fake::BlackHole => {
                    // Past the race's own deadline, so that the race, not
                    // the attempt, is what gives up.
                    let _ = left;
                    let _ = held.lock().expect("lock").recv_timeout(WAIT_LIMIT);
                    Err(io::ErrorKind::TimedOut.into())
                }
            }
        });
        let starts = starts.lock().expect("lock").clone();
        (outcome, starts)
    }

    #[test]
    fn a_black_hole_costs_one_delay_not_the_timeout() {
        let (outcome, starts) = run(
            &[Fake::BlackHole, Fake::Answers],
            Some(Duration::from_secs(30)),
            ATTEMPT_DELAY,
        );
        let (winner, addr) = outcome.expect("the second address answers");
        assert_eq!(winner, 1);
        assert_eq!(addr, SocketAddr::from(([192, 0, 2, 2], 7)));
        assert_eq!(starts.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
        // A lower bound only: the second attempt waits its turn.
        assert!(starts[1].1 >= ATTEMPT_DELAY, "{starts:?}");
    }

    #[test]
    fn a_failure_starts_the_next_attempt_at_once() {
        // With an hour between attempts, only a failure can start the
        // second one before the timeout ends the race.
        let (outcome, starts) = run(
            &[Fake::Refuses, Fake::Answers],
            Some(Duration::from_secs(30)),
            Duration::from_secs(3600),
        );
        assert_eq!(outcome.expect("answered").0, 1);
        assert_eq!(starts.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn the_first_connection_made_wins() {
        let (outcome, starts) = run(
            &[Fake::Answers, Fake::Answers],
            Some(Duration::from_secs(30)),
            Duration::from_secs(3600),
        );
        assert_eq!(outcome.expect("answered").0, 0);
        assert_eq!(starts.len(), 1, "{starts:?}");
    }

    #[test]
    fn when_all_fail_each_attempt_is_reported_in_order() {
        let (outcome, _) = run(&[Fake::Refuses, Fake::Refuses], None, ATTEMPT_DELAY);
        let attempts = outcome.expect_err("all refuse");
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].addr, SocketAddr::from(([192, 0, 2, 1], 7)));
        assert!(
            attempts
                .iter()
                .all(|a| a.error.kind() == io::ErrorKind::ConnectionRefused)
        );
        let text = describe(&attempts);
        assert!(text.starts_with("192.0.2.1:7: "), "{text}");
        assert!(text.contains("; 192.0.2.2:7: "), "{text}");
    }

    #[test]
    fn one_timeout_bounds_the_whole_race() {
        let timeout = Duration::from_millis(300);
        let (outcome, starts) = run(
            &[Fake::BlackHole, Fake::BlackHole, Fake::BlackHole],
            Some(timeout),
            ATTEMPT_DELAY,
        );
        let attempts = outcome.expect_err("nothing answers");
        // Two attempts start within 300 ms; the third's turn never comes.
        assert_eq!(starts.len(), 2, "{starts:?}");
        assert!(
            attempts
                .iter()
                .all(|a| a.error.kind() == io::ErrorKind::TimedOut)
        );
        assert_eq!(attempts[0].error.to_string(), "no answer within 300ms");
        assert_eq!(
            attempts[2].error.to_string(),
            "not tried: the 300ms timeout ran out first"
        );
    }
}
