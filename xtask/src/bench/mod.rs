//! `cargo xtask bench`: our echo-server against references (the canonical
//! tokio echo by default, the project's C floor, an earlier build of ours, or
//! any command), scenario by scenario, as medians of short interleaved
//! rounds, with a latency plot; and the one-second smoke run of every
//! scenario that `cargo xtask ci` makes.
//!
//! One module per concern: `cases` says what is measured and how each figure
//! is read from echo-bench's report, `servers` starts and stops the servers,
//! `rounds` runs the interleaved rounds and takes medians and spreads,
//! `table` prints the result, and `conntrack` waits for room in the kernel's
//! connection-tracking table; `tls` is `cargo xtask bench --tls`, the TLS
//! costs against the crypto floor and TLS peers, with the goals' verdicts.

mod cases;
mod conntrack;
mod rounds;
mod servers;
mod table;
mod tls;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use self::rounds::DEFAULT_ROUNDS;
use self::servers::{Contender, Launch, Server};
use crate::{cargo, run_step, target_dir};

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// The servers ours is measured against, in column order.
    references: Vec<Contender>,
    rounds: usize,
    /// `--tls`: the TLS benchmark, whose peers are its own, instead of the plain one.
    tls: bool,
}

impl Options {
    /// Reads `--reference REF` (repeatable; default the tokio echo), `--rounds N`
    /// and `--tls` (which takes no reference: its peers are socat and ncat).
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut references = Vec::new();
        let mut rounds = DEFAULT_ROUNDS;
        let mut tls = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag {
                "--tls" if inline.is_none() => tls = true,
                "--reference" => references.push(Contender::parse(&value()?)?),
                "--rounds" => {
                    let text = value()?;
                    rounds = text
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .with_context(|| format!("--rounds {text}: a whole number above 0"))?;
                }
                other => bail!(
                    "cargo xtask bench: unknown argument '{other}'\n\n{}",
                    crate::USAGE
                ),
            }
        }
        if tls {
            if !references.is_empty() {
                bail!(
                    "--tls takes no --reference: the TLS benchmark measures ours against \
                     the TLS floor, socat and ncat"
                );
            }
            return Ok(Options {
                references,
                rounds,
                tls,
            });
        }
        if references.is_empty() {
            references.push(Contender::parse("tokio")?);
        }
        for (index, reference) in references.iter().enumerate() {
            if reference.name == "ours"
                || references[..index].iter().any(|r| r.name == reference.name)
            {
                bail!(
                    "two servers are called '{}': name them, as in --reference prev=PATH",
                    reference.name
                );
            }
        }
        Ok(Options {
            references,
            rounds,
            tls,
        })
    }
}

