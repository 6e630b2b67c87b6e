//! The built `echo-server` binary, as `cargo test -p echo-server` sees it.
//!
//! Cargo builds a package's binaries only for that package's own
//! integration tests, and the functional tests in `echo-tests` run the
//! binary from the same target directory. This file is why
//! `cargo test -p echo-server -p echo-tests` (what a mutation run does with a
//! mutant of the server) rebuilds the binary those tests start, rather than
//! testing whatever binary was built before.

use std::process::Command;

#[test]
fn version_names_the_binary_and_the_crate_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .arg("--version")
        .output()
        .expect("the built echo-server runs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        concat!("echo-server ", env!("CARGO_PKG_VERSION"), "\n")
    );
    assert!(output.stderr.is_empty(), "{output:?}");
}
