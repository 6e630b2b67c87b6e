//! `cargo xtask dist`: the three commands as they ship, laid out in
//! `target/dist/` as under an install prefix (`bin/`, `share/man/man1/`, each
//! shell's completion directory), with a `SHA256SUMS` that `sha256sum -c` checks.
//!
//! The pages and scripts come from the release binaries' own `--generate`,
//! so what ships is what those very binaries say in `--help`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::ValueEnum as _;
use echo_generate::Kind;
use sha2::{Digest as _, Sha256};

use crate::{cargo, run_step, target_dir};

/// The commands that ship, each a package of the same name.
const BINARIES: [&str; 3] = ["echo-server", "echo-client", "echo-bench"];

/// The name of the checksum file, in the top of the tree it lists.
pub(crate) const SUMS: &str = "SHA256SUMS";

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

/// Builds the release binaries and lays out `target/dist/` afresh.
pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("dist takes no options, not '{arg}'\n\n{}", crate::USAGE);
    }
    let dist = target_dir(root).join("dist");
    // Whatever an earlier run left, a binary or page since renamed, must not ship.
    if dist.exists() {
        std::fs::remove_dir_all(&dist)
            .with_context(|| format!("cannot remove {}", dist.display()))?;
    }
    let mut build = cargo();
    build.args(["build", "--release", "--locked"]);
    for binary in BINARIES {
        build.args(["-p", binary]);
    }
    run_step(&mut build)?;

    let bin = dist.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let release = target_dir(root).join("release");
    for binary in BINARIES {
        let (from, to) = (release.join(binary), bin.join(binary));
        std::fs::copy(&from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    for binary in BINARIES {
        for &kind in Kind::value_variants() {
            let mut generate = Command::new(bin.join(binary));
            generate
                .args(["--generate", &kind.name(), "--generate-dir"])
                .arg(dist.join(directory(kind)));
            // A setting meant for a run (a bad ECHO_ADDR, say) has no say here.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ECHO_") {
                    generate.env_remove(key);
                }
            }
            run_step(&mut generate)?;
        }
    }
    let files = write_sums(&dist)?;
    eprintln!(
        "\ndist: {} files in {}, listed with their SHA-256 in {SUMS}:",
        files.len(),
        dist.display()
    );
    for file in &files {
        eprintln!("  {file}");
    }
    Ok(())
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
