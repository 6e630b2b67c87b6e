//! Payloads to send and the check that a reply is the payload, byte for byte.

/// Where a reply first departs from what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Mismatch {
    /// Offset of the first byte that differs, or the length of the shorter side
    /// when one is a prefix of the other.
    pub offset: usize,
    /// How many bytes were sent.
    pub sent_len: usize,
    /// How many bytes came back.
    pub received_len: usize,
}

impl Mismatch {
    /// The message: a length difference when one side is a prefix of the
    /// other, else the offset of the first differing byte.
    fn describe(&self) -> String {
        if self.offset == self.sent_len.min(self.received_len) {
            format!(
                "reply is {} bytes long but {} were sent",
                self.received_len, self.sent_len
            )
        } else {
            format!(
                "reply differs from what was sent at byte {} (sent {} bytes, received {})",
                self.offset, self.sent_len, self.received_len
            )
        }
    }
}

/// Checks that `received` is exactly `sent`.
///
/// # Errors
/// Returns the [`Mismatch`] locating the first differing byte, or the length
/// difference when one side is a prefix of the other.
pub fn verify(sent: &[u8], received: &[u8]) -> Result<(), Mismatch> {
    if sent == received {
        return Ok(());
    }
    let offset = sent
        .iter()
        .zip(received)
        .position(|(a, b)| a != b)
        .unwrap_or(sent.len().min(received.len()));
    Err(Mismatch {
        offset,
        sent_len: sent.len(),
        received_len: received.len(),
    })
}

/// Fills a buffer of `len` bytes that is the same for the same `seed` and
/// differs from one seed to the next.
///
/// Test and benchmark payloads come from here so that a reply mixed up with
/// another connection's, or shifted by a lost byte, fails [`verify`]: the bytes
/// follow a 64-bit xorshift stream, which repeats no short period.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    // Xorshift must not start from zero, or it stays there.
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_payloads_verify() {
        assert_eq!(verify(b"", b""), Ok(()));
        assert_eq!(verify(b"hello", b"hello"), Ok(()));
    }

    #[test]
    fn a_changed_byte_is_located() {
        let err = verify(b"hello", b"hellO").expect_err("differs");
        assert_eq!(
            err,
            Mismatch {
                offset: 4,
                sent_len: 5,
                received_len: 5
            }
        );
        assert!(err.to_string().contains("at byte 4"), "{err}");
    }

    #[test]
    fn a_short_or_long_reply_is_reported_by_length() {
        let short = verify(b"hello", b"hel").expect_err("short");
        assert_eq!(short.offset, 3);
        assert_eq!(short.to_string(), "reply is 3 bytes long but 5 were sent");
        let long = verify(b"", b"x").expect_err("long");
        assert_eq!(long.offset, 0);
        assert_eq!(long.to_string(), "reply is 1 bytes long but 0 were sent");
    }

    #[test]
    fn patterns_are_deterministic_and_seed_dependent() {
        assert_eq!(pattern(1, 1000), pattern(1, 1000));
        assert_ne!(pattern(1, 64), pattern(2, 64));
        assert_eq!(pattern(7, 0), Vec::<u8>::new());
        assert_eq!(pattern(7, 13).len(), 13);
        // A prefix of a longer pattern is the shorter pattern.
        assert_eq!(pattern(3, 100)[..37], pattern(3, 37)[..]);
    }

    proptest! {
        #[test]
        fn verify_agrees_with_equality(a in proptest::collection::vec(any::<u8>(), 0..64),
                                       b in proptest::collection::vec(any::<u8>(), 0..64)) {
            match verify(&a, &b) {
                Ok(()) => prop_assert_eq!(&a, &b),
                Err(m) => {
                    prop_assert_ne!(&a, &b);
                    prop_assert_eq!(&a[..m.offset], &b[..m.offset]);
                    prop_assert!(m.offset == a.len() || m.offset == b.len() || a[m.offset] != b[m.offset]);
                }
            }
        }
    }
}
