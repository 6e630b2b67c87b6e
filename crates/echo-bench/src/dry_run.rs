//! The plan as `--dry-run` shows it, as text (`Display` for [`Plan`]) or as
//! one JSON object ([`DryRun`]): everything a run would do, and nothing sent.

use std::fmt;

use serde::Serialize;

use crate::plan::{MIN_RATE_PCT, Plan, Scenario, Trust, format_rate};
use crate::size::{format_size, group_thousands};

/// The plan as `--dry-run` prints it: everything a run would do, one line each.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "echo-bench {}: dry run, nothing sent to the server",
            self.scenario.name()
        )?;
        writeln!(f, "  target        {}", self.target)?;
        let addresses: Vec<String> = self
            .addrs
            .iter()
            .map(|destination| {
                let place = if destination.on_this_host {
                    "this machine"
                } else {
                    "off this machine"
                };
                format!("{} ({place})", destination.endpoint)
            })
            .collect();
        write!(f, "  addresses     {}", addresses.join(", "))?;
        if self.addrs.len() > 1 {
            write!(f, "; the first to take a connection gets the load")?;
        }
        writeln!(f)?;
        let shape = match &self.scenario {
            Scenario::Conn => format!(
                "a new connection per message of {}",
                format_size(self.size as u64)
            ),
            Scenario::Persistent => format!(
                "messages of {} on long-lived connections",
                format_size(self.size as u64)
            ),
            Scenario::Bulk { total } => format!(
                "{} streamed in writes of {}",
                format_size(*total),
                format_size(self.size as u64)
            ),
            Scenario::Idle { connections } => format!(
                "{} connections held, each echoing {} first and last",
                group_thousands(*connections),
                format_size(self.size as u64)
            ),
            Scenario::Udp { max_loss } => format!(
                "datagrams of {}, at most {max_loss}% unanswered",
                format_size(self.size as u64)
            ),
        };
        writeln!(f, "  scenario      {}: {shape}", self.scenario.name())?;
        writeln!(f, "  workers       {}", self.workers)?;
        let size = format_size(self.size as u64);
        match self.scenario {
            Scenario::Bulk { .. } => writeln!(f, "  size          {size} per write")?,
            _ => writeln!(f, "  size          {size} per message")?,
        }
        let how_long = match (&self.scenario, self.count) {
            (Scenario::Idle { .. }, _) => {
                format!("connections held for {}", echo_proto::Human(self.duration))
            }
            (_, Some(count)) => format!(
                "{} exchanges, or {:?} if that comes first",
                group_thousands(count),
                self.duration
            ),
            (_, None) => echo_proto::Human(self.duration).to_string(),
        };
        writeln!(f, "  duration      {how_long}")?;
        match self.rate {
            Some(rate) => writeln!(
                f,
                "  rate          {} exchanges/s over all workers, each latency counted from when \
                 its exchange was due; below {MIN_RATE_PCT}% of it the run fails",
                format_rate(rate)
            )?,
            None if self.scenario.takes_a_rate() => writeln!(
                f,
                "  rate          closed loop: each worker sends as soon as its last reply is in"
            )?,
            None => {}
        }
        writeln!(f, "  timeout       {}", echo_proto::Human(self.timeout))?;
        if let Some(tls) = self.dry_run().tls {
            let client = tls
                .client_cert
                .map(|cert| format!(", client certificate {cert}"))
                .unwrap_or_default();
            let resume = if tls.resume {
                ", each worker resuming its session after its first connection"
            } else {
                ", every handshake full"
            };
            writeln!(
                f,
                "  tls           server name {}, trusting {}{client}{resume}",
                tls.server_name, tls.trust
            )?;
        }
        if let Some(pid) = self.server_pid {
            writeln!(
                f,
                "  server pid    {pid}: CPU time and resident memory read before and after"
            )?;
        }
        let off_host = self.off_host();
        if off_host.is_empty() {
            writeln!(f, "  leaves host   no")?;
        } else {
            let off: Vec<String> = off_host.iter().map(ToString::to_string).collect();
            writeln!(f, "  leaves host   yes, to {}", off.join(", "))?;
        }
        Ok(())
    }
}

