//! `cargo xtask dist`: the release as it ships, one archive of static,
//! stripped binaries with their man pages, completions, systemd units,
//! LICENSE and README, beside a `SHA256SUMS` that `sha256sum -c` checks.
//!
//! The binaries link glibc statically (`+crt-static`), so they run on any
//! Linux of their architecture and in a `FROM scratch` image; glibc 2.34 and
//! later keep `/etc/hosts` and DNS lookups inside libc, so names still resolve.
//! Symbols and debug information are dropped (`-C strip=symbols`): a panic's
//! backtrace names no functions, and a build from source has them back.
//! The pages and scripts come from the release binaries' own `--generate`,
//! so what ships is what those very binaries say in `--help`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use clap::ValueEnum as _;
use echo_generate::Kind;
use sha2::{Digest as _, Sha256};

use crate::{cargo, run_step, target_dir};

/// The commands that ship, each a package of the same name.
pub(crate) const BINARIES: [&str; 3] = ["echo-server", "echo-client", "echo-bench"];

/// The name of the checksum files: the archive's, and the one inside it.
pub(crate) const SUMS: &str = "SHA256SUMS";

/// The flags that make the shipped binaries static and stripped. Given
/// through `RUSTFLAGS` with an explicit `--target`, they reach only the
/// target's code, not build scripts and proc-macros, which must stay dynamic.
const RUSTFLAGS: &str = "-C target-feature=+crt-static -C strip=symbols";

/// Where under the prefix each kind of `--generate` output goes: where man,
/// bash-completion, zsh's site functions and fish look when the prefix is
/// `/usr/local` or `/usr`; PowerShell has no such place, so its scripts only
/// wait in `share/powershell/` to be dot-sourced from a profile.
fn directory(kind: Kind) -> &'static str {
    match kind {
        Kind::Man => "share/man/man1",
        Kind::CompleteBash => "share/bash-completion/completions",
        Kind::CompleteZsh => "share/zsh/site-functions",
        Kind::CompleteFish => "share/fish/vendor_completions.d",
        Kind::CompletePowershell => "share/powershell",
    }
}

/// Where the systemd units go under the prefix: systemd reads
/// `/usr/local/lib/systemd/system/` as well as `/usr/lib/systemd/system/`.
const UNITS: &str = "lib/systemd/system";

/// What `cargo xtask dist` made.
#[derive(Debug)]
pub(crate) struct Release {
    /// The unpacked tree, `target/dist/echo-VERSION-TARGET/`.
    pub(crate) tree: PathBuf,
    /// The archive of that tree, beside it, listed in `target/dist/SHA256SUMS`.
    pub(crate) archive: PathBuf,
}

/// The target triple of the release: this machine's architecture, Linux, glibc.
///
/// # Errors
/// xtask was not built for Linux with glibc, the only kind of host whose
/// static build is known to work.
pub(crate) fn target() -> anyhow::Result<String> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        bail!(
            "dist builds static glibc binaries, which needs a Linux host with glibc, not {}",
            std::env::consts::OS
        );
    }
    Ok(format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
}

/// `cargo xtask dist`: builds the release and says where it is.
pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("dist takes no options, not '{arg}'\n\n{}", crate::USAGE);
    }
    let release = build(root)?;
    let dist = release.archive.parent().unwrap_or(root);
    eprintln!(
        "\ndist: {} ({:.1} MB), listed with its SHA-256 in {}",
        release.archive.display(),
        megabytes(&release.archive)?,
        dist.join(SUMS).display()
    );
    eprintln!("  unpacked: {}", release.tree.display());
    Ok(())
}

