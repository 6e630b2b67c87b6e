//! What ships beside the binaries, as each makes it with `--generate`: man
//! pages that mandoc finds clean, bash completions that complete, and the
//! usage errors that making `MESSAGE` and the scenario optional must leave alone.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::thread;

use assert_cmd::Command as Cmd;
use echo_tests::{TempDir, WAIT, binary};
use predicates::prelude::*;

/// The binaries that ship.
const BINARIES: [&str; 3] = ["echo-server", "echo-client", "echo-bench"];

/// Every `--generate` kind.
const KINDS: [&str; 5] = [
    "man",
    "complete-bash",
    "complete-zsh",
    "complete-fish",
    "complete-powershell",
];

/// The pages `echo-bench --generate man --generate-dir` must write: its own
/// and one per scenario, and `plot`'s and `merge`'s.
const BENCH_PAGES: [&str; 9] = [
    "echo-bench.1",
    "echo-bench-conn.1",
    "echo-bench-persistent.1",
    "echo-bench-bulk.1",
    "echo-bench-idle.1",
    "echo-bench-udp.1",
    "echo-bench-plot.1",
    "echo-bench-merge.1",
    "echo-bench-tls-floor.1",
];

/// `name` with a bounded run and none of the project's settings from the environment.
fn command(name: &str) -> Cmd {
    let mut command = Cmd::new(binary(name));
    command.timeout(WAIT);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ECHO_") {
            command.env_remove(key);
        }
    }
    command
}

/// The program `name` on the `PATH`, if there is one.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn show(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What `name --generate kind` prints, which must be a success.
fn generate(name: &str, kind: &str) -> Vec<u8> {
    let output = command(name)
        .args(["--generate", kind])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{name} --generate {kind}: {}",
        show(&output)
    );
    output.stdout
}

/// Runs `name --generate kind --generate-dir DIR` and returns the names of
/// the files in DIR, sorted, having checked that stdout lists exactly them.
fn generate_into(name: &str, kind: &str, dir: &Path) -> Vec<String> {
    let output = command(name)
        .args(["--generate", kind, "--generate-dir"])
        .arg(dir)
        .output()
        .expect("runs");
    assert!(output.status.success(), "{name}: {}", show(&output));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory was made")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            Path::new(line)
                .strip_prefix(dir)
                .unwrap_or_else(|_| panic!("{line} is not in {}", dir.display()))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    listed.sort();
    assert_eq!(listed, files, "stdout lists every file written");
    files
}

/// mandoc's complaints about `page`, at warning level or worse; `None` when
/// it has none.
fn mandoc_warnings(mandoc: &Path, page: &[u8]) -> Option<String> {
    let output = Cmd::new(mandoc)
        .args(["-Tlint", "-W", "warning"])
        .write_stdin(page.to_vec())
        .timeout(WAIT)
        .output()
        .expect("mandoc runs");
    let clean = output.status.success() && output.stdout.is_empty() && output.stderr.is_empty();
    (!clean).then(|| show(&output))
}

#[test]
fn every_man_page_passes_mandoc_lint() {
    let Some(mandoc) = on_path("mandoc") else {
        eprintln!("skipped: no mandoc on the PATH to lint the man pages; apt-get install mandoc");
        return;
    };
    let mut complaints = Vec::new();
    for name in BINARIES {
        let page = generate(name, "man");
        if let Some(warnings) = mandoc_warnings(&mandoc, &page) {
            complaints.push(format!("{name} --generate man:\n{warnings}"));
        }
    }
    // Every page --generate-dir writes, each echo-bench scenario's among them.
    let dir = TempDir::new("man-lint");
    let pages = generate_into("echo-bench", "man", dir.path());
    assert_eq!(pages.len(), BENCH_PAGES.len(), "{pages:?}");
    for page in pages {
        let text = std::fs::read(dir.path().join(&page)).expect("page");
        if let Some(warnings) = mandoc_warnings(&mandoc, &text) {
            complaints.push(format!("{page}:\n{warnings}"));
        }
    }
    assert!(complaints.is_empty(), "{}", complaints.join("\n"));
}

#[test]
fn generate_dir_writes_every_page_under_the_name_man_looks_for() {
    for (name, expected) in [
        ("echo-server", &["echo-server.1"][..]),
        ("echo-client", &["echo-client.1"]),
        ("echo-bench", &BENCH_PAGES),
    ] {
        let dir = TempDir::new("man-dir");
        // A directory not there yet is made.
        let pages = generate_into(name, "man", &dir.path().join("share/man/man1"));
        let mut expected: Vec<String> = expected.iter().map(|page| page.to_string()).collect();
        expected.sort();
        assert_eq!(pages, expected);
        let main = std::fs::read_to_string(dir.path().join("share/man/man1").join(&expected[0]))
            .expect("page");
        assert!(main.contains("\n.TH "), "{main}");
    }
    let dir = TempDir::new("completion-dir");
    for (kind, file) in [
        ("complete-bash", "echo-bench"),
        ("complete-zsh", "_echo-bench"),
        ("complete-fish", "echo-bench.fish"),
        ("complete-powershell", "_echo-bench.ps1"),
    ] {
        let into = dir.path().join(kind);
        assert_eq!(generate_into("echo-bench", kind, &into), [file]);
        let script = std::fs::read(into.join(file)).expect("script");
        assert_eq!(
            script,
            generate("echo-bench", kind),
            "{kind}: the same as on stdout"
        );
    }
}

