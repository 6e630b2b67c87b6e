//! Project automation, run as `cargo xtask <task>`, so cargo is the only tool a contributor needs.
//!
//! - `cargo xtask ci`: every check CI runs, in debug and then release.
//! - `cargo xtask bench`: our server against the reference echo, side by side.
//! - `cargo xtask ci --containers`: the release archive, the image and the Kubernetes manifests, tested.
//! - `cargo xtask dist`: the release archive of static binaries, pages, completions and units.
//! - `cargo xtask image`: that release as a `FROM scratch` container image.

mod bench;
mod ci;
mod dist;
mod image;
mod prerequisites;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};

pub(crate) const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  ci      fmt check, clippy -D warnings, and the whole test suite in debug then release,
          with a one-second smoke run of every echo-bench scenario
  bench   release build of our server and the references, the standard scenarios
          side by side: throughput, p99 latency, server and client CPU per operation,
          memory per idle connection; medians and spreads of several rounds (about a
          minute per server with the default five rounds)
  ci --containers
          the release as it ships, tested: dist's archive (static, stripped, runs,
          resolves names), the image (echoes TCP and UDP through mapped ports,
          probes, metrics, stops on SIGTERM) and deploy/kubernetes/ (validated
          offline, run with podman kube play); parts whose tools are missing
          are skipped with a message, unless CI is set
  dist    static, stripped release binaries with their man pages, shell completions,
          systemd units, LICENSE and README in target/dist/echo-VERSION-TARGET.tar.gz,
          beside its SHA256SUMS, and unpacked beside it as under an install prefix
          (bin/, share/man/man1/, share/bash-completion/, share/zsh/, share/fish/,
          share/powershell/, lib/systemd/system/); no options
  image   dist's release as a FROM scratch image, localhost/echo:VERSION (and
          :latest), built with podman from deploy/container/Containerfile; no options

bench options:
  --reference REF   a server to measure ours against; repeat for several (default: tokio)
                      tokio            the canonical tokio echo (echo-bench's reference example)
                      c                the project's C epoll echo, built here with cc
                      PATH             an echo-server binary (an earlier build, say)
                      'COMMAND {port}' any server; {port} is a port picked here, and the
                                       server is ready once that port accepts
                      NAME=REF         any of those, named NAME in the table
  --rounds N        rounds of every case against every server (default: 5)
  --tls             the TLS benchmark instead (no --reference): ours over TLS and over TCP
                    (--splice never) against the TLS floor (echo-bench tls-floor) and the
                    TLS echoes of socat and ncat (skipped if not installed), in conn, conn
                    resumed, bulk and idle; then issue 20's goals as ratios with verdicts.
                    Certificates are made with openssl in target/bench/tls/

  cargo xtask bench --reference c --reference prev=/tmp/echo-server-0.1
  cargo xtask bench --tls --rounds 5";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = project_root().and_then(|root| {
        std::env::set_current_dir(&root)
            .with_context(|| format!("cannot enter {}", root.display()))?;
        match args.first().map(String::as_str) {
            Some("ci") => ci::run(&root, &args[1..]),
            Some("bench") => bench::run(&root, &args[1..]),
            Some("dist") => dist::run(&root, &args[1..]),
            Some("image") => image::run(&root, &args[1..]),
            Some("-h" | "--help" | "help") => {
                println!("{USAGE}");
                Ok(())
            }
            Some(other) => bail!("unknown task '{other}'\n\n{USAGE}"),
            None => bail!("no task given\n\n{USAGE}"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's manifest directory's parent.
fn project_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask is not inside a workspace")
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` if set, else `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// A `cargo` command, using the cargo that runs us.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Echoes `command`, runs it, and fails naming it unless it succeeds.
fn run_step(command: &mut Command) -> anyhow::Result<std::time::Duration> {
    let shown = show(command);
    eprintln!("$ {shown}");
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(started.elapsed())
}

/// A command as a shell line, for echoing and error messages.
fn show(command: &Command) -> String {
    let program = Path::new(command.get_program()).file_name().map_or_else(
        || command.get_program().to_string_lossy(),
        |name| name.to_string_lossy(),
    );
    let mut line = program.into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
