//! `cargo xtask image`: the release of `cargo xtask dist` as a `FROM scratch`
//! container image, built with podman from `deploy/container/Containerfile`.
//!
//! The build context is staged in `target/image-context/`: the static
//! binaries, LICENSE, README.md and the build machine's CA bundle (Debian's
//! `ca-certificates`), which is all the image holds.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::dist::{self, BINARIES, Release};
use crate::{run_step, target_dir};

/// The image's name without a tag; `localhost/` is where podman keeps
/// images it built and did not pull.
pub(crate) const REPOSITORY: &str = "localhost/echo";

/// The most the image may weigh, in megabytes (10^6 bytes, as podman counts).
const MAX_MEGABYTES: f64 = 20.0;

/// Where Debian (and its derivatives) keep the bundle of trusted CA certificates.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The image's full name: this version's tag (`latest` is set too).
pub(crate) fn name() -> String {
    format!("{REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// `cargo xtask image`: builds the release, then the image, and says its size.
pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("image takes no options, not '{arg}'\n\n{}", crate::USAGE);
    }
    let release = dist::build(root)?;
    let (image, megabytes) = build(root, &release)?;
    eprintln!("\nimage: {image} ({megabytes:.1} MB), also tagged {REPOSITORY}:latest");
    Ok(())
}

/// Builds the image from an already built release; returns its name and size.
///
/// # Errors
/// podman or the CA bundle is missing, the build fails, or the image is over
/// [`MAX_MEGABYTES`].
pub(crate) fn build(root: &Path, release: &Release) -> anyhow::Result<(String, f64)> {
    let context = target_dir(root).join("image-context");
    if context.exists() {
        std::fs::remove_dir_all(&context)
            .with_context(|| format!("cannot remove {}", context.display()))?;
    }
    for binary in BINARIES {
        let file = Path::new("bin").join(binary);
        dist::copy(&release.tree.join(&file), &context.join(&file))?;
    }
    for file in ["LICENSE", "README.md"] {
        dist::copy(&release.tree.join(file), &context.join(file))?;
    }
    if !Path::new(CA_BUNDLE).exists() {
        bail!(
            "{CA_BUNDLE} is missing: install the CA certificates (Debian: apt-get install ca-certificates)"
        );
    }
    dist::copy(Path::new(CA_BUNDLE), &context.join("ca-certificates.crt"))?;

    let image = name();
    let mut build = podman();
    build
        .arg("build")
        .arg("--file")
        .arg(root.join("deploy/container/Containerfile"))
        .arg(format!("--build-arg=VERSION={}", env!("CARGO_PKG_VERSION")))
        .args(["--tag", &image, "--tag", &format!("{REPOSITORY}:latest")])
        .arg(&context);
    run_step(&mut build)?;

    let output = podman()
        .args(["image", "inspect", "--format", "{{.Size}}", &image])
        .output()
        .context("cannot run podman image inspect")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let bytes: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("podman image inspect said {text:?}, not a size"))?;
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52 bytes
    let megabytes = bytes as f64 / 1e6;
    if megabytes > MAX_MEGABYTES {
        bail!("{image} weighs {megabytes:.1} MB, over the {MAX_MEGABYTES} MB the image may take");
    }
    Ok((image, megabytes))
}

/// A `podman` command (`podman_works` says whether one can run, naming its package).
pub(crate) fn podman() -> Command {
    Command::new("podman")
}

/// Whether podman runs here at all (installed, and its storage usable).
pub(crate) fn podman_works() -> Result<(), String> {
    match podman()
        .args(["info", "--format", "{{.Host.Arch}}"])
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "podman info failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(err) => Err(format!(
            "podman cannot run ({err}); Debian: apt-get install podman"
        )),
    }
}