/// The plan as `--dry-run --json` prints it: one JSON object with every
/// figure a run would use, named as in a run's report where the two share one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// Always true: tells this object from a run's report.
    pub dry_run: bool,
    /// `conn`, `persistent`, `bulk`, `idle` or `udp`.
    pub scenario: String,
    /// The target as given.
    pub target: String,
    /// What it resolved to, in the order they would be tried.
    pub addresses: Vec<PlannedAddress>,
    /// Whether any of those addresses is off this machine.
    pub leaves_host: bool,
    /// Concurrent workers.
    pub workers: usize,
    /// Bytes per message (`bulk`: per write).
    pub size: u64,
    /// `bulk`: bytes to stream over all connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// `idle`: connections to hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// `udp`: the unanswered share, in percent, past which the run fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loss_pct: Option<f64>,
    /// How long the load would go on (`idle`: how long connections are held).
    pub duration_s: f64,
    /// The exchanges it would stop after, if the duration had not ended first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Exchanges per second asked, for a fixed rate; absent for a closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_asked: Option<f64>,
    /// The longest wait for one exchange.
    pub timeout_s: f64,
    /// The server process that would be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
    /// The run's name, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How the run would speak TLS, with --tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PlannedTls>,
}

/// The TLS settings a dry run shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedTls {
    /// The name asked for and verified.
    pub server_name: String,
    /// `system roots`, `CA file PATH` or `nothing (--tls-insecure)`.
    pub trust: String,
    /// The client certificate's file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// Whether each worker resumes its session (`--tls-resume`).
    pub resume: bool,
}

/// One address a dry run would try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedAddress {
    /// The address, or `unix:PATH`.
    pub addr: String,
    /// Whether it is on this machine.
    pub on_this_host: bool,
}

impl Plan {
    /// The plan as `--dry-run --json` describes it.
    pub fn dry_run(&self) -> DryRun {
        let (total, connections, max_loss_pct) = match self.scenario {
            Scenario::Bulk { total } => (Some(total), None, None),
            Scenario::Idle { connections } => (None, Some(connections), None),
            Scenario::Udp { max_loss } => (None, None, Some(max_loss)),
            Scenario::Conn | Scenario::Persistent => (None, None, None),
        };
        DryRun {
            dry_run: true,
            scenario: self.scenario.name().to_owned(),
            target: self.target.to_string(),
            addresses: self
                .addrs
                .iter()
                .map(|destination| PlannedAddress {
                    addr: destination.endpoint.to_string(),
                    on_this_host: destination.on_this_host,
                })
                .collect(),
            leaves_host: !self.off_host().is_empty(),
            workers: self.workers,
            size: self.size as u64,
            total,
            connections,
            max_loss_pct,
            duration_s: self.duration.as_secs_f64(),
            count: self.count,
            rate_asked: self.rate,
            timeout_s: self.timeout.as_secs_f64(),
            server_pid: self.server_pid,
            label: self.label.clone(),
            tls: self.tls.as_ref().map(|tls| PlannedTls {
                server_name: tls.server_name(&self.target),
                trust: match &tls.trust {
                    Trust::System => "system roots".to_owned(),
                    Trust::Roots(path) => format!("CA file {}", path.display()),
                    Trust::Insecure => "nothing (--tls-insecure)".to_owned(),
                },
                client_cert: tls
                    .client_cert
                    .as_ref()
                    .map(|(cert, _)| cert.display().to_string()),
                resume: tls.resume,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use echo_proto::Endpoint;

    use super::*;
    use crate::plan::Destination;
    use crate::plan::tests::plan;

    #[test]
    fn a_dry_run_shows_where_the_load_goes() {
        let remote = Plan {
            target: "10.0.0.1:7".parse().expect("literal"),
            addrs: vec![Destination {
                endpoint: Endpoint::Ip("10.0.0.1:7".parse().expect("literal")),
                on_this_host: false,
            }],
            rate: Some(2000.0),
            ..plan(Scenario::Persistent)
        };
        let text = remote.to_string();
        assert!(text.contains("dry run, nothing sent"), "{text}");
        assert!(text.contains("10.0.0.1:7 (off this machine)"), "{text}");
        assert!(text.contains("2,000 exchanges/s"), "{text}");
        assert!(text.contains("leaves host   yes, to 10.0.0.1:7"), "{text}");
        assert_eq!(remote.off_host().len(), 1);
        let local = plan(Scenario::Conn).to_string();
        assert!(local.contains("leaves host   no"), "{local}");
        assert!(local.contains("closed loop"), "{local}");
    }
}
