//! What the load cost the server in CPU time, per exchange and per GiB, to no
//! more digits than the kernel's clock ticks can carry; and what it cost the
//! load generator itself, which on a machine it shares with the server is
//! often what sets the rate.
//!
//! The kernel counts a process's CPU time in whole ticks (10 ms on Linux,
//! whatever the scheduler's own frequency), so a run that cost the server
//! 1.21 s is known to ±0.01 s, ±0.8%: a figure per exchange derived from it
//! has two or three meaningful digits, and fewer for shorter runs.

use std::time::Duration;

/// The fewest ticks a measurement needs before figures are derived from it:
/// below that, one tick is more than a tenth of the whole.
pub const MIN_TICKS: u32 = 10;

/// Bytes in a GiB, the unit of the per-volume figure.
const GIB: f64 = (1u64 << 30) as f64;

/// The server's CPU time (user and system) over the load, and the tick it was counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerCpu {
    /// The CPU time the server used between the readings before and after the load.
    pub used: Duration,
    /// The kernel's clock tick, the resolution of `used`.
    pub tick: Duration,
}

impl ServerCpu {
    /// One tick over the time measured, as a fraction; `None` when nothing was measured.
    pub fn resolution(&self) -> Option<f64> {
        (!self.used.is_zero()).then(|| self.tick.as_secs_f64() / self.used.as_secs_f64())
    }

    /// Whether the time measured is long enough, at least [`MIN_TICKS`]
    /// ticks, for figures derived from it to mean anything.
    pub fn measurable(&self) -> bool {
        !self.tick.is_zero() && self.used >= self.tick * MIN_TICKS
    }

    /// Microseconds of server CPU per exchange, rounded to what the
    /// resolution allows; `None` when not [`measurable`](Self::measurable)
    /// or with no exchange.
    pub fn per_exchange_us(&self, exchanges: u64) -> Option<f64> {
        if exchanges == 0 {
            return None;
        }
        self.derived(self.used.as_secs_f64() * 1e6 / exchanges as f64)
    }

    /// Seconds of server CPU per GiB echoed, rounded to what the resolution
    /// allows; `None` when not [`measurable`](Self::measurable) or with no bytes.
    pub fn per_gib_s(&self, bytes: u64) -> Option<f64> {
        if bytes == 0 {
            return None;
        }
        self.derived(self.used.as_secs_f64() / (bytes as f64 / GIB))
    }

    fn derived(&self, value: f64) -> Option<f64> {
        if !self.measurable() {
            return None;
        }
        let resolution = self.resolution()?;
        Some(round(value, decimals(value, resolution)))
    }
}

/// The load generator's own CPU time over the load (all its threads, user
/// and system).
///
/// It is read to the microsecond, so its figures are limited by the run's
/// noise rather than a clock, and are given to three significant digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCpu {
    /// The CPU time used between the readings before and after the load.
    pub used: Duration,
}

impl ClientCpu {
    /// Microseconds of the client's CPU per exchange; `None` with no exchange.
    pub fn per_exchange_us(&self, exchanges: u64) -> Option<f64> {
        (exchanges > 0).then(|| significant(self.used.as_secs_f64() * 1e6 / exchanges as f64))
    }

    /// Seconds of the client's CPU per GiB echoed; `None` with no bytes.
    pub fn per_gib_s(&self, bytes: u64) -> Option<f64> {
        (bytes > 0).then(|| significant(self.used.as_secs_f64() / (bytes as f64 / GIB)))
    }

    /// How many cores the client kept busy on average over `elapsed`.
    pub fn cores(&self, elapsed: Duration) -> Option<f64> {
        (!elapsed.is_zero()).then(|| round(self.used.as_secs_f64() / elapsed.as_secs_f64(), 2))
    }
}

/// `value` to three significant digits.
fn significant(value: f64) -> f64 {
    if !value.is_normal() {
        return value;
    }
    round(value, 2 - value.abs().log10().floor() as i32)
}