/// What bash completes for `words`, the last one being completed, with the
/// completion `name --generate complete-bash` makes; `None` without bash.
fn bash_completes(name: &str, words: &[&str]) -> Option<Vec<String>> {
    let bash = on_path("bash")?;
    let dir = TempDir::new("bash-completion");
    let script = dir.path().join(name);
    std::fs::write(&script, generate(name, "complete-bash")).expect("write the script");
    // As bash calls a completion function: the words so far, the index of
    // the one being completed, and the command, that word and the one before.
    let complete = r#"
        source "$0" || exit 3
        spec=$(complete -p "$1") || exit 4
        function=${spec#*-F }
        function=${function%% *}
        COMP_WORDS=("$@")
        COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        "$function" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let output = Cmd::new(bash)
        .args(["--norc", "--noprofile", "-c", complete])
        .arg(&script)
        .args(words)
        .write_stdin(Vec::new())
        .timeout(WAIT)
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{words:?}: {}", show(&output));
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn bash_completes_each_binary_s_flags() {
    for (name, words, expected) in [
        ("echo-server", &["echo-server", "--li"][..], "--listen"),
        ("echo-client", &["echo-client", "--che"], "--check"),
        (
            "echo-bench",
            &["echo-bench", "conn", "--server"],
            "--server-pid",
        ),
        ("echo-bench", &["echo-bench", "con"], "conn"),
    ] {
        let Some(completions) = bash_completes(name, words) else {
            eprintln!("skipped: no bash on the PATH to try the bash completions in");
            return;
        };
        assert_eq!(completions, [expected], "{words:?}");
    }
}

#[test]
fn generate_needs_no_message_nor_scenario() {
    for name in BINARIES {
        for kind in KINDS {
            command(name)
                .args(["--generate", kind])
                .assert()
                .success()
                .stdout(predicate::function(|out: &[u8]| !out.is_empty()))
                .stderr("");
        }
    }
}

#[test]
fn an_unknown_kind_is_a_usage_error() {
    for name in BINARIES {
        command(name)
            .args(["--generate", "manpage"])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(
                "invalid value 'manpage' for '--generate <KIND>'",
            ));
        command(name)
            .args(["--generate-dir", "/nonexistent"])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("--generate <KIND>"));
    }
}

#[test]
fn a_closed_stdout_ends_generate_quietly() {
    for name in BINARIES {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        // No reader: every write to the pipe fails with EPIPE.
        drop(read_end);
        let mut generate = std::process::Command::new(binary(name));
        generate
            .args(["--generate", "man"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ECHO_") {
                generate.env_remove(key);
            }
        }
        let child = generate.spawn().expect("starts");
        let pid = child.id();
        let (sender, exited) = mpsc::channel();
        thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        let output = exited
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("{name} --generate man did not exit within {WAIT:?}")
            })
            .expect("waited for");
        assert_eq!(output.status.code(), Some(0), "{name}: {}", show(&output));
        assert!(output.stderr.is_empty(), "{name}: {}", show(&output));
    }
}

#[test]
fn the_usage_errors_stay_as_they_were() {
    command("echo-client")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::starts_with(
            "error: the following required arguments were not provided:\n  <MESSAGE>\n\n\
             Usage: echo-client <MESSAGE>\n",
        ));
    // A bare echo-bench shows its help, on stderr, as clap does for a
    // missing subcommand; the first usage line is the one it always had.
    command("echo-bench")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("\nUsage: echo-bench <COMMAND>\n"))
        .stderr(predicate::str::contains("conn "));
    command("echo-bench")
        .arg("frobnicate")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::starts_with(
            "error: unrecognized subcommand 'frobnicate'\n\nUsage: echo-bench <COMMAND>\n",
        ));
    command("echo-server")
        .arg("--bogus")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::starts_with(
            "error: unexpected argument '--bogus' found\n\nUsage: echo-server [OPTIONS]\n",
        ));
}

/// The install loop of docs/install.md, as a reader copies it: from its
/// `for bin in` line to its `done`.
fn install_loop() -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/install.md");
    let text = std::fs::read_to_string(&page).expect("docs/install.md");
    let start = text.find("for bin in ").expect("the install loop");
    let end = start + text[start..].find("done").expect("its end") + "done".len();
    text[start..end].to_owned()
}

#[test]
fn the_documented_install_lines_work_on_a_fresh_account() {
    let home = TempDir::new("fresh-home");
    let bin_dir = binary("echo-server")
        .parent()
        .expect("a directory")
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("a PATH");
    Cmd::new("bash")
        .args(["-e", "-c", &install_loop()])
        .env("HOME", home.path())
        .env("PATH", path)
        .timeout(WAIT)
        .assert()
        .success();
    for file in [
        ".cargo/share/man/man1/echo-server.1",
        ".cargo/share/man/man1/echo-bench-conn.1",
        ".local/share/bash-completion/completions/echo-client",
        ".zfunc/_echo-bench",
        ".config/fish/completions/echo-server.fish",
    ] {
        assert!(home.path().join(file).is_file(), "{file} was not written");
    }
}
