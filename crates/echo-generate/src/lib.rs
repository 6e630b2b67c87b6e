//! `--generate`, shared by the three binaries: a command's man pages and shell
//! completion scripts, rendered from the same clap definition as its `--help`,
//! so that neither can drift from what the command really takes.
//!
//! A binary flattens [`Generate`] into its arguments and, when `--generate` is
//! given, hands its `clap::Command` to [`write`] before doing anything else.
//! Without `--generate-dir` the command's own page or script goes to stdout,
//! as `rg --generate man` does; with it, every file goes into that directory
//! under the name man or the shell looks for, a page for each subcommand too,
//! which is what `cargo xtask dist` collects.
//!
//! [`color`] is the other part they share: `--color` and `NO_COLOR`.

#![warn(missing_docs)]

pub mod color;

pub use color::Color;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Command, ValueEnum};
use clap_complete::aot::Shell;

/// The id of the `--generate` argument, for `required_unless_present` and
/// the like in the binaries' own definitions.
pub const ARG_ID: &str = "generate";

/// The date every page carries, as man wants one: that of the release whose
/// commands they describe (clap_mangen's default, no date, shifts the
/// page's other header fields); bump it with the version.
pub const PAGE_DATE: &str = "2026-12-01";

/// The `--generate` and `--generate-dir` flags, flattened into each binary's own.
#[derive(Debug, Clone, Args)]
pub struct Generate {
    /// Print this command's man page (roff) or a shell's completion script to
    /// stdout, and exit without doing anything else.
    ///
    /// The page and the scripts are made from the same definitions as this
    /// help, so they always match it. Read the page with `--generate man |
    /// man -l -`; install them by hand as the README says, or take them from
    /// `cargo xtask dist`.
    #[arg(id = ARG_ID, long = "generate", value_enum, value_name = "KIND")]
    pub kind: Option<Kind>,

    /// With --generate: write into DIR (created if need be) under the file
    /// name man or the shell looks for, instead of to stdout, and print each
    /// path written; with man, a page for every subcommand too.
    #[arg(long = "generate-dir", value_name = "DIR", requires = ARG_ID,
          value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

/// What `--generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// The man page, in roff; with --generate-dir, each subcommand's too.
    Man,
    /// The completion script for bash.
    CompleteBash,
    /// The completion script for zsh.
    CompleteZsh,
    /// The completion script for fish.
    CompleteFish,
    /// The completion script for PowerShell.
    CompletePowershell,
}

impl Kind {
    /// The value `--generate` takes for this kind (`man`, `complete-bash`,
    /// ...), as clap derives it; every kind is `Kind::value_variants()`.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The file name the reader of this kind looks for, for a command called
    /// `name`: `name.1` for man, and for the shells what bash-completion's
    /// loader, zsh's `fpath`, fish's `vendor_completions.d` and PowerShell
    /// users expect.
    pub fn file_name(self, name: &str) -> String {
        match self {
            Kind::Man => format!("{name}.1"),
            // bash-completion loads `completions/NAME` when NAME is first completed.
            Kind::CompleteBash => name.to_owned(),
            Kind::CompleteZsh => format!("_{name}"),
            Kind::CompleteFish => format!("{name}.fish"),
            Kind::CompletePowershell => format!("_{name}.ps1"),
        }
    }

    fn shell(self) -> Option<Shell> {
        match self {
            Kind::Man => None,
            Kind::CompleteBash => Some(Shell::Bash),
            Kind::CompleteZsh => Some(Shell::Zsh),
            Kind::CompleteFish => Some(Shell::Fish),
            Kind::CompletePowershell => Some(Shell::PowerShell),
        }
    }
}

