//! Payloads too long to hold whole, and datagrams that say which send they answer,
//! each with the byte-for-byte check of what comes back.

use std::collections::VecDeque;

use echo_proto::{Mismatch, pattern, verify};

/// Length of the block a [`Stream`] repeats.
///
/// A whole pattern of a gigabyte stream would cost a gigabyte; a repeated
/// block costs one. It is a little over 1 MiB and odd, so it never lines up
/// with power-of-two chunk sizes: a chunk delivered twice, or skipped, lands
/// on different bytes of the block and fails the check.
pub const BLOCK_LEN: usize = (1 << 20) + 13;

/// A long byte stream: one pseudo-random block, repeated.
#[derive(Debug)]
pub struct Stream {
    block: Vec<u8>,
}

impl Stream {
    /// The stream for `seed`; different seeds give different streams.
    pub fn new(seed: u64) -> Self {
        Stream {
            block: pattern(seed, BLOCK_LEN),
        }
    }

    /// The stream's bytes from `offset`, at most `max` of them: fewer when the
    /// block wraps around, never none unless `max` is 0.
    pub fn chunk(&self, offset: u64, max: usize) -> &[u8] {
        let start = self.position(offset);
        let end = start + max.min(self.block.len() - start);
        &self.block[start..end]
    }

    /// Checks that `received` is the stream's bytes from `offset`.
    ///
    /// # Errors
    /// The offset, counted from the start of the stream, of the first byte
    /// that differs.
    pub fn check(&self, offset: u64, received: &[u8]) -> Result<(), u64> {
        let mut checked = 0;
        while checked < received.len() {
            let expected = self.chunk(offset + checked as u64, received.len() - checked);
            let piece = &received[checked..checked + expected.len()];
            if let Err(mismatch) = verify(expected, piece) {
                return Err(offset + (checked + mismatch.offset) as u64);
            }
            checked += expected.len();
        }
        Ok(())
    }

    fn position(&self, offset: u64) -> usize {
        // The remainder is below BLOCK_LEN, so it fits.
        usize::try_from(offset % self.block.len() as u64).unwrap_or(0)
    }
}

/// Bytes at the start of every datagram that carry its sequence number.
pub const SEQUENCE_LEN: usize = 8;

/// How many datagrams given up without a reply one worker remembers, so that
/// a late reply to one is told apart from a second reply to one answered;
/// a reply to a datagram older than those is taken as late, as it may be.
/// It bounds the memory of a long run against a server that answers little.
pub const UNANSWERED_REMEMBERED: usize = 4096;

/// How a datagram received relates to the one last sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// It is the reply to the datagram last sent, intact.
    Current,
    /// It is the intact reply to an earlier datagram, already given up as lost.
    Late,
    /// It is an intact reply to the datagram of this sequence number, which
    /// had its reply already: the server answered it more than once.
    Duplicate(u64),
    /// It is neither: where it departs from the datagram last sent.
    Corrupt(Mismatch),
}

/// Datagrams of one worker: a fixed body behind a changing sequence number,
/// so a late reply is told apart from a corrupt one; and which of them had
/// no reply, so a late reply is told apart from a second one.
#[derive(Debug)]
pub struct Datagrams {
    current: Vec<u8>,
    sequence: u64,
    /// Whether the datagram last sent has had its reply.
    answered: bool,
    /// Sequence numbers of datagrams sent and left without a reply, oldest
    /// first (so sorted), at most [`UNANSWERED_REMEMBERED`] of them.
    unanswered: VecDeque<u64>,
    /// Sequence numbers below this one are no longer remembered either way.
    forgotten_below: u64,
}

impl Datagrams {
    /// Datagrams of `len` bytes (at least [`SEQUENCE_LEN`]) with a body from `seed`.
    pub fn new(seed: u64, len: usize) -> Self {
        Datagrams {
            current: pattern(seed, len.max(SEQUENCE_LEN)),
            sequence: 0,
            answered: false,
            unanswered: VecDeque::new(),
            forgotten_below: 1,
        }
    }

    /// The next datagram to send; the one before it, if it had no reply, is
    /// remembered as given up.
    pub fn next(&mut self) -> &[u8] {
        if self.sequence > 0 && !self.answered {
            self.unanswered.push_back(self.sequence);
            if self.unanswered.len() > UNANSWERED_REMEMBERED {
                // Past the limit the queue has a front, and it is the oldest.
                self.forgotten_below = self
                    .unanswered
                    .pop_front()
                    .map_or(self.forgotten_below, |oldest| oldest + 1);
            }
        }
        self.sequence += 1;
        self.answered = false;
        self.current[..SEQUENCE_LEN].copy_from_slice(&self.sequence.to_le_bytes());
        &self.current
    }

