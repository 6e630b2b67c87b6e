//! The counts of a run of probes and the spread of their round trips, as
//! ping's summary gives them.

use std::time::Duration;

use super::Event;

/// What a run of probes came to so far: each count is of events, as
/// [`Tally::record`] was given them.
///
/// A probe counts as sent once its fate is known (answered, failed or lost),
/// so a probe still in flight when a run is cut short is in no count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Probes whose fate is known.
    pub sent: u64,
    /// Probes answered exactly, once (duplicates and late replies aside).
    pub received: u64,
    /// Replies that differ from their probe, duplicates and late ones included.
    pub corrupt: u64,
    /// Probes that failed with an error (refused, reset, a stream gone quiet).
    pub errors: u64,
    /// Further replies to probes already answered.
    pub duplicates: u64,
    /// Replies that came after the reply to a later probe.
    pub reordered: u64,
    /// Replies that came after their probe had been counted lost.
    pub late: u64,
    /// Datagrams that were no probe of this run.
    pub stray: u64,
    /// The round trips of the probes in `received`.
    rtt: Sums,
}

/// Running sums from which the round-trip statistics follow.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    count: u64,
    /// In seconds; f64 keeps sub-microsecond precision for any realistic run.
    sum: f64,
    sum_of_squares: f64,
    min: Duration,
    max: Duration,
}

/// The spread of round trips, as ping reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rtt {
    /// The shortest.
    pub min: Duration,
    /// The mean.
    pub avg: Duration,
    /// The longest.
    pub max: Duration,
    /// The mean deviation as ping computes it: the population standard
    /// deviation, `sqrt(mean(rtt²) − mean(rtt)²)`.
    pub mdev: Duration,
}

impl Tally {
    /// Counts one event.
    pub fn record(&mut self, event: &Event) {
        let corrupt = event.is_corrupt();
        self.corrupt += u64::from(corrupt);
        match event {
            Event::Reply(reply) if reply.duplicate => self.duplicates += 1,
            // The probe was counted when it was given up on.
            Event::Reply(reply) if reply.late => self.late += 1,
            Event::Reply(reply) => {
                self.sent += 1;
                self.reordered += u64::from(reply.reordered);
                if !corrupt {
                    self.received += 1;
                    self.add_rtt(reply.rtt);
                }
            }
            Event::Failed { .. } => {
                self.sent += 1;
                // A reply too long to read is counted as corrupt, not as an error.
                self.errors += u64::from(!corrupt);
            }
            Event::Lost { .. } => self.sent += 1,
            Event::Stray { .. } => self.stray += 1,
        }
    }

    fn add_rtt(&mut self, rtt: Duration) {
        let sums = &mut self.rtt;
        if sums.count == 0 || rtt < sums.min {
            sums.min = rtt;
        }
        sums.max = sums.max.max(rtt);
        sums.count += 1;
        sums.sum += rtt.as_secs_f64();
        sums.sum_of_squares += rtt.as_secs_f64() * rtt.as_secs_f64();
    }

    /// Probes that did not come back exact: lost, failed or corrupt.
    pub fn lost(&self) -> u64 {
        self.sent - self.received
    }