/// One file `--generate` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its conventional name, as [`Kind::file_name`] gives it.
    pub file_name: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// Why `--generate` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Stdout did not take the output: its reader went away (`| head`), or it is full.
    #[error("cannot write to stdout")]
    Stdout(#[source] io::Error),
    /// A file under `--generate-dir`, or the directory, could not be made.
    #[error("cannot write {}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

impl Error {
    /// Whether stdout's reader went away, which is how `| head` says it
    /// wants no more: not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Stdout(err) if err.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// What `--generate kind` makes for `command`: for a shell, its one script;
/// for man, the command's page first, then one for every subcommand that is
/// not hidden, depth first, each named after its command (`echo-bench-conn.1`).
pub fn render(mut command: Command, kind: Kind) -> Vec<Output> {
    let name = command.get_name().to_owned();
    let Some(shell) = kind.shell() else {
        // A `help` subcommand has no page of its own: it only prints --help.
        let mut command = command.disable_help_subcommand(true);
        command.build();
        let mut pages = Vec::new();
        man_pages(command, &mut pages);
        return pages;
    };
    let mut bytes = Vec::new();
    clap_complete::aot::generate(shell, &mut command, &name, &mut bytes);
    if kind == Kind::CompleteBash {
        bytes = mend_bash(&String::from_utf8_lossy(&bytes), &name).into_bytes();
    }
    vec![Output {
        file_name: kind.file_name(&name),
        bytes,
    }]
}

/// Mends clap_complete's bash script for a command whose name has a hyphen
/// (clap-rs/clap#6421, open as of clap_complete 4.6.12): the loop that
/// follows the words names a subcommand's state `echo__bench__subcmd__conn`,
/// but the branches that complete it are labelled `echo__subcmd__bench__subcmd__conn`,
/// so no subcommand's flags would ever complete. This labels them as the loop names them.
fn mend_bash(script: &str, name: &str) -> String {
    let mislabelled = format!("{}__subcmd__", name.replace('-', "__subcmd__"));
    let labelled = format!("{}__subcmd__", name.replace('-', "__"));
    script.replace(&mislabelled, &labelled)
}

/// Appends the page of `command`, which has been built, then its subcommands'.
fn man_pages(command: Command, pages: &mut Vec<Output>) {
    let subcommands: Vec<Command> = command
        .get_subcommands()
        .filter(|subcommand| !subcommand.is_hide_set())
        .cloned()
        .collect();
    let title = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned();
    let man = clap_mangen::Man::new(command)
        .title(title.to_uppercase())
        .date(PAGE_DATE)
        .manual("User Commands");
    let mut roff = Vec::new();
    // Into a Vec, which cannot fail.
    let _ = man.render(&mut roff);
    // clap_mangen parts an option's help from its list of values with a
    // break, a blank line and a break; man readers take the blank line for
    // `.sp`, and mandoc warns about a break beside it. One `.sp` is the same gap.
    let roff = String::from_utf8_lossy(&roff).replace("\n.br\n\n.br\n", "\n.sp\n");
    pages.push(Output {
        file_name: Kind::Man.file_name(&title),
        bytes: roff.into_bytes(),
    });
    for subcommand in subcommands {
        man_pages(subcommand, pages);
    }
}

/// Runs `--generate kind` for a binary's `main` and says how it should exit:
/// 0 when written (or when stdout's reader went away, as `| head` does), 1
/// after one `error: ...` line on stderr otherwise.
pub fn run(command: Command, kind: Kind, dir: Option<&Path>) -> std::process::ExitCode {
    match write(command, kind, dir) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) if err.is_broken_pipe() => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let cause = std::error::Error::source(&err)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            // With stderr gone too there is no one left to tell: exit 1 all the same.
            let _ = writeln!(io::stderr().lock(), "error: {err}{cause}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Carries out `--generate kind`: the command's own page or script to
/// stdout, or with `dir` every file into `dir`, each path written then
/// printed on a line of stdout.
///
/// # Errors
/// Stdout did not take the output ([`Error::is_broken_pipe`] tells whether
/// its reader went away), or a file could not be written.
pub fn write(command: Command, kind: Kind, dir: Option<&Path>) -> Result<(), Error> {
    let outputs = render(command, kind);
    let mut stdout = io::stdout().lock();
    match dir {
        None => {
            if let Some(output) = outputs.first() {
                stdout.write_all(&output.bytes).map_err(Error::Stdout)?;
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::File {
                path: dir.to_owned(),
                source,
            })?;
            for output in &outputs {
                let path = dir.join(&output.file_name);
                std::fs::write(&path, &output.bytes).map_err(|source| Error::File {
                    path: path.clone(),
                    source,
                })?;
                writeln!(stdout, "{}", path.display()).map_err(Error::Stdout)?;
            }
        }
    }
    stdout.flush().map_err(Error::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        Command::new("demo")
            .version("1.0")
            .about("A demonstration")
            .arg(
                clap::Arg::new("listen")
                    .long("listen")
                    .help("Where to listen"),
            )
            .subcommand(Command::new("one").about("The first"))
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn every_visible_command_has_a_page_named_after_it() {
        let pages = render(command(), Kind::Man);
        let names: Vec<&str> = pages.iter().map(|page| page.file_name.as_str()).collect();
        assert_eq!(names, ["demo.1", "demo-one.1"]);
        let main = String::from_utf8_lossy(&pages[0].bytes);
        assert!(main.contains("\n.TH DEMO 1 "), "{main}");
        assert!(main.contains("listen"), "{main}");
        assert!(!main.contains("demo\\-help"), "no page for help: {main}");
    }

    #[test]
    fn each_shell_gets_one_script_under_its_conventional_name() {
        for (kind, file_name, needle, flag) in [
            (Kind::CompleteBash, "demo", "complete -F _demo", "--listen"),
            (Kind::CompleteZsh, "_demo", "#compdef demo", "--listen"),
            (
                Kind::CompleteFish,
                "demo.fish",
                "complete -c demo",
                "-l listen",
            ),
            (
                Kind::CompletePowershell,
                "_demo.ps1",
                "Register-ArgumentCompleter",
                "--listen",
            ),
        ] {
            let outputs = render(command(), kind);
            assert_eq!(outputs.len(), 1, "{kind:?}");
            assert_eq!(outputs[0].file_name, file_name);
            let script = String::from_utf8_lossy(&outputs[0].bytes);
            assert!(script.contains(needle), "{kind:?}: {script}");
            assert!(script.contains(flag), "{kind:?}: {script}");
        }
    }

    #[test]
    fn a_hyphenated_command_s_subcommands_complete_in_bash() {
        let command = Command::new("my-app")
            .subcommand(Command::new("sub").arg(clap::Arg::new("deep").long("deep")));
        let script =
            String::from_utf8_lossy(&render(command, Kind::CompleteBash)[0].bytes).into_owned();
        // The state the loop sets and the branch that completes `sub`'s flags.
        assert!(script.contains("cmd=\"my__app__subcmd__sub\""), "{script}");
        assert!(
            script.contains("\n        my__app__subcmd__sub)"),
            "{script}"
        );
        assert!(!script.contains("my__subcmd__app"), "{script}");
    }

    #[test]
    fn kind_names_are_what_the_flag_takes() {
        assert_eq!(Kind::CompleteBash.name(), "complete-bash");
        for &kind in Kind::value_variants() {
            assert_eq!(Kind::from_str(&kind.name(), false), Ok(kind));
        }
    }
}
