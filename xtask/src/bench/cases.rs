//! The standard cases: the echo-bench command line of each, the figures it
//! is judged by (throughput, latency, the server's CPU per operation, its
//! memory per idle connection, and the load generator's own CPU per operation,
//! which explains the rates), how each is read from echo-bench's report and
//! how it is written.
//!
//! Figures are read through echo-bench's own [`Report`] type rather than by
//! looking for field names in its JSON, so that renaming a field of the report
//! breaks the build of xtask instead of a benchmark three minutes in.

use echo_bench::Report;
use echo_bench::size::group_thousands;

/// One figure a case is judged by: how it is read from echo-bench's report,
/// and how it is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Figure {
    /// Exchanges per second, under this unit name.
    Rate(&'static str),
    /// Verified bytes per second, in MB/s.
    Megabytes,
    /// Verified bytes per second, in GB/s.
    Gigabytes,
    /// The 99th percentile of latency, microseconds.
    P99,
    /// The server's CPU time per exchange, microseconds, under this unit name.
    CpuPerExchange(&'static str),
    /// The server's CPU time per GiB echoed, seconds.
    CpuPerGib,
    /// The load generator's own CPU time per exchange, microseconds, under this unit name.
    ClientCpuPerExchange(&'static str),
    /// The load generator's own CPU time per GiB echoed, seconds.
    ClientCpuPerGib,
    /// Growth of the server's resident memory per idle connection, in bytes.
    BytesPerConnection,
}

impl Figure {
    /// The figure's unit, as the table's figure column names it.
    pub(super) fn unit(self) -> &'static str {
        match self {
            Figure::Rate(unit)
            | Figure::CpuPerExchange(unit)
            | Figure::ClientCpuPerExchange(unit) => unit,
            Figure::Megabytes => "MB/s",
            Figure::Gigabytes => "GB/s",
            Figure::P99 => "p99 µs",
            Figure::CpuPerGib => "server CPU s/GiB",
            Figure::ClientCpuPerGib => "client CPU s/GiB",
            Figure::BytesPerConnection => "B/idle conn",
        }
    }

    /// The figure in a report of echo-bench; `None` when the run did not measure it.
    pub(super) fn read(self, report: &Report) -> Option<f64> {
        match self {
            Figure::Rate(_) => Some(report.rate),
            Figure::Megabytes => Some(report.bytes_per_s / 1e6),
            Figure::Gigabytes => Some(report.bytes_per_s / 1e9),
            Figure::P99 => Some(report.p99_us),
            Figure::CpuPerExchange(_) => report.server_cpu_per_op_us,
            Figure::CpuPerGib => report.server_cpu_per_gib_s,
            Figure::ClientCpuPerExchange(_) => report.client_cpu_per_op_us,
            Figure::ClientCpuPerGib => report.client_cpu_per_gib_s,
            Figure::BytesPerConnection => report.rss_per_connection,
        }
    }

    /// The figure as the table writes it.
    pub(super) fn show(self, value: f64) -> String {
        if !value.is_finite() {
            return "-".to_owned();
        }
        match self {
            Figure::Gigabytes
            | Figure::CpuPerExchange(_)
            | Figure::CpuPerGib
            | Figure::ClientCpuPerExchange(_)
            | Figure::ClientCpuPerGib => {
                format!("{value:.2}")
            }
            Figure::Megabytes => format!("{value:.1}"),
            Figure::Rate(_) | Figure::P99 | Figure::BytesPerConnection => grouped(value),
        }
    }
}

/// One group of rows of the table: an echo-bench command line and the
/// figures it is judged by, the headline first.
#[derive(Debug)]
pub(super) struct Case {
    /// The scenario with its shape, as echo-bench titles it.
    pub(super) name: &'static str,
    /// echo-bench's arguments, less the address, label, pid and output form.
    pub(super) args: &'static [&'static str],
    /// The figures it is judged by, the headline first.
    pub(super) figures: &'static [Figure],
    /// Whether the case runs against a server started just for it, so that
    /// memory kept from earlier runs does not hide the growth.
    pub(super) fresh_server: bool,
}