/// Builds release binaries (and the C floor if asked for), benchmarks our
/// server against each reference, prints the table and writes the latency
/// plot to `<target>/bench/latency.svg`; with `--tls`, runs the TLS
/// benchmark instead.
///
/// # Errors
/// Bad arguments, any failed build, server start or echo-bench run (including
/// a run with errors: a server that corrupts data has no speed worth reporting).
pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let options = Options::parse(args)?;
    if options.tls {
        return tls::run(root, options.rounds);
    }
    let started = Instant::now();
    let (release, out) = build_release(root, &["--examples"], "")?;
    if options
        .references
        .iter()
        .any(|reference| reference.launch == Launch::CFloor)
    {
        servers::build_c_floor(root, &out)?;
    }
    let bench = release.join("echo-bench");
    let mut contenders = vec![Contender::ours()];
    contenders.extend(options.references.iter().cloned());

    let results = rounds::interleaved(&bench, &contenders, options.rounds, &release, &out)?;

    table::print(&contenders, &results);
    let mut medians = String::new();
    let mut all = String::new();
    for (case, runs) in cases::CASES.iter().zip(&results) {
        for server_runs in runs {
            if let Some(middle) = rounds::median_run(case, server_runs) {
                medians.push_str(&middle.line);
                medians.push('\n');
            }
            for run in server_runs {
                all.push_str(&run.line);
                all.push('\n');
            }
        }
    }
    let median_file = out.join("medians.jsonl");
    write(&median_file, &medians)?;
    write(&out.join("runs.jsonl"), &all)?;
    let plot = out.join("latency.svg");
    run_step(
        Command::new(&bench)
            .arg("plot")
            .arg("--out")
            .arg(&plot)
            .arg(&median_file),
    )?;
    println!(
        "\nmedians of {} rounds; latency plot: {}; reports: {}; took {:.0}s",
        options.rounds,
        plot.display(),
        median_file.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds the release binaries of echo-server and echo-bench (with `more`
/// of cargo's target selections), and makes the benchmark's output
/// directory, `<target>/bench/<sub>`; returns the binaries' directory and it.
///
/// # Errors
/// The build failed, or the directory could not be made.
fn build_release(
    root: &Path,
    more: &[&str],
    sub: &str,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    run_step(
        cargo()
            .current_dir(root)
            .args([
                "build",
                "--release",
                "-p",
                "echo-server",
                "-p",
                "echo-bench",
                "--bins",
            ])
            .args(more),
    )?;
    let target = target_dir(root);
    let out = target.join("bench").join(sub);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    Ok((target.join("release"), out))
}

/// Runs every echo-bench scenario for about a second against the
/// `echo-server` in `profile_dir` (started with UDP and no UDP rate limit),
/// using the `echo-bench` beside it, and fails on any error.
///
/// # Errors
/// The server does not start, or any scenario fails.
pub fn smoke(root: &Path, profile_dir: &Path) -> anyhow::Result<()> {
    let bench = profile_dir.join("echo-bench");
    let out = target_dir(root).join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let server = Server::start(
        "smoke",
        Command::new(profile_dir.join("echo-server")).args([
            "--listen",
            "127.0.0.1:0",
            "--udp",
            "--udp-rate",
            "0",
        ]),
        &out.join("smoke.log"),
        &["tcp", "udp"],
    )?;
    let tcp = server.addr("tcp");
    let udp = server.addr("udp");
    let pid = server.pid();
    let runs: [&[&str]; 5] = [
        &["conn", "--addr", tcp, "-c", "4", "-d", "1s"],
        &["persistent", "--addr", tcp, "-c", "4", "-d", "1s"],
        &[
            "bulk", "--addr", tcp, "--total", "64MiB", "-c", "2", "-d", "1s",
        ],
        &[
            "idle",
            "--addr",
            tcp,
            "--connections",
            "100",
            "-c",
            "10",
            "-d",
            "1s",
            "--server-pid",
            pid.as_str(),
        ],
        &["udp", "--addr", udp, "-c", "4", "-d", "1s"],
    ];
    for args in runs {
        run_step(Command::new(&bench).args(args).stdin(Stdio::null()))?;
    }
    Ok(())
}

/// Writes `text` to `path`, naming the file if that fails.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    File::create(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Options> {
        Options::parse(&args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn tls_is_a_flag_with_its_own_peers() {
        let options = parse(&["--tls", "--rounds", "3"]).expect("--tls");
        assert!(options.tls);
        assert_eq!(options.rounds, 3);
        assert!(options.references.is_empty());
        let plain = parse(&[]).expect("no arguments");
        assert!(!plain.tls);
        assert_eq!(plain.rounds, DEFAULT_ROUNDS);
        assert_eq!(
            plain.references,
            vec![Contender::parse("tokio").expect("tokio")]
        );
        assert!(parse(&["--tls", "--reference", "c"]).is_err());
        assert!(parse(&["--reference", "c", "--tls"]).is_err());
        assert!(parse(&["--tls=yes"]).is_err());
        assert!(parse(&["--tls", "--rounds", "0"]).is_err());
    }
}