    /// Judges a received datagram against the one last returned by
    /// [`Datagrams::next`] and those before it, and notes a reply as had.
    pub fn judge(&mut self, received: &[u8]) -> Reply {
        let body_intact = received.len() == self.current.len()
            && received[SEQUENCE_LEN..] == self.current[SEQUENCE_LEN..];
        let mut sequence_bytes = [0u8; SEQUENCE_LEN];
        if received.len() >= SEQUENCE_LEN {
            sequence_bytes.copy_from_slice(&received[..SEQUENCE_LEN]);
        }
        let sequence = u64::from_le_bytes(sequence_bytes);
        if body_intact && sequence == self.sequence {
            if self.answered {
                Reply::Duplicate(sequence)
            } else {
                self.answered = true;
                Reply::Current
            }
        } else if body_intact && (1..self.sequence).contains(&sequence) {
            if sequence < self.forgotten_below {
                return Reply::Late;
            }
            match self.unanswered.binary_search(&sequence) {
                // Its first reply, come late; any other after it is a duplicate.
                Ok(index) => {
                    self.unanswered.remove(index);
                    Reply::Late
                }
                Err(_) => Reply::Duplicate(sequence),
            }
        } else {
            match verify(&self.current, received) {
                Err(mismatch) => Reply::Corrupt(mismatch),
                // Unreachable in practice: an identical datagram is Current.
                Ok(()) => Reply::Current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_wrap_around_the_block() {
        let stream = Stream::new(1);
        let near_end = (BLOCK_LEN - 10) as u64;
        assert_eq!(stream.chunk(near_end, 64).len(), 10);
        assert_eq!(stream.chunk(near_end + 10, 64), &pattern(1, 64)[..]);
        assert_eq!(
            stream.chunk(BLOCK_LEN as u64 * 3 + 5, 4),
            &pattern(1, 9)[5..]
        );
        assert!(stream.chunk(0, 0).is_empty());
    }

    #[test]
    fn an_intact_stream_checks_across_the_wrap() {
        let stream = Stream::new(2);
        let start = (BLOCK_LEN - 100) as u64;
        let mut bytes = Vec::new();
        while bytes.len() < 300 {
            let offset = start + bytes.len() as u64;
            bytes.extend_from_slice(stream.chunk(offset, 300 - bytes.len()));
        }
        assert_eq!(stream.check(start, &bytes), Ok(()));
        assert_eq!(stream.check(start + 7, &bytes[7..]), Ok(()));
    }

    #[test]
    fn a_flipped_or_shifted_byte_is_located_in_stream_offsets() {
        let stream = Stream::new(3);
        let mut bytes = stream.chunk(1000, 500).to_vec();
        bytes[123] ^= 1;
        assert_eq!(stream.check(1000, &bytes), Err(1123));
        let shifted = stream.chunk(1001, 500);
        assert!(
            stream.check(1000, shifted).is_err(),
            "a lost byte shifts everything"
        );
        let other = Stream::new(4);
        assert!(
            stream.check(0, other.chunk(0, 64)).is_err(),
            "another seed's stream"
        );
    }

    #[test]
    fn datagrams_tell_current_late_and_corrupt_replies_apart() {
        let mut datagrams = Datagrams::new(9, 64);
        let first = datagrams.next().to_vec();
        // The first is given up without a reply.
        let second = datagrams.next().to_vec();
        assert_ne!(first, second);
        assert_eq!(datagrams.judge(&second), Reply::Current);
        assert_eq!(datagrams.judge(&first), Reply::Late);

        let mut flipped = second.clone();
        flipped[40] ^= 0x80;
        assert!(matches!(datagrams.judge(&flipped), Reply::Corrupt(m) if m.offset == 40));
        let mut future = second.clone();
        future[..SEQUENCE_LEN].copy_from_slice(&99u64.to_le_bytes());
        assert!(matches!(datagrams.judge(&future), Reply::Corrupt(_)));
        assert!(matches!(datagrams.judge(&second[..10]), Reply::Corrupt(_)));
        assert!(matches!(datagrams.judge(&[]), Reply::Corrupt(_)));
        let mut stale_corrupt = first.clone();
        stale_corrupt[20] ^= 1;
        assert!(matches!(datagrams.judge(&stale_corrupt), Reply::Corrupt(_)));
    }

    #[test]
    fn a_second_reply_to_an_answered_datagram_is_a_duplicate() {
        let mut datagrams = Datagrams::new(9, 64);
        let first = datagrams.next().to_vec();
        assert_eq!(datagrams.judge(&first), Reply::Current);
        assert_eq!(datagrams.judge(&first), Reply::Duplicate(1));
        let second = datagrams.next().to_vec();
        assert_eq!(datagrams.judge(&first), Reply::Duplicate(1));
        assert_eq!(datagrams.judge(&second), Reply::Current);
        // The third is given up, then answered late, then answered again.
        let third = datagrams.next().to_vec();
        let fourth = datagrams.next().to_vec();
        assert_eq!(datagrams.judge(&third), Reply::Late);
        assert_eq!(datagrams.judge(&third), Reply::Duplicate(3));
        assert_eq!(datagrams.judge(&fourth), Reply::Current);
        assert_eq!(datagrams.judge(&second), Reply::Duplicate(2));
    }

    #[test]
    fn only_so_many_unanswered_datagrams_are_remembered() {
        let mut datagrams = Datagrams::new(9, 64);
        let first = datagrams.next().to_vec();
        let mut latest = first.clone();
        for _ in 0..UNANSWERED_REMEMBERED + 1 {
            latest = datagrams.next().to_vec();
        }
        assert_eq!(datagrams.unanswered.len(), UNANSWERED_REMEMBERED);
        // Forgotten: taken as late, every time, rather than wrongly as a duplicate.
        assert_eq!(datagrams.judge(&first), Reply::Late);
        assert_eq!(datagrams.judge(&first), Reply::Late);
        let mut second = first.clone();
        second[..SEQUENCE_LEN].copy_from_slice(&2u64.to_le_bytes());
        assert_eq!(datagrams.judge(&second), Reply::Late);
        assert_eq!(datagrams.judge(&second), Reply::Duplicate(2));
        assert_eq!(datagrams.judge(&latest), Reply::Current);
    }
}
