//! Byte counts as flags spell them (`64`, `16KiB`, `1MiB`, `1GiB`) and as reports print them.

/// Why a text is not a byte count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The text is not a whole number followed by nothing or a known unit.
    #[error("invalid size '{text}': use bytes or a unit, as in 64, 16KiB, 1MiB or 1GiB")]
    Malformed {
        /// The text as given.
        text: String,
    },
    /// The number of bytes it says does not fit in 64 bits.
    #[error("invalid size '{text}': too large")]
    TooLarge {
        /// The text as given.
        text: String,
    },
}

/// Reads a byte count: a whole number, optionally followed by a unit.
///
/// `B` means bytes; `K`/`KiB`, `M`/`MiB`, `G`/`GiB` are powers of 1024;
/// `kB`/`KB`, `MB`, `GB` are powers of 1000. Units ignore case.
///
/// # Errors
/// A [`SizeError`] naming the text.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let invalid = || SizeError::Malformed {
        text: text.to_owned(),
    };
    let too_large = || SizeError::TooLarge {
        text: text.to_owned(),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    // Nothing but digits, so only their number can be wrong: too many of them.
    let number: u64 = digits.parse().map_err(|_| too_large())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(too_large)
}

/// Shows a byte count in the largest binary unit that keeps it readable:
/// `64 B`, `16 KiB`, `1.5 MiB`, `1 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, unit) in UNITS {
        if bytes >= unit {
            return if bytes % unit == 0 {
                format!("{} {name}", bytes / unit)
            } else {
                // Lossy only in the printed decimal, which is the point.
                #[allow(clippy::cast_precision_loss)]
                let value = bytes as f64 / unit as f64;
                format!("{value:.1} {name}")
            };
        }
    }
    format!("{bytes} B")
}

/// Writes a count with thousands separators, as `1,234,567`.
pub fn group_thousands(count: u64) -> String {
    let digits = count.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_every_documented_form() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("64B"), Ok(64));
        assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
        assert_eq!(parse_size("16k"), Ok(16 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("3kB"), Ok(3_000));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes_name_the_text() {
        for text in [
            "",
            "KiB",
            "1.5MiB",
            "-1",
            "12 parsecs",
            "99999999999999999999",
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(err.to_string().contains(&format!("'{text}'")), "{err}");
        }
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(SizeError::TooLarge { .. })
        ));
        assert_eq!(
            parse_size("99999999999G"),
            Err(SizeError::TooLarge {
                text: "99999999999G".into()
            })
        );
        assert_eq!(
            parse_size("12 parsecs").map_err(|err| err.to_string()),
            Err(
                "invalid size '12 parsecs': use bytes or a unit, as in 64, 16KiB, 1MiB or 1GiB"
                    .into()
            )
        );
    }

    #[test]
    fn sizes_print_in_the_largest_readable_unit() {
        assert_eq!(format_size(64), "64 B");
        assert_eq!(format_size(16 * 1024), "16 KiB");
        assert_eq!(format_size(3 << 19), "1.5 MiB");
        assert_eq!(format_size(1 << 30), "1 GiB");
        for size in [1, 1024, 16 * 1024, 1 << 20, 1 << 30] {
            let text = format_size(size).replace(' ', "");
            assert_eq!(parse_size(&text), Ok(size), "{text}");
        }
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
