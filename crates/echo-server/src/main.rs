//! The `echo-server` command: parses flags into the library's `Config`, sets
//! up logging, and hands over to `serve`, the start-up path `server()` uses too.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use echo_server::{Config, log};

/// An RFC 862 echo server: every byte a client sends comes back unchanged.
///
/// A TCP message ends when the client half-closes its side; the server then
/// finishes echoing and closes. Start it, then try
/// `echo-client "hello"` or `printf hello | nc -N 127.0.0.1 7007`.
#[derive(Debug, Parser)]
#[command(version, after_long_help = AFTER_HELP, after_help = "See --help for signals, exit codes and socket activation.")]
struct Cli {
    #[command(flatten)]
    config: Config,

    /// How log lines are written: `human`, a line of text each, or `json`,
    /// one JSON object each, with the totals as numeric fields, for log
    /// shippers; in JSON the `listening on` lines on stdout are events too,
    /// with `kind` and `address` fields.
    #[arg(
        long,
        value_name = "FORMAT",
        env = "ECHO_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,

    #[command(flatten)]
    generate: echo_generate::Generate,

    #[command(flatten)]
    color: echo_generate::Color,
}

/// The `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// A line of text per event.
    Human,
    /// A JSON object per event.
    Json,
}

const AFTER_HELP: &str = "\
Shutdown:
  Ctrl-C (SIGINT), SIGTERM, SIGHUP, or Ctrl-D when stdin is a terminal stop
  accepting, let connections in flight finish within --grace, then exit.
  With stdin at /dev/null or a pipe, as under a process manager, end of input
  is ignored. SIGHUP ignored at start (`nohup echo-server &`) stays ignored.
  A second signal once the drain has started exits at once (signals that
  arrive together count as one).
  SIGUSR1 logs the running totals without stopping.

Exit status:
  0    stopped cleanly (after the drain, even if it had to close connections)
  1    could not start (address in use, permission denied, bad address)
  2    bad command line
  129  second SIGHUP once the drain has started
  130  second SIGINT once the drain has started
  143  second SIGTERM once the drain has started

Socket activation:
  With LISTEN_FDS set (systemd, or any launcher speaking its protocol), the
  inherited TCP, UDP and Unix stream sockets are served and --listen is ignored.

Logging:
  Logs go to stderr; RUST_LOG sets the level (default info; debug shows each
  connection). Stdout carries only the `listening on` lines. A stderr that
  is closed, full or not read never stops the server: lines that cannot be
  written are dropped, and their count is in the totals. With --log-format
  json every line the server writes is a JSON object: the start-up `error:`
  line, and on stdout each `listening on` line, an event with `kind` and
  `address` fields. Only the command-line errors and --help, which come
  before logging starts, stay plain text.

Service manager:
  With NOTIFY_SOCKET set (systemd's Type=notify), the server sends READY=1
  once every listener is bound and announced, STOPPING=1 when the drain
  starts, each with a STATUS= line of what it is doing, and the totals as
  STATUS= on SIGUSR1. Notifications never block: when the service manager
  does not read, READY=1 and STOPPING=1 are retried until they go (the exit
  does not wait for them), and STATUS= lines that cannot go are dropped and
  counted in notify_dropped. NOTIFY_SOCKET may name a path, or an abstract
  socket as @name.

Manual and completions:
  echo-server --generate man | man -l -    this help as a man page
  echo-server --generate complete-bash     bash's completions (also complete-zsh,
                                           complete-fish, complete-powershell)
  docs/install.md says where each goes; `cargo xtask dist` lays them all out.";

/// How long the server waits at exit for its last log lines to be written.
const EXIT_LOG_FLUSH: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli: Cli = echo_generate::color::parse();
    if let Some(kind) = cli.generate.kind {
        return generate(kind, cli.generate.dir.as_deref());
    }
    let format = match cli.log_format {
        LogFormat::Human => log::Format::Human,
        LogFormat::Json => log::Format::Json,
    };
    log::init(format, cli.color.when.stderr());
    let status = match echo_server::serve(&cli.config) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            log::error_line(&format!("{:#}", anyhow::Error::from(err)));
            ExitCode::FAILURE
        }
    };
    log::flush(EXIT_LOG_FLUSH);
    status
}

/// `--generate`: the man pages or a completion script, and nothing else, so
/// before logging starts and without a socket.
fn generate(kind: echo_generate::Kind, dir: Option<&Path>) -> ExitCode {
    echo_generate::run(Cli::command(), kind, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches as _;

    #[test]
    fn the_command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn generate_is_a_flag_of_its_own() {
        let cli =
            Cli::try_parse_from(["echo-server", "--generate", "complete-bash"]).expect("parses");
        assert_eq!(cli.generate.kind, Some(echo_generate::Kind::CompleteBash));
    }

    #[test]
    fn a_bare_command_line_is_the_default_config() {
        // The environment is taken out of the parse, not out of the process:
        // tests run in parallel, and an ECHO_* variable of the shell would
        // otherwise decide the outcome.
        let command = Cli::command().mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["echo-server"])
            .expect("parses");
        let cli = Cli::from_arg_matches(&matches).expect("parses");
        assert_eq!(cli.config, Config::default());
        assert_eq!(cli.log_format, LogFormat::Human);
    }
}