/// Builds the static release binaries, lays out the tree in
/// `target/dist/` afresh, packs it and writes the archive's `SHA256SUMS`.
pub(crate) fn build(root: &Path) -> anyhow::Result<Release> {
    let target = target()?;
    let name = format!("echo-{}-{target}", env!("CARGO_PKG_VERSION"));
    let dist = target_dir(root).join("dist");
    // Whatever an earlier run left, a binary or page since renamed, must not ship.
    if dist.exists() {
        std::fs::remove_dir_all(&dist)
            .with_context(|| format!("cannot remove {}", dist.display()))?;
    }
    let mut build = cargo();
    build
        .args(["build", "--release", "--locked", "--target", &target])
        .env("RUSTFLAGS", RUSTFLAGS);
    for binary in BINARIES {
        build.args(["-p", binary]);
    }
    run_step(&mut build)?;

    let tree = dist.join(&name);
    let release = target_dir(root).join(&target).join("release");
    for binary in BINARIES {
        copy(&release.join(binary), &tree.join("bin").join(binary))?;
    }
    for binary in BINARIES {
        for &kind in Kind::value_variants() {
            let mut generate = Command::new(tree.join("bin").join(binary));
            generate
                .args(["--generate", &kind.name(), "--generate-dir"])
                .arg(tree.join(directory(kind)));
            // A setting meant for a run (a bad ECHO_ADDR, say) has no say here.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ECHO_") {
                    generate.env_remove(key);
                }
            }
            run_step(&mut generate)?;
        }
    }
    for file in ["LICENSE", "README.md"] {
        copy(&root.join(file), &tree.join(file))?;
    }
    for unit in ["echo-server.service", "echo-server.socket"] {
        copy(
            &root.join("contrib").join(unit),
            &tree.join(UNITS).join(unit),
        )?;
    }
    write_sums(&tree)?;

    let archive = dist.join(format!("{name}.tar.gz"));
    pack(root, &dist, &name, &archive)?;
    let file_name = archive
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sums = dist.join(SUMS);
    std::fs::write(&sums, format!("{}  {file_name}\n", sha256_file(&archive)?))
        .with_context(|| format!("cannot write {}", sums.display()))?;
    Ok(Release { tree, archive })
}

/// Copies `from` to `to`, making `to`'s directory first.
pub(crate) fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Packs `dir/name/` into `archive` with tar and gzip, the same bytes for the
/// same tree: entries sorted, owned by root, dated to the last commit (or
/// `SOURCE_DATE_EPOCH`), and no name or time in the gzip header.
fn pack(root: &Path, dir: &Path, name: &str, archive: &Path) -> anyhow::Result<()> {
    let epoch = source_date_epoch(root)?;
    let output =
        File::create(archive).with_context(|| format!("cannot create {}", archive.display()))?;
    let mut tar = Command::new("tar");
    tar.args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
        .arg(format!("--mtime=@{epoch}"))
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", name])
        .stdout(Stdio::piped());
    eprintln!(
        "$ {} | gzip -n -9 > {}",
        crate::show(&tar),
        archive.display()
    );
    let mut tar = tar.spawn().context("cannot run tar")?;
    let tar_out = tar.stdout.take().context("tar's stdout")?;
    let gzip = Command::new("gzip")
        .args(["-n", "-9"])
        .stdin(tar_out)
        .stdout(output)
        .status()
        .context("cannot run gzip")?;
    let tar = tar.wait().context("cannot wait for tar")?;
    if !tar.success() || !gzip.success() {
        bail!(
            "packing {} failed (tar: {tar}, gzip: {gzip})",
            archive.display()
        );
    }
    Ok(())
}

