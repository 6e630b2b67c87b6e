//! The report as people read it: a small table, through `Display`.

use std::fmt;

use crate::cost::{self, MIN_TICKS};
use crate::plan::format_rate;
use crate::size::{format_size, group_thousands};

use super::Report;
use super::verdict::describe;

/// A latency in microseconds: one decimal while that matters, whole and grouped above.
fn micros(value: f64) -> String {
    if value < 1_000.0 {
        format!("{value:.1}")
    } else {
        whole(value)
    }
}

/// A span of seconds: in milliseconds, to a tenth, below one second.
fn seconds(value: f64) -> String {
    if value < 1.0 {
        format!("{:.1} ms", value * 1e3)
    } else {
        format!("{value:.2} s")
    }
}

/// A rate as a whole number with thousands separators.
fn whole(value: f64) -> String {
    group_thousands(value.round().max(0.0) as u64)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = self
            .label
            .as_ref()
            .map(|l| format!(" [{l}]"))
            .unwrap_or_default();
        writeln!(
            f,
            "{} → {}{label}, {:.2} s",
            self.title, self.addr, self.elapsed_s
        )?;
        if let Some(generators) = self.generators {
            let skew = self
                .start_skew_s
                .filter(|_| generators > 1)
                .map(|skew| format!(", started within {} of one another", seconds(skew)))
                .unwrap_or_default();
            writeln!(f, "  generators    {generators} merged{skew}")?;
        }
        let count = group_thousands(self.exchanges);
        let rate = match self.rate_asked {
            Some(asked) => format!(
                "{}/s (asked {}/s)",
                format_rate(self.rate),
                format_rate(asked)
            ),
            None => format!("{}/s", whole(self.rate)),
        };
        let stop = if self.count_reached {
            " (count reached)"
        } else {
            ""
        };
        match self.scenario.as_str() {
            "conn" => writeln!(f, "  connections   {count}   {rate}{stop}")?,
            "persistent" => writeln!(
                f,
                "  messages      {count}   {rate}   {:.2} MB/s{stop}",
                self.bytes_per_s / 1e6
            )?,
            "bulk" => {
                let total = self.total.map(format_size).unwrap_or_default();
                writeln!(
                    f,
                    "  streamed      {} of {total}   {:.3} GB/s   ({count} writes timed)",
                    format_size(self.bytes),
                    self.bytes_per_s / 1e9
                )?;
            }
            "idle" => writeln!(
                f,
                "  connections   {count} opened ({rate}), {} still echoing after {:.2} s, from {} source address(es)",
                group_thousands(self.held.unwrap_or(0)),
                self.hold_s.unwrap_or(0.0),
                self.source_addresses.unwrap_or(1)
            )?,
            "udp" => writeln!(
                f,
                "  datagrams     {count}   {rate}   lost {} ({:.2}%, limit {}%), late {}{stop}",
                group_thousands(self.lost.unwrap_or(0)),
                self.loss_pct.unwrap_or(0.0),
                self.max_loss_pct.unwrap_or(0.0),
                group_thousands(self.late.unwrap_or(0))
            )?,
            other => writeln!(f, "  {other}   {count}   {rate}")?,
        }
        writeln!(
            f,
            "  latency µs    p50 {}   p90 {}   p99 {}   p99.9 {}   max {}",
            micros(self.p50_us),
            micros(self.p90_us),
            micros(self.p99_us),
            micros(self.p999_us),
            micros(self.max_us)
        )?;
        if let Some(tls) = &self.tls {
            let negotiated = match (&tls.version, &tls.cipher_suite) {
                (Some(version), Some(suite)) => format!("{version} {suite}"),
                _ => "no handshake completed".to_owned(),
            };
            let resumed = if tls.resume_asked {
                format!(", {} resumed", group_thousands(tls.resumed))
            } else {
                String::new()
            };
            writeln!(
                f,
                "  tls           {negotiated}, {} handshakes{resumed}",
                group_thousands(tls.handshakes)
            )?;
            if let (Some(p50), Some(p99), Some(max)) = (
                tls.handshake_p50_us,
                tls.handshake_p99_us,
                tls.handshake_max_us,
            ) {
                writeln!(
                    f,
                    "  handshake µs  p50 {}   p99 {}   max {}",
                    micros(p50),
                    micros(p99),
                    micros(max)
                )?;
            }
        }
        if let (Some(before), Some(after)) = (self.rss_before_kib, self.rss_after_kib) {
            write!(
                f,
                "  server RSS    {} KiB → {} KiB",
                group_thousands(before),
                group_thousands(after)
            )?;
            match self.rss_per_connection {
                Some(per) => writeln!(f, "   {per:.0} B per connection")?,
                None => writeln!(f)?,
            }
        }
        self.fmt_server_cpu(f)?;
        self.fmt_client_cpu(f)?;
        if self.errors == 0 {
            writeln!(f, "  errors        none")?;
        } else {
            writeln!(
                f,
                "  ERRORS        {}: {}",
                group_thousands(self.errors),
                describe(&self.error_counts)
            )?;
            for sample in &self.error_samples {
                writeln!(f, "                {sample}")?;
            }
        }
        if !self.ok {
            writeln!(f, "  FAILED        {}", self.failures.join("; "))?;
        }
        Ok(())
    }
}

