//! `cargo xtask ci`: the checks that decide whether a change lands, and
//! `cargo xtask ci --containers`: the release as it ships, tested.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::{cargo, dist, image, run_step};

/// Runs every check of the kind `args` names, stopping at the first failure,
/// and prints a summary.
pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    match args {
        [] => checks(root),
        [flag] if flag == "--containers" => containers(root),
        [other, ..] => bail!(
            "ci takes no option but --containers, not '{other}'\n\n{}",
            crate::USAGE
        ),
    }
}

/// The checks of every change: format, lints, and the tests in debug and release.
fn checks(root: &Path) -> anyhow::Result<()> {
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
    summary.print(started);
    Ok(())
}

/// The release as it ships: `dist`'s archive, the image, and the Kubernetes
/// manifests, each tested by `crates/echo-tests/tests/containers.rs`.
///
/// Where podman or the schema validator cannot run, the checks that need
/// them are skipped with a message saying why, unless `CI` is set: CI
/// installs them, so there a missing one fails.
fn containers(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let strict = std::env::var_os("CI").is_some();
    let skip = |what: &str, why: String| -> anyhow::Result<()> {
        if strict {
            bail!("{what} cannot be checked, and CI is set: {why}");
        }
        eprintln!("\nci --containers: {what} skipped: {why}");
        Ok(())
    };
    let release = summary.timed("dist", || dist::build(root))?;
    let mut tests = cargo();
    tests
        .args([
            "test",
            "-p",
            "echo-tests",
            "--test",
            "containers",
            "--locked",
        ])
        .env("ECHO_TEST_ARCHIVE", &release.archive);
    // Each test's name starts with what it needs: `release_`, `image_`,
    // `kube_`, `manifests_`; the filters below pick those that can run.
    let mut filters = vec!["release_"];
    match image::podman_works() {
        Ok(()) => {
            let (name, megabytes) = summary.timed("image", || image::build(root, &release))?;
            eprintln!("image: {name} ({megabytes:.1} MB)");
            tests.env("ECHO_TEST_IMAGE", name);
            filters.extend(["image_", "kube_"]);
        }
        Err(why) => skip("the image and podman kube play", why)?,
    }
    // Run as a module, since pip may put its script where no PATH looks.
    let validator = Command::new("python3")
        .args(["-c", "import kubernetes_validate"])
        .output();
    if validator.is_ok_and(|output| output.status.success()) {
        filters.push("manifests_");
    } else {
        skip(
            "deploy/kubernetes/ against the Kubernetes schemas",
            "python3 has no kubernetes_validate (pip install kubernetes-validate)".to_owned(),
        )?;
    }
    // The tests are ignored in a plain `cargo test`, which has no release to test.
    tests.args(["--", "--ignored"]).args(&filters);
    summary.command("container tests", &mut tests)?;
    summary.print(started);
    Ok(())
}

/// The steps that passed, with how long each took.
#[derive(Debug, Default)]
struct Summary {
    steps: Vec<(String, Duration)>,
}

impl Summary {
    fn print(&self, started: Instant) {
        eprintln!("\nci summary:");
        for (name, took) in &self.steps {
            eprintln!("  ok  {name:<24} {:>6.1}s", took.as_secs_f64());
        }
        eprintln!(
            "  all {} steps passed in {:.1}s",
            self.steps.len(),
            started.elapsed().as_secs_f64()
        );
    }

    fn command(&mut self, name: &str, command: &mut Command) -> anyhow::Result<()> {
        let took = run_step(command)?;
        self.steps.push((name.to_owned(), took));
        Ok(())
    }

    /// Runs `step`, recording how long it took if it succeeds; returns what it made.
    fn timed<T>(
        &mut self,
        name: &str,
        step: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let made = step()?;
        self.steps.push((name.to_owned(), started.elapsed()));
        Ok(made)
    }
}
