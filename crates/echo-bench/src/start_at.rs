//! `--start-at`: one instant, by the wall clock, at which generators on many
//! machines all begin their load, each having first resolved its target,
//! checked its plan and made its first connection.
//!
//! The instant is read as RFC 3339 (`2030-06-01T12:00:00Z`, or with an
//! offset, `2030-06-01T14:00:00+02:00`) or as Unix seconds (`1906545600`,
//! fractions allowed); one more than a day ahead is refused as a mistake,
//! since a generator would sit waiting for it. A generator ready only after
//! the instant would start out of step with the others: [`late_by`] says by
//! how much, for the command to refuse or, told so, go on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The furthest ahead a start may be.
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a text is not a start instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartAtError {
    /// Neither RFC 3339 nor Unix seconds.
    #[error(
        "invalid start time '{text}': use RFC 3339, as 2030-06-01T12:00:00Z or \
         2030-06-01T14:00:00+02:00, or Unix seconds, as 1906545600"
    )]
    Invalid {
        /// The text as given.
        text: String,
    },
    /// An instant more than [`MAX_AHEAD`] from now.
    #[error(
        "start time '{text}' is {} ahead, more than a day: pick an instant a little \
         after every generator will be ready",
        echo_proto::Human(*.ahead)
    )]
    TooFar {
        /// The text as given.
        text: String,
        /// How far ahead of now it is.
        ahead: Duration,
    },
}

/// Reads a start instant no more than [`MAX_AHEAD`] after `now`.
///
/// # Errors
/// [`StartAtError`] naming the text.
pub fn parse_start_at(text: &str, now: SystemTime) -> Result<SystemTime, StartAtError> {
    let instant = instant(text.trim()).ok_or_else(|| StartAtError::Invalid {
        text: text.to_owned(),
    })?;
    match instant.duration_since(now) {
        Ok(ahead) if ahead > MAX_AHEAD => Err(StartAtError::TooFar {
            text: text.to_owned(),
            ahead,
        }),
        _ => Ok(instant),
    }
}

/// `text` as Unix seconds or RFC 3339; `None` if it is neither.
fn instant(text: &str) -> Option<SystemTime> {
    if let Some(seconds) = unix_seconds(text) {
        return UNIX_EPOCH.checked_add(seconds);
    }
    // humantime reads RFC 3339 in UTC only: an offset is taken off first
    // and applied after.
    let zoned = text
        .len()
        .checked_sub(6)
        .and_then(|at| Some((text.get(..at)?, text.get(at..)?)));
    let (local, offset) = match zoned {
        Some((local, zone)) if zone.starts_with(['+', '-']) && zone.as_bytes()[3] == b':' => {
            let hours: u64 = zone.get(1..3)?.parse().ok()?;
            let minutes: u64 = zone.get(4..6)?.parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = Duration::from_secs(hours * 3600 + minutes * 60);
            (local, Some((zone.starts_with('+'), offset)))
        }
        _ => (text.strip_suffix(['Z', 'z'])?, None),
    };
    let utc = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    match offset {
        // 14:00+02:00 is 12:00Z: east of Greenwich, the offset comes off.
        Some((true, offset)) => utc.checked_sub(offset),
        Some((false, offset)) => utc.checked_add(offset),
        None => Some(utc),
    }
}

/// `text` as Unix seconds, `SECONDS[.FRACTION]`, read as decimals so that
/// `1906545600.1` is exactly a tenth past (digits past the nanosecond are dropped).
fn unix_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let nanos: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    Some(Duration::new(whole.parse().ok()?, nanos.parse().ok()?))
}

/// How long after `start` the generator was `ready`; `None` if it was
/// ready in time.
pub fn late_by(start: SystemTime, ready: SystemTime) -> Option<Duration> {
    ready
        .duration_since(start)
        .ok()
        .filter(|late| !late.is_zero())
}

/// `instant` as people read it, in RFC 3339 and UTC, with a fraction only where it has one.
pub fn show(instant: SystemTime) -> String {
    humantime::format_rfc3339(instant).to_string()
}

