//! `--color`, shared by the three binaries: when their output may carry
//! ANSI colours and styles, decided as ripgrep decides it, by the flag first,
//! then `NO_COLOR` (<https://no-color.org>), then whether the stream is a
//! terminal that can show them.
//!
//! A binary flattens [`Color`] into its arguments, parses with [`parse`]
//! (clap's help and errors then follow the flag too, even when the command
//! line is wrong), and gives [`When::stderr`] to its log writer.

use std::ffi::{OsStr, OsString};
use std::io::{self, IsTerminal};

use clap::{Args, ColorChoice, Command, Parser, ValueEnum};

/// The id of the `--color` argument.
pub const ARG_ID: &str = "color";

/// The `--color` flag, flattened into each binary's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct Color {
    /// When to colour the output (help, errors, logs): auto colours a
    /// terminal, unless NO_COLOR is set to anything but the empty string or
    /// TERM is unset or dumb; always and never override NO_COLOR and TERM.
    #[arg(id = ARG_ID, long = "color", value_enum, value_name = "WHEN",
          default_value_t = When::Auto, global = true)]
    pub when: When,
}

/// What `--color` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum When {
    /// Colour a terminal, unless NO_COLOR or TERM says otherwise.
    #[default]
    Auto,
    /// Colour whatever the stream is.
    Always,
    /// Never colour.
    Never,
}

impl When {
    /// Whether to colour stderr: what a log writer's ANSI setting takes.
    pub fn stderr(self) -> bool {
        self.colors(io::stderr().is_terminal())
    }

    /// Whether to colour stdout.
    pub fn stdout(self) -> bool {
        self.colors(io::stdout().is_terminal())
    }

    /// Whether to colour a stream that is a terminal or not, by this
    /// process's `NO_COLOR` and `TERM`.
    pub fn colors(self, is_terminal: bool) -> bool {
        let no_color = std::env::var_os("NO_COLOR");
        let term = std::env::var_os("TERM");
        self.decide(is_terminal, no_color.as_deref(), term.as_deref())
    }

    /// The rule itself, free of the environment: the flag first; for auto,
    /// NO_COLOR set and not empty means no colour (no-color.org), and so do
    /// a stream that is no terminal and a terminal that says it cannot
    /// show any (TERM unset or `dumb`).
    fn decide(self, is_terminal: bool, no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
        match self {
            When::Always => true,
            When::Never => false,
            When::Auto => {
                let no_color = no_color.is_some_and(|value| !value.is_empty());
                let dumb = term.is_none_or(|term| term.is_empty() || term == "dumb");
                is_terminal && !no_color && !dumb
            }
        }
    }

    /// What the command line's last `--color WHEN` or `--color=WHEN` asks,
    /// before `--`, read without clap so that clap's own errors about the
    /// rest of the line can follow it; a value clap would refuse counts as
    /// not given (clap then says why).
    fn scan(args: &[OsString]) -> When {
        let mut when = When::Auto;
        let mut words = args.iter().skip(1).map(|arg| arg.to_str());
        while let Some(word) = words.next() {
            let value = match word {
                Some("--") => break,
                Some("--color") => words.next().flatten(),
                Some(word) => word.strip_prefix("--color="),
                None => None,
            };
            if let Some(parsed) = value.and_then(|value| When::from_str(value, false).ok()) {
                when = parsed;
            }
        }
        when
    }
}

/// Parses this process's command line into `P`, as `P::parse()` does, but
/// with help and errors coloured by [`When`]'s rule; exits as clap does on
/// `--help`, `--version` and usage errors.
pub fn parse<P: Parser>() -> P {
    let args: Vec<OsString> = std::env::args_os().collect();
    P::try_parse_from(&args).unwrap_or_else(|error| exit_with(error, P::command(), &args))
}

/// Prints a clap error (or help) of `command`, coloured by the command
/// line's `--color` and the environment, and exits as clap does (2 for a
/// usage error): the way out for the usage errors a binary finds itself.
pub fn exit(error: clap::Error, command: Command) -> ! {
    let args: Vec<OsString> = std::env::args_os().collect();
    exit_with(error, command, &args)
}

fn exit_with(error: clap::Error, command: Command, args: &[OsString]) -> ! {
    let when = When::scan(args);
    let colored = if error.use_stderr() {
        when.stderr()
    } else {
        when.stdout()
    };
    let choice = if colored {
        ColorChoice::Always
    } else {
        ColorChoice::Never
    };
    error.format(&mut command.color(choice)).exit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_flag_wins_then_no_color_then_the_terminal() {
        let term = Some(OsStr::new("xterm-256color"));
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        for terminal in [true, false] {
            for no_color in [None, set, empty] {
                assert!(When::Always.decide(terminal, no_color, term));
                assert!(When::Always.decide(terminal, no_color, None));
                assert!(!When::Never.decide(terminal, no_color, term));
            }
        }
        assert!(When::Auto.decide(true, None, term));
        assert!(When::Auto.decide(true, empty, term), "empty is unset");
        assert!(!When::Auto.decide(true, set, term));
        assert!(!When::Auto.decide(false, None, term));
        assert!(!When::Auto.decide(true, None, Some(OsStr::new("dumb"))));
        assert!(!When::Auto.decide(true, None, None));
    }

    fn scan(args: &[&str]) -> When {
        let args: Vec<OsString> = std::iter::once("prog")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        When::scan(&args)
    }

    #[test]
    fn the_command_line_is_read_as_clap_reads_it() {
        assert_eq!(scan(&[]), When::Auto);
        assert_eq!(scan(&["--color", "never", "hi"]), When::Never);
        assert_eq!(scan(&["hi", "--color=always"]), When::Always);
        assert_eq!(scan(&["--color=never", "--color", "always"]), When::Always);
        assert_eq!(scan(&["--color", "sometimes"]), When::Auto);
        assert_eq!(scan(&["--color"]), When::Auto);
        assert_eq!(scan(&["--", "--color", "never"]), When::Auto);
        assert_eq!(scan(&["--colour", "never"]), When::Auto);
    }

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        color: Color,
        #[command(subcommand)]
        sub: Option<Sub>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Run,
    }

    #[test]
    fn the_flag_parses_anywhere_and_defaults_to_auto() {
        let parse = |args: &[&str]| {
            Demo::try_parse_from(std::iter::once("demo").chain(args.iter().copied()))
                .map(|demo| demo.color.when)
        };
        assert_eq!(parse(&[]).ok(), Some(When::Auto));
        assert_eq!(parse(&["--color", "never"]).ok(), Some(When::Never));
        assert_eq!(parse(&["run", "--color=always"]).ok(), Some(When::Always));
        assert!(parse(&["--color", "sometimes"]).is_err());
        Demo::command().debug_assert();
    }
}