/// The time the archive's entries carry: `SOURCE_DATE_EPOCH` if set (the
/// reproducible-builds convention), else the last commit's.
fn source_date_epoch(root: &Path) -> anyhow::Result<u64> {
    if let Some(epoch) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let text = epoch.to_string_lossy();
        return text
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not a count of seconds"));
    }
    let output = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root)
        .output()
        .context("cannot run git for the last commit's time")?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim().parse() {
        Ok(epoch) if output.status.success() => Ok(epoch),
        _ => bail!(
            "cannot read the last commit's time from git ({}); set SOURCE_DATE_EPOCH",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// A file's size in megabytes (10^6 bytes).
fn megabytes(path: &Path) -> anyhow::Result<f64> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52 bytes
    Ok(bytes as f64 / 1e6)
}

/// Writes `dir/SHA256SUMS`, one line per file under `dir` in the format
/// `sha256sum -c` reads (the hex digest, two spaces, the path relative to
/// `dir`), sorted by path, and returns those paths.
///
/// # Errors
/// A file cannot be read, a path is one the format cannot carry as it is
/// (not UTF-8, or with a newline or backslash), or the sums cannot be written.
pub(crate) fn write_sums(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.retain(|file| file != SUMS);
    files.sort();
    let mut sums = String::new();
    for file in &files {
        let digest = sha256_file(&dir.join(file))?;
        let _ = writeln!(sums, "{digest}  {file}");
    }
    let path = dir.join(SUMS);
    std::fs::write(&path, sums).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(files)
}

/// Appends the paths, relative to `top`, of every file under `dir`.
fn collect_files(top: &Path, dir: &Path, files: &mut Vec<String>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        if entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?
            .is_dir()
        {
            collect_files(top, &path, files)?;
            continue;
        }
        let relative: PathBuf = path.strip_prefix(top).unwrap_or(&path).to_path_buf();
        let text = relative
            .into_os_string()
            .into_string()
            .map_err(|name: OsString| {
                anyhow::anyhow!("{}: not a UTF-8 path", Path::new(&name).display())
            })?;
        // sha256sum escapes such names, and would then read the line differently.
        if text.contains(['\n', '\\']) {
            bail!("{text:?}: a newline or backslash in a shipped path");
        }
        files.push(text);
    }
    Ok(())
}

/// The SHA-256 of the file at `path`, in lowercase hex.
fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match file.read(&mut buffer)? {
                0 => break,
                n => hasher.update(&buffer[..n]),
            }
        }
        Ok(hex(&hasher.finalize()))
    };
    read().with_context(|| format!("cannot read {}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Output;

    /// A small tree as dist makes one: files at the top and in nested directories.
    fn tree() -> echo_tests::TempDir {
        let dir = echo_tests::TempDir::new("dist");
        let files: [(&str, &[u8]); 4] = [
            ("bin/echo-server", b"\x7fELF not really"),
            ("share/man/man1/echo-server.1", b".TH ECHO-SERVER 1\n"),
            (
                "share/zsh/site-functions/_echo-server",
                b"#compdef echo-server\n",
            ),
            ("README", b""),
        ];
        for (file, bytes) in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        }
        dir
    }

    fn sha256sum_check(dir: &Path) -> Output {
        Command::new("sha256sum")
            .args(["-c", "--strict", SUMS])
            .current_dir(dir)
            .output()
            .expect("sha256sum (coreutils) runs")
    }

    #[test]
    fn sha256sum_checks_every_file_the_sums_list() {
        let dir = tree();
        let files = write_sums(dir.path()).expect("sums written");
        assert_eq!(
            files,
            [
                "README",
                "bin/echo-server",
                "share/man/man1/echo-server.1",
                "share/zsh/site-functions/_echo-server",
            ]
        );
        let output = sha256sum_check(dir.path());
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for file in &files {
            assert!(
                said.contains(&format!("{file}: OK")),
                "{file} unchecked: {said}"
            );
        }
        // Written again over the old sums, they still list only the files.
        assert_eq!(write_sums(dir.path()).expect("rewritten"), files);
        assert!(sha256sum_check(dir.path()).status.success());
    }

    #[test]
    fn a_file_changed_after_the_sums_fails_the_check() {
        let dir = tree();
        write_sums(dir.path()).expect("sums written");
        std::fs::write(
            dir.path().join("share/man/man1/echo-server.1"),
            ".TH TAMPERED 1\n",
        )
        .expect("tamper");
        let output = sha256sum_check(dir.path());
        assert!(!output.status.success());
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            said.contains("share/man/man1/echo-server.1: FAILED"),
            "{said}"
        );
        assert!(said.contains("bin/echo-server: OK"), "{said}");
    }

    #[test]
    fn digests_are_the_standard_ones() {
        let dir = echo_tests::TempDir::new("abc");
        let path = dir.path().join("abc");
        std::fs::write(&path, "abc").expect("write");
        // FIPS 180-2's example of one block.
        assert_eq!(
            sha256_file(&path).expect("digest"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