impl Report {
    /// The server's CPU line: the cost per exchange (and per GiB for bulk)
    /// with its resolution, or why there is none.
    fn fmt_server_cpu(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(used) = self.server_cpu_s else {
            return Ok(());
        };
        let resolution = self.server_cpu_resolution_pct.map(|pct| pct / 100.0);
        let (Some(per_op), Some(resolution)) = (self.server_cpu_per_op_us, resolution) else {
            if self.exchanges == 0 {
                return writeln!(
                    f,
                    "  server CPU    {used:.2} s, and no exchange to divide it by"
                );
            }
            return writeln!(
                f,
                "  server CPU    {used:.2} s, too little to measure per {}: under {MIN_TICKS} \
                 clock ticks; run longer",
                exchange_word(&self.scenario)
            );
        };
        // The CPU time is a whole number of ticks, and the resolution one tick of it.
        let tick_ms = used * resolution * 1e3;
        write!(f, "  server CPU    ")?;
        if let (Some(per_gib), "bulk") = (self.server_cpu_per_gib_s, self.scenario.as_str()) {
            write!(f, "{} s/GiB, ", cost::show(per_gib, resolution))?;
        }
        writeln!(
            f,
            "{} µs/{} (±{}%: {used:.2} s in {tick_ms:.0} ms ticks)",
            cost::show(per_op, resolution),
            exchange_word(&self.scenario),
            cost::show(resolution * 100.0, 0.5)
        )
    }
}

impl Report {
    /// The load generator's own CPU line: per exchange (and per GiB for
    /// bulk), and the cores it kept busy.
    fn fmt_client_cpu(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Some(used), Some(cores)) = (self.client_cpu_s, self.client_cores) else {
            return Ok(());
        };
        write!(f, "  client CPU    ")?;
        if let (Some(per_gib), "bulk") = (self.client_cpu_per_gib_s, self.scenario.as_str()) {
            write!(f, "{per_gib} s/GiB, ")?;
        }
        if let Some(per_op) = self.client_cpu_per_op_us {
            write!(f, "{per_op} µs/{}, ", exchange_word(&self.scenario))?;
        }
        writeln!(f, "{used:.2} s: {cores:.2} cores busy on average")
    }
}

/// What one exchange of `scenario` is, as the report's lines call it.
fn exchange_word(scenario: &str) -> &'static str {
    match scenario {
        "conn" | "idle" => "connection",
        "persistent" => "message",
        "bulk" => "write",
        "udp" => "datagram",
        _ => "exchange",
    }
}