/// The decimals worth printing of `value` known to a relative `resolution`:
/// down to the place of the uncertainty's leading digit, so that
/// 3.6234 ± 0.8% (± 0.029) shows as 3.62. Negative counts round to tens,
/// hundreds and on.
pub fn decimals(value: f64, resolution: f64) -> i32 {
    let uncertainty = (value * resolution).abs();
    if !uncertainty.is_normal() {
        return 0;
    }
    -(uncertainty.log10().floor() as i32)
}

/// `value` rounded to `decimals` places (to tens for -1, and so on).
pub fn round(value: f64, decimals: i32) -> f64 {
    if decimals >= 0 {
        let scale = 10f64.powi(decimals);
        (value * scale).round() / scale
    } else {
        let scale = 10f64.powi(-decimals);
        (value / scale).round() * scale
    }
}

/// `value` written with exactly the decimals its `resolution` allows.
pub fn show(value: f64, resolution: f64) -> String {
    let places = usize::try_from(decimals(value, resolution)).unwrap_or(0);
    format!("{:.places$}", round(value, decimals(value, resolution)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(10);

    fn cpu(millis: u64) -> ServerCpu {
        ServerCpu {
            used: Duration::from_millis(millis),
            tick: TICK,
        }
    }

    #[test]
    fn figures_keep_only_the_digits_the_ticks_carry() {
        // 1.21 s over 334,000 exchanges is 3.6228... µs, known to ±0.83%.
        let run = cpu(1210);
        let resolution = run.resolution().expect("measured");
        assert!((resolution - 0.01 / 1.21).abs() < 1e-12);
        assert_eq!(run.per_exchange_us(334_000), Some(3.62));
        assert_eq!(show(3.6228, resolution), "3.62");
        // Ten times the time, ten times the precision.
        let long = cpu(12_100);
        assert_eq!(long.per_exchange_us(3_340_000), Some(3.623));
        // A large figure rounds in its whole places.
        // 12,345 ± 5% is ± 617: good to the hundreds.
        assert_eq!(round(12_345.0, decimals(12_345.0, 0.05)), 12_300.0);
        assert_eq!(show(12_345.0, 0.05), "12300");
    }

    #[test]
    fn bulk_cost_is_per_gib() {
        // 0.50 s to echo 2 GiB: 0.25 s per GiB, ±2%.
        let run = cpu(500);
        assert_eq!(run.per_gib_s(2 << 30), Some(0.25));
        assert_eq!(run.per_gib_s(0), None);
    }

    #[test]
    fn the_clients_cost_keeps_three_digits() {
        let client = ClientCpu {
            used: Duration::from_micros(1_523_456),
        };
        assert_eq!(client.per_exchange_us(100_000), Some(15.2));
        assert_eq!(client.per_exchange_us(0), None);
        assert_eq!(client.per_gib_s(1 << 30), Some(1.52));
        assert_eq!(client.per_gib_s(3 << 30), Some(0.508));
        assert_eq!(client.per_gib_s(0), None);
        assert_eq!(client.cores(Duration::from_secs(2)), Some(0.76));
        assert_eq!(client.cores(Duration::ZERO), None);
        assert_eq!(significant(123_456.0), 123_000.0);
        assert_eq!(significant(0.0), 0.0);
    }

    #[test]
    fn under_ten_ticks_nothing_is_derived() {
        let short = cpu(90);
        assert!(!short.measurable());
        assert_eq!(short.per_exchange_us(1000), None);
        assert_eq!(short.per_gib_s(1 << 30), None);
        assert!(short.resolution().is_some_and(|r| r > 0.1));
        let nothing = cpu(0);
        assert_eq!(nothing.resolution(), None);
        assert_eq!(nothing.per_exchange_us(1000), None);
        assert!(cpu(100).measurable(), "exactly ten ticks is enough");
        assert_eq!(cpu(100).per_exchange_us(0), None);
    }
}