    /// [`Tally::lost`] as a percentage of the probes sent; 0 when none was.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost() as f64 * 100.0 / self.sent as f64
        }
    }

    /// Whether the run went as an echo should: at least one probe, and every
    /// probe answered exactly once, byte for byte, with nothing else coming back.
    ///
    /// This is stricter than ping, which is content with any reply.
    pub fn all_exact(&self) -> bool {
        self.sent > 0
            && self.received == self.sent
            && self.corrupt == 0
            && self.duplicates == 0
            && self.stray == 0
    }

    /// The spread of the exact replies' round trips; `None` before the first.
    pub fn rtt(&self) -> Option<Rtt> {
        let sums = self.rtt;
        if sums.count == 0 {
            return None;
        }
        let n = sums.count as f64;
        let mean = sums.sum / n;
        // Rounding can take a tiny variance below zero.
        let variance = (sums.sum_of_squares / n - mean * mean).max(0.0);
        Some(Rtt {
            min: sums.min,
            avg: Duration::from_secs_f64(mean),
            max: sums.max,
            mdev: Duration::from_secs_f64(variance.sqrt()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::probe::Reply;
    use echo_proto::{Endpoint, Mismatch};

    fn reply(seq: u64, millis: u64) -> Reply {
        Reply {
            seq,
            from: Endpoint::Ip("127.0.0.1:7".parse().expect("literal")),
            bytes: 64,
            rtt: Duration::from_millis(millis),
            handshake: None,
            check: Ok(()),
            duplicate: false,
            reordered: false,
            late: false,
        }
    }

    #[test]
    fn a_clean_run_is_exact_with_pings_statistics() {
        let mut tally = Tally::default();
        for (seq, millis) in [(1, 1), (2, 2), (3, 3), (4, 4)] {
            tally.record(&Event::Reply(reply(seq, millis)));
        }
        assert_eq!((tally.sent, tally.received, tally.lost()), (4, 4, 0));
        assert_eq!(tally.loss_percent(), 0.0);
        assert!(tally.all_exact());
        let rtt = tally.rtt().expect("replies");
        assert_eq!(rtt.min, Duration::from_millis(1));
        assert_eq!(rtt.max, Duration::from_millis(4));
        assert!((rtt.avg.as_secs_f64() - 0.0025).abs() < 1e-9, "{rtt:?}");
        // sqrt(mean(1,4,9,16) - 2.5²) = sqrt(1.25) ms
        assert!(
            (rtt.mdev.as_secs_f64() - 1.25f64.sqrt() / 1000.0).abs() < 1e-9,
            "{rtt:?}"
        );
    }

    #[test]
    fn anything_but_one_exact_reply_per_probe_fails_the_run() {
        let lost = {
            let mut tally = Tally::default();
            tally.record(&Event::Reply(reply(1, 1)));
            tally.record(&Event::Lost {
                seq: 2,
                after: Duration::from_secs(1),
            });
            tally
        };
        assert_eq!((lost.sent, lost.received, lost.lost()), (2, 1, 1));
        assert_eq!(lost.loss_percent(), 50.0);
        assert!(!lost.all_exact());

        let mut duplicated = Tally::default();
        duplicated.record(&Event::Reply(reply(1, 1)));
        duplicated.record(&Event::Reply(Reply {
            duplicate: true,
            ..reply(1, 2)
        }));
        assert_eq!((duplicated.sent, duplicated.duplicates), (1, 1));
        assert!(!duplicated.all_exact());

        let mut corrupt = Tally::default();
        corrupt.record(&Event::Reply(Reply {
            check: Err(Mismatch {
                offset: 0,
                sent_len: 64,
                received_len: 64,
            }),
            ..reply(1, 1)
        }));
        assert_eq!((corrupt.sent, corrupt.received, corrupt.corrupt), (1, 0, 1));
        assert_eq!(corrupt.rtt(), None);
        assert!(!corrupt.all_exact());

        let mut stray = Tally::default();
        stray.record(&Event::Reply(reply(1, 1)));
        stray.record(&Event::Stray {
            from: "127.0.0.1:7".parse().expect("literal"),
            bytes: 3,
        });
        assert_eq!((stray.sent, stray.stray), (1, 1));
        assert!(!stray.all_exact());

        assert!(!Tally::default().all_exact(), "no probe is no success");
    }

    #[test]
    fn late_and_reordered_replies_are_counted_apart() {
        let mut tally = Tally::default();
        tally.record(&Event::Lost {
            seq: 1,
            after: Duration::from_secs(1),
        });
        tally.record(&Event::Reply(reply(2, 1)));
        tally.record(&Event::Reply(Reply {
            late: true,
            ..reply(1, 1500)
        }));
        tally.record(&Event::Reply(Reply {
            reordered: true,
            ..reply(3, 1)
        }));
        assert_eq!(
            (tally.sent, tally.received, tally.late, tally.reordered),
            (3, 2, 1, 1)
        );
        // The late reply's round trip is not among the received ones.
        assert_eq!(tally.rtt().expect("replies").max, Duration::from_millis(1));
    }

    #[test]
    fn errors_and_overlong_replies_are_told_apart() {
        let endpoint = Endpoint::Ip("127.0.0.1:7".parse().expect("literal"));
        let mut tally = Tally::default();
        tally.record(&Event::Failed {
            seq: 1,
            error: Error::Connect {
                endpoint: endpoint.clone(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            },
        });
        tally.record(&Event::Failed {
            seq: 2,
            error: Error::ReplyTooLong { endpoint, sent: 64 },
        });
        assert_eq!((tally.sent, tally.errors, tally.corrupt), (2, 1, 1));
        assert_eq!(tally.loss_percent(), 100.0);
    }
}
