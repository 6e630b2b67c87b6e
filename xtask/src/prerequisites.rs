//! What `cargo xtask ci` needs from the machine besides cargo: the standard
//! tools the functional tests run as clients and launchers, checked before
//! anything is built, so that a missing one is named at once with its
//! package rather than found failing in the middle of the suite.

use std::ffi::OsStr;
use std::path::Path;

/// A tool the tests need and where to get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tool {
    /// What it is, as the message names it.
    pub(crate) name: &'static str,
    /// The Debian package that has it.
    pub(crate) package: &'static str,
}

/// Every tool the functional tests need.
const TOOLS: [Tool; 3] = [
    Tool {
        name: "the OpenBSD netcat (nc.openbsd, or an nc that is OpenBSD's)",
        package: "netcat-openbsd",
    },
    Tool {
        name: "socat",
        package: "socat",
    },
    Tool {
        name: "prlimit",
        package: "util-linux",
    },
];

/// The tools missing from the directories of `path`, a `PATH`-style list.
pub(crate) fn missing(path: Option<&OsStr>) -> Vec<Tool> {
    let dirs: Vec<_> = path
        .map(|path| std::env::split_paths(path).collect())
        .unwrap_or_default();
    let on_path = |program: &str| {
        dirs.iter()
            .any(|dir: &std::path::PathBuf| is_program(&dir.join(program)))
    };
    TOOLS
        .into_iter()
        .filter(|tool| match tool.package {
            "netcat-openbsd" => echo_tests::openbsd_netcat_in(path).is_none(),
            "socat" => !on_path("socat"),
            _ => !on_path("prlimit"),
        })
        .collect()
}

/// Fails, naming the packages to install, unless every tool is on the `PATH`.
///
/// # Errors
/// Some tool is missing.
pub(crate) fn check() -> anyhow::Result<()> {
    let missing = missing(std::env::var_os("PATH").as_deref());
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|tool| tool.name).collect();
    let mut packages: Vec<&str> = missing.iter().map(|tool| tool.package).collect();
    packages.dedup();
    anyhow::bail!(
        "the functional tests need {}, which this machine lacks; on Debian or Ubuntu: \
         apt-get install {}",
        names.join(", "),
        packages.join(" ")
    )
}

fn is_program(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tool(dir: &Path, name: &str, banner: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho '{banner}' >&2\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn every_missing_tool_is_named_with_its_package() {
        let empty = echo_tests::TempDir::new("no-tools");
        let path = std::env::join_paths([empty.path()]).expect("join");
        let packages: Vec<_> = missing(Some(&path)).iter().map(|t| t.package).collect();
        assert_eq!(packages, ["netcat-openbsd", "socat", "util-linux"]);

        let full = echo_tests::TempDir::new("tools");
        tool(full.path(), "nc", "Ncat 7.93 ( https://nmap.org/ncat )");
        tool(full.path(), "socat", "socat version 1.7");
        tool(full.path(), "prlimit", "prlimit from util-linux");
        let path = std::env::join_paths([full.path()]).expect("join");
        let packages: Vec<_> = missing(Some(&path)).iter().map(|t| t.package).collect();
        assert_eq!(
            packages,
            ["netcat-openbsd"],
            "ncat is not the OpenBSD netcat"
        );

        tool(
            full.path(),
            "nc.openbsd",
            "OpenBSD netcat (Debian patchlevel 1.219-1)",
        );
        assert!(missing(Some(&path)).is_empty());
    }
}
