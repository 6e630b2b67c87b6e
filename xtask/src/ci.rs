//! `cargo xtask ci`: the checks that decide whether a change lands.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{cargo, run_step};

/// Runs every check, stopping at the first failure, and prints a summary.
pub fn run(root: &Path) -> anyhow::Result<()> {
    crate::prerequisites::check()?;
    let started = Instant::now();
    let mut summary = Summary::default();
    summary.command("format", cargo().args(["fmt", "--all", "--check"]))?;
    summary.command(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    for (profile, flags) in [("debug", &[][..]), ("release", &["--release"][..])] {
        // The functional tests run the binaries of their own profile, which
        // cargo builds only for tests of the package that owns them.
        summary.command(
            &format!("build binaries ({profile})"),
            cargo()
                .args(["build", "--workspace", "--bins", "--examples", "--locked"])
                .args(flags),
        )?;
        summary.command(
            &format!("tests ({profile})"),
            cargo()
                .args(["test", "--workspace", "--locked"])
                .args(flags),
        )?;
        summary.timed(&format!("bench smoke ({profile})"), || {
            let profile_dir = crate::target_dir(root).join(profile);
            eprintln!(
                "$ echo-bench smoke run against {}",
                profile_dir.join("echo-server").display()
            );
            crate::bench::smoke(root, &profile_dir)
        })?;
    }
    eprintln!("\nci summary:");
    for (name, took) in &summary.steps {
        eprintln!("  ok  {name:<24} {:>6.1}s", took.as_secs_f64());
    }
    eprintln!(
        "  all {} steps passed in {:.1}s",
        summary.steps.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The steps that passed, with how long each took.
#[derive(Debug, Default)]
struct Summary {
    steps: Vec<(String, Duration)>,
}

impl Summary {
    fn command(&mut self, name: &str, command: &mut Command) -> anyhow::Result<()> {
        let took = run_step(command)?;
        self.steps.push((name.to_owned(), took));
        Ok(())
    }

    fn timed(
        &mut self,
        name: &str,
        step: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        step()?;
        self.steps.push((name.to_owned(), started.elapsed()));
        Ok(())
    }
}
