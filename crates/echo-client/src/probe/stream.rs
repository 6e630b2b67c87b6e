//! Stream probes, one at a time: a whole exchange on a new connection each,
//! or one message each on a connection kept from probe to probe, in the
//! clear or over TLS.

use std::io;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use echo_proto::{Endpoint, verify};

use super::{Event, Reply, Transport};
use crate::activity::{Activity, Patience};
use crate::connection::{Connection, Direction};
use crate::exchange::write_all;
use crate::tls::session::Inbound;
use crate::{Client, Error, Opened, exchange_error, io_error};

/// The stream side of a run of probes.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    client: &'a Client,
    transport: Transport,
    /// The connection persistent probes share, made at the first probe
    /// and dropped after any failure, for the next probe to make anew.
    link: Option<Link>,
}

impl<'a> Session<'a> {
    /// A session whose first persistent probe goes over `opened`, when given.
    pub(crate) fn new(client: &'a Client, transport: Transport, opened: Option<Opened>) -> Self {
        Session {
            client,
            transport,
            link: opened.and_then(|opened| Link::over(opened, client.timeout).ok()),
        }
    }

    /// Sends probe `seq` with `payload`, waits for its reply, and says how it went.
    pub(crate) fn probe(&mut self, seq: u64, payload: &[u8]) -> Event {
        match self.transport {
            Transport::Persistent => self.probe_persistent(seq, payload),
            // Udp never reaches a stream session.
            Transport::Connect | Transport::Udp => {
                let started = Instant::now();
                match self.client.echo_from(payload) {
                    Ok(echoed) => Event::Reply(Reply {
                        seq,
                        from: echoed.peer,
                        bytes: echoed.reply.len(),
                        rtt: started.elapsed(),
                        handshake: echoed.handshake,
                        check: verify(payload, &echoed.reply),
                        duplicate: false,
                        reordered: false,
                        late: false,
                    }),
                    Err(error) => Event::Failed { seq, error },
                }
            }
        }
    }

    fn probe_persistent(&mut self, seq: u64, payload: &[u8]) -> Event {
        let mut link = match self.link.take() {
            Some(link) => link,
            None => match Link::open(self.client) {
                Ok(link) => link,
                Err(error) => return Event::Failed { seq, error },
            },
        };
        let timeout = self.client.timeout;
        // Copied for the writer thread before the clock starts, so a large
        // probe's copy is not counted as round-trip time.
        let job: Arc<[u8]> = payload.into();
        let started = Instant::now();
        match link.exchange(job, timeout) {
            Ok(reply) => {
                let rtt = started.elapsed();
                let check = verify(payload, &reply);
                let from = link.peer.clone();
                let handshake = link.handshake.take();
                // A corrupt reply may have been short or long by some bytes
                // that the next probe would then read as its own.
                if check.is_ok() {
                    self.link = Some(link);
                } else {
                    link.connection.shutdown_both();
                }
                Event::Reply(Reply {
                    seq,
                    from,
                    bytes: reply.len(),
                    rtt,
                    handshake,
                    check,
                    duplicate: false,
                    reordered: false,
                    late: false,
                })
            }
            Err(error) => {
                link.connection.shutdown_both();
                Event::Failed { seq, error }
            }
        }
    }
}

/// A connection kept for a run, with a writer thread of its own: the
/// caller's thread reads the reply while the writer sends the probe, or a
/// probe larger than the socket buffers would stall both sides.
///
/// Over TLS the two share the session as a whole exchange's do; no
/// close_notify is ever due, since the message never ends.
#[derive(Debug)]
struct Link {
    connection: Connection,
    peer: Endpoint,
    /// The reader's side of the TLS session, over TLS.
    inbound: Option<Inbound>,
    /// How long the TLS handshake took, until the first probe reports it.
    handshake: Option<Duration>,
    /// Probes for the writer; dropping it ends the writer thread.
    jobs: mpsc::Sender<Job>,
    /// The writer's outcome for each probe, in order.
    written: mpsc::Receiver<io::Result<()>>,
}

/// One probe for the writer, with the exchange's shared activity.
#[derive(Debug)]
struct Job {
    payload: Arc<[u8]>,
    activity: Arc<Activity>,
}

impl Link {
    fn open(client: &Client) -> Result<Link, Error> {
        Link::over(client.open()?, client.timeout)
    }

    /// A link over a connection already made (and its handshake, over TLS).
    fn over(opened: Opened, timeout: Option<Duration>) -> Result<Link, Error> {
        let Opened {
            connection,
            peer,
            tls,
        } = opened;
        let writer_side = connection
            .try_clone()
            .map_err(|source| io_error(&peer, timeout, source))?;
        let handshake = tls.as_ref().map(|secured| secured.handshake);
        let session = tls.map(|secured| secured.session);
        let inbound = session.clone().map(Inbound::new);
        let (jobs, queue) = mpsc::channel::<Job>();
        let (report, written) = mpsc::channel();
        thread::spawn(move || {
            for job in queue {
                let mut writer =
                    Patience::new(&writer_side, Direction::Send, &job.activity, timeout);
                let result = match &session {
                    Some(session) => session.write_all(&mut writer, &job.payload),
                    None => write_all(&mut writer, &job.payload),
                };
                let failed = result.is_err();
                if report.send(result).is_err() || failed {
                    // The reader sees the connection go, if it has not already.
                    writer_side.shutdown_both();
                    return;
                }
            }
        });
        Ok(Link {
            connection,
            peer,
            inbound,
            handshake,
            jobs,
            written,
        })
    }

    /// Writes `payload` (on the writer thread) and reads back exactly its
    /// length, through the one inactivity timeout.
    fn exchange(
        &mut self,
        payload: Arc<[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, Error> {
        let activity = Arc::new(Activity::new());
        let writer_gone = || {
            io_error(
                &self.peer,
                timeout,
                io::Error::other("the writer thread ended"),
            )
        };
        let len = payload.len();
        self.jobs
            .send(Job {
                payload,
                activity: Arc::clone(&activity),
            })
            .map_err(|_| writer_gone())?;
        let mut reader = Patience::new(&self.connection, Direction::Receive, &activity, timeout);
        let mut reply = vec![0u8; len];
        let mut filled = 0;
        while filled < reply.len() {
            let read = match &mut self.inbound {
                Some(inbound) => inbound
                    .read(&mut reader, &mut reply[filled..])
                    .map_err(|failure| exchange_error(&self.peer, timeout, failure)),
                None => reader
                    .attempt(|connection| connection.read_some(&mut reply[filled..]))
                    .map_err(|source| io_error(&self.peer, timeout, source)),
            };
            match read {
                Ok(0) => {
                    return Err(io_error(
                        &self.peer,
                        timeout,
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the server closed the connection after {filled} of {} bytes",
                                reply.len()
                            ),
                        ),
                    ));
                }
                Ok(n) => filled += n,
                Err(error) => return Err(error),
            }
        }
        // With the whole reply back, an echo server has read the whole probe
        // and the writer has reported or is about to; a server that answers
        // without reading holds the writer until its write times out.
        match self.written.recv() {
            Ok(Ok(())) => Ok(reply),
            Ok(Err(source)) => Err(io_error(&self.peer, timeout, source)),
            Err(_) => Err(writer_gone()),
        }
    }
}