/// Waits until the wall clock reads `start`; at once if it is past.
///
/// The wait is on tokio's timer, which follows the monotonic clock; should
/// the wall clock be set meanwhile, the wait is taken up again for what is left.
pub async fn wait_until(start: SystemTime) {
    while let Ok(left) = start.duration_since(SystemTime::now()) {
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn instants_read_as_rfc_3339_or_unix_seconds() {
        let now = at(1_906_540_000);
        let noon = at(1_906_545_600);
        for text in [
            "1906545600",
            " 1906545600 ",
            "2030-06-01T12:00:00Z",
            "2030-06-01T12:00:00z",
            "2030-06-01T14:00:00+02:00",
            "2030-06-01T08:30:00-03:30",
        ] {
            assert_eq!(parse_start_at(text, now), Ok(noon), "{text}");
        }
        assert_eq!(
            parse_start_at("1906545600.25", now),
            Ok(noon + Duration::from_millis(250))
        );
        assert_eq!(
            parse_start_at("1906545600.123", now),
            Ok(noon + Duration::from_millis(123)),
            "exactly, as decimals"
        );
        assert_eq!(
            parse_start_at("1906545600.1234567891", now),
            Ok(noon + Duration::from_nanos(123_456_789))
        );
        assert_eq!(
            parse_start_at("2030-06-01T12:00:00.5Z", now),
            Ok(noon + Duration::from_millis(500))
        );
        assert_eq!(show(noon), "2030-06-01T12:00:00Z");
        assert_eq!(
            show(noon + Duration::from_millis(500)),
            "2030-06-01T12:00:00.500000000Z"
        );
        // Past instants read: whether they are late is for when the generator is ready.
        assert_eq!(parse_start_at("1000000000", now), Ok(at(1_000_000_000)));
    }

    #[test]
    fn nonsense_and_far_futures_are_refused_naming_the_text() {
        let now = at(1_906_540_000);
        for text in [
            "",
            "noon",
            "-5",
            "1e9",
            "1.2.3",
            ".5",
            "2030-06-01",
            "2030-06-01T12:00:00",
            "2030-06-01T12:00:00+2:00",
            "2030-06-01T12:00:00+24:00",
            "2030-13-01T12:00:00Z",
            "in 5 minutes",
            "2030-06-01T12:00:00€€",
        ] {
            let error = parse_start_at(text, now).expect_err(text);
            assert_eq!(
                error,
                StartAtError::Invalid {
                    text: text.to_owned()
                }
            );
            assert!(error.to_string().contains(&format!("'{text}'")), "{error}");
        }
        let tomorrow = now + MAX_AHEAD + Duration::from_secs(1);
        let text = tomorrow
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs()
            .to_string();
        let error = parse_start_at(&text, now).expect_err("too far");
        assert_eq!(
            error.to_string(),
            format!(
                "start time '{text}' is 1day1s ahead, more than a day: pick an instant a \
                 little after every generator will be ready"
            )
        );
        assert!(
            parse_start_at(&text, now + Duration::from_secs(1)).is_ok(),
            "exactly a day"
        );
    }

    #[test]
    fn lateness_is_how_long_after_the_start_the_generator_was_ready() {
        let start = at(1_906_545_600);
        assert_eq!(late_by(start, start - Duration::from_secs(3)), None);
        assert_eq!(late_by(start, start), None);
        assert_eq!(
            late_by(start, start + Duration::from_millis(3200)),
            Some(Duration::from_millis(3200))
        );
    }

    #[tokio::test]
    async fn the_wait_ends_at_the_instant_and_not_before() {
        let start = SystemTime::now() + Duration::from_millis(150);
        wait_until(start).await;
        assert!(SystemTime::now() >= start);
        let before = std::time::Instant::now();
        wait_until(at(1_000_000_000)).await;
        assert!(
            before.elapsed() < Duration::from_secs(1),
            "a past instant is no wait"
        );
    }
}
