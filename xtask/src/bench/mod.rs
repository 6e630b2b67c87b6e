//! `cargo xtask bench`: our echo-server against the canonical tokio echo (the
//! `reference` example of echo-bench), scenario by scenario, as medians of
//! short interleaved rounds, with a latency plot; and the one-second smoke run
//! of every scenario that `cargo xtask ci` makes.
//!
//! One module per concern: `cases` says what is measured and how each figure
//! is read from echo-bench's report, `servers` starts and stops the servers,
//! `rounds` runs the interleaved rounds and takes medians, and `table` prints
//! the result.

mod cases;
mod rounds;
mod servers;
mod table;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;

use self::rounds::ROUNDS;
use self::servers::Server;
use crate::{cargo, run_step, target_dir};

/// Builds release binaries, benchmarks our server against the reference, prints
/// the table and writes the latency plot to `<target>/bench/latency.svg`.
///
/// # Errors
/// Any failed build, server start or echo-bench run (including a run with
/// errors: a server that corrupts data has no speed worth reporting).
pub fn run(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    run_step(cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "echo-server",
        "-p",
        "echo-bench",
        "--examples",
        "--bins",
    ]))?;
    let target = target_dir(root);
    let release = target.join("release");
    let out = target.join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let bench = release.join("echo-bench");

    let results = rounds::interleaved(&bench, &release, &out)?;

    table::print(&results);
    let mut medians = String::new();
    let mut all = String::new();
    for runs in &results {
        for server_runs in runs {
            if let Some(middle) = rounds::median_run(server_runs) {
                medians.push_str(&middle.report);
                medians.push('\n');
            }
            for run in server_runs {
                all.push_str(&run.report);
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
        "\nmedians of {ROUNDS} rounds; latency plot: {}; reports: {}; took {:.0}s",
        plot.display(),
        median_file.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
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