/// The standard set, each short enough that five rounds
/// take about a minute per server on two cores.
pub(super) const CASES: [Case; 5] = [
    Case {
        name: "conn 64 B × 50",
        args: &["conn", "-s", "64", "-c", "50", "-d", "2s"],
        figures: &[
            Figure::Rate("conn/s"),
            Figure::P99,
            Figure::CpuPerExchange("server CPU µs/conn"),
            Figure::ClientCpuPerExchange("client CPU µs/conn"),
        ],
        fresh_server: false,
    },
    Case {
        name: "persistent 64 B × 50",
        args: &["persistent", "-s", "64", "-c", "50", "-d", "2s"],
        figures: &[
            Figure::Rate("msg/s"),
            Figure::P99,
            Figure::CpuPerExchange("server CPU µs/msg"),
            Figure::ClientCpuPerExchange("client CPU µs/msg"),
        ],
        fresh_server: false,
    },
    Case {
        name: "persistent 16 KiB × 8",
        args: &["persistent", "-s", "16KiB", "-c", "8", "-d", "2s"],
        figures: &[
            Figure::Megabytes,
            Figure::P99,
            Figure::CpuPerExchange("server CPU µs/msg"),
            Figure::ClientCpuPerExchange("client CPU µs/msg"),
        ],
        fresh_server: false,
    },
    Case {
        name: "bulk 1 GiB × 1",
        args: &["bulk", "--total", "1GiB", "-c", "1", "-d", "20s"],
        figures: &[
            Figure::Gigabytes,
            Figure::P99,
            Figure::CpuPerGib,
            Figure::ClientCpuPerGib,
        ],
        fresh_server: false,
    },
    Case {
        name: "idle 10,000",
        args: &["idle", "--connections", "10000", "-c", "50", "-d", "1s"],
        figures: &[Figure::BytesPerConnection],
        fresh_server: true,
    },
];

/// A number rounded to a whole, with thousands separators; `-` for none.
pub(super) fn grouped(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    // Ties go to even, as `{:.0}` rounds them.
    let text = group_thousands(value.abs().round_ties_even() as u64);
    if value < -0.5 {
        format!("-{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines echo-bench printed with `--json`.
    const PERSISTENT: &str = r#"{"scenario":"persistent","title":"persistent 64 B × 2","addr":"127.0.0.1:35921","workers":2,"size":64,"elapsed_s":0.012713668,"exchanges":100,"bytes":6400,"rate":7865.550681361194,"bytes_per_s":503395.2436071164,"count_reached":true,"client_cpu_s":0.00123,"client_cpu_per_op_us":12.3,"client_cores":0.1,"p50_us":91.775,"p90_us":128.575,"p99_us":4407.295,"p999_us":4481.023,"max_us":4481.023,"mean_us":185.61360000000002,"percentiles":[[50.0,91.775],[75.0,119.551],[90.0,128.575],[95.0,158.463],[99.0,4407.295],[99.5,4481.023],[99.9,4481.023],[99.95,4481.023],[99.99,4481.023],[100.0,4481.023]],"errors":0,"error_counts":{"mismatch":0,"reset":0,"timeout":0,"connect":0,"other":0},"error_samples":[],"ok":true,"failures":[]}"#;
    const IDLE: &str = r#"{"scenario":"idle","title":"idle 20","addr":"127.0.0.1:35921","workers":4,"size":64,"elapsed_s":0.116786682,"exchanges":20,"bytes":1280,"rate":1798.131507606501,"bytes_per_s":115080.41648681606,"count_reached":false,"p50_us":397.311,"p90_us":3557.375,"p99_us":5197.823,"p999_us":5197.823,"max_us":5197.823,"mean_us":1164.8383999999999,"percentiles":[[50.0,397.311],[75.0,695.807],[90.0,3557.375],[95.0,3581.951],[99.0,5197.823],[99.5,5197.823],[99.9,5197.823],[99.95,5197.823],[99.99,5197.823],[100.0,5197.823]],"errors":0,"error_counts":{"mismatch":0,"reset":0,"timeout":0,"connect":0,"other":0},"error_samples":[],"connections":20,"held":20,"hold_s":0.1,"source_addresses":1,"server_pid":32610,"rss_before_kib":8228,"rss_after_kib":8244,"rss_per_connection":819.2,"ok":true,"failures":[]}"#;

    #[test]
    fn figures_are_read_from_echo_bench_reports() {
        let persistent: Report = serde_json::from_str(PERSISTENT).expect("a persistent report");
        assert_eq!(
            Figure::Rate("msg/s").read(&persistent),
            Some(7865.550681361194)
        );
        assert_eq!(
            Figure::Megabytes.read(&persistent),
            Some(503395.2436071164 / 1e6)
        );
        assert_eq!(
            Figure::Gigabytes.read(&persistent),
            Some(503395.2436071164 / 1e9)
        );
        assert_eq!(Figure::P99.read(&persistent), Some(4407.295));
        assert_eq!(Figure::BytesPerConnection.read(&persistent), None);
        assert_eq!(Figure::CpuPerGib.read(&persistent), None);
        assert_eq!(
            Figure::ClientCpuPerExchange("client CPU µs/msg").read(&persistent),
            Some(12.3)
        );
        assert_eq!(Figure::ClientCpuPerGib.read(&persistent), None);
        let idle: Report = serde_json::from_str(IDLE).expect("an idle report");
        assert_eq!(Figure::BytesPerConnection.read(&idle), Some(819.2));
    }

    #[test]
    fn figures_are_grouped() {
        assert_eq!(grouped(1_234_567.4), "1,234,567");
        assert_eq!(grouped(999.6), "1,000");
        assert_eq!(grouped(f64::NAN), "-");
        assert_eq!(grouped(-2_500.0), "-2,500");
    }
}
