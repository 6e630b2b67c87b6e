//! The systemd units in `contrib/` as a security review reads them: valid,
//! exposed at most 2.0 by `systemd-analyze security`, and with a sandbox
//! that lets the real server do all it does.
//!
//! systemd is not PID 1 here, so the unit cannot be started: instead the
//! server runs under `strace`, as the unit would start it (socket
//! activation, a notify socket, the unit's flags), through a workload that
//! makes every kind of system call it makes in service, and each call, socket
//! family, memory mapping and file it touches is checked against the unit.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use command_fds::{CommandFdExt, FdMapping};
use echo_client::Client;
use echo_proto::{Target, pattern};
use echo_tests::{Server, TempDir, WAIT, binary, read_all, server_accepts};

/// The highest exposure `systemd-analyze security` may give the service.
const MAX_EXPOSURE: f64 = 2.0;

/// A stream big enough that the server splices it through a pipe.
const BULK_BYTES: usize = 8 << 20;

/// The Debian package of each tool these tests need, for the message that
/// says what to install.
const TOOLS: [(&str, &str); 2] = [("systemd-analyze", "systemd"), ("strace", "strace")];

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(name)
}

fn unit(name: &str) -> String {
    let path = unit_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The values of `key=` in `unit`, in order.
fn settings<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// Whether `tool` is installed; without it a test is skipped with a
/// message, or fails under CI (`CI` set), which must install it.
fn have(tool: &str) -> bool {
    let package = TOOLS
        .iter()
        .find(|(name, _)| *name == tool)
        .map_or(tool, |(_, package)| package);
    let found = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        let missing = format!("{tool} is not installed (Debian package {package})");
        assert!(std::env::var_os("CI").is_none(), "{missing}");
        eprintln!("skipped: {missing}");
    }
    found
}

fn systemd_analyze(args: &[&str]) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .arg("--no-pager")
        .stdin(Stdio::null())
        .output()
        .expect("systemd-analyze runs");
    let said = [output.stdout, output.stderr].concat();
    (
        output.status.success(),
        String::from_utf8_lossy(&said).into_owned(),
    )
}

#[test]
fn the_service_is_exposed_at_most_2_0() {
    if !have("systemd-analyze") {
        return;
    }
    let path = unit_path("echo-server.service");
    let (_, report) = systemd_analyze(&[
        "security",
        "--offline=true",
        path.to_str().expect("a UTF-8 path"),
    ]);
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for echo-server.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    assert!(exposure <= MAX_EXPOSURE, "exposure {exposure}:\n{report}");
}

#[test]
fn the_units_are_valid_and_serve_port_7_on_both_families() {
    if !have("systemd-analyze") {
        return;
    }
    // verify wants the ExecStart binary to exist: a copy points at the built one.
    let dir = TempDir::new("units");
    let service = unit("echo-server.service").replace(
        "/usr/local/bin/echo-server",
        binary("echo-server").to_str().expect("a UTF-8 path"),
    );
    std::fs::write(dir.path().join("echo-server.service"), service).expect("written");
    std::fs::write(
        dir.path().join("echo-server.socket"),
        unit("echo-server.socket"),
    )
    .expect("written");
    let paths = ["echo-server.service", "echo-server.socket"]
        .map(|name| dir.path().join(name).to_string_lossy().into_owned());
    let (valid, said) = systemd_analyze(&["verify", "--man=no", &paths[0], &paths[1]]);
    assert!(valid && said.is_empty(), "{said}");

    let socket = unit("echo-server.socket");
    for key in ["ListenStream", "ListenDatagram"] {
        assert_eq!(
            settings(&socket, key)
                .into_iter()
                .filter(|address| !address.starts_with('/'))
                .collect::<Vec<_>>(),
            ["127.0.0.1:7", "[::1]:7"],
            "{key}"
        );
    }
    for name in ["echo-server.service", "echo-server.socket"] {
        assert_eq!(
            settings(&unit(name), "Documentation"),
            ["man:echo-server(1)"],
            "{name}"
        );
    }
}

/// The system calls a `SystemCallFilter=` value names, its groups
/// (`@system-service`) expanded as `systemd-analyze syscall-filter` lists them.
fn syscalls(names: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for name in names.split_whitespace() {
        match name.strip_prefix('@') {
            None => {
                all.insert(name.to_owned());
            }
            Some(_) => {
                let (known, listed) = systemd_analyze(&["syscall-filter", name]);
                assert!(known, "{name}: {listed}");
                let members: Vec<&str> = listed
                    .lines()
                    .skip(1)
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .collect();
                all.extend(syscalls(&members.join(" ")));
            }
        }
    }
    all
}

/// The system calls the service's `SystemCallFilter=` lines allow, read as
/// systemd reads them: the first makes an allow-list, each later one adds
/// to it, or with `~` takes away.
fn allowed_syscalls(service: &str) -> BTreeSet<String> {
    let filters = settings(service, "SystemCallFilter");
    assert!(
        filters.first().is_some_and(|first| !first.starts_with('~')),
        "the filter is an allow-list, not a deny-list: {filters:?}"
    );
    let mut allowed = BTreeSet::new();
    for filter in filters {
        match filter.strip_prefix('~') {
            Some(denied) => {
                for call in syscalls(denied) {
                    allowed.remove(&call);
                }
            }
            None => allowed.extend(syscalls(filter)),
        }
    }
    allowed
}

/// One system call of a trace: the call's name and its arguments as
/// `strace` wrote them (as far as the line goes).
struct Call<'a> {
    name: &'a str,
    args: &'a str,
}

/// The calls of `trace` (`strace -f` lines, `PID name(args) = result`) made
/// from the execution of `program` on, the shell that started it left out,
/// and the pid that executed it, which is the server's.
fn calls<'a>(trace: &'a str, program: &Path) -> (Vec<Call<'a>>, &'a str) {
    let exec = format!(" execve(\"{}\"", program.display());
    let found = trace
        .find(&exec)
        .unwrap_or_else(|| panic!("no{exec} in the trace"));
    let start = trace[..found].rfind('\n').map_or(0, |newline| newline + 1);
    let calls = trace[start..]
        .lines()
        .filter_map(|line| {
            // The pid is padded to five places: `812   read(...)`.
            let call = line
                .split_once(' ')
                .map_or(line, |(_, call)| call.trim_start());
            let (name, args) = call.split_once('(')?;
            let named = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            // `<... name resumed>`, signals (`---`) and exits (`+++`) are no new call.
            named.then_some(Call { name, args })
        })
        .collect();
    (calls, trace[start..found].trim_end())
}

/// The quoted paths among a call's arguments.
fn paths<'a>(call: &Call<'a>) -> impl Iterator<Item = &'a str> {
    call.args
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|text| text.starts_with('/'))
}

/// Files under /dev that `PrivateDevices=yes` leaves.
const PRIVATE_DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// The `strace -f` trace of a life of the server as the units start it:
/// socket activation (TCP, UDP, Unix), a notify socket, the service's flags;
/// echoes of each kind, a bulk stream, a metrics scrape once the server has
/// `--metrics`, an idle close, SIGUSR1's totals and the drain.
fn traced_life(service: &str) -> String {
    let dir = TempDir::new("systemd");
    let trace_path = dir.path().join("trace");

    // The sockets systemd would pass: TCP, UDP and Unix, as echo-server.socket has them.
    let tcp = TcpListener::bind("127.0.0.1:0").expect("tcp");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let unix_path = dir.path().join("echo.sock");
    let unix = UnixListener::bind(&unix_path).expect("unix");
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(WAIT)).expect("timeout");

    // The unit's own flags, with an idle timeout short enough to see one,
    // and a metrics endpoint once the server has one.
    let exec_start = settings(service, "ExecStart");
    let mut flags: Vec<String> = exec_start
        .first()
        .expect("an ExecStart line")
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    match flags.iter().position(|flag| flag == "--idle-timeout") {
        Some(at) => flags[at + 1] = "1s".to_owned(),
        None => flags.extend(["--idle-timeout".to_owned(), "1s".to_owned()]),
    }
    let metrics = server_accepts("--metrics");
    if metrics {
        flags.extend(["--metrics".to_owned(), "127.0.0.1:0".to_owned()]);
    }

    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-s", "256", "-o"])
        .arg(&trace_path)
        // LISTEN_PID must be the server's own pid; `exec` keeps the shell's.
        .args(["sh", "-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(binary("echo-server"))
        .args(&flags)
        .env("LISTEN_FDS", "3")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .fd_mappings(
            [OwnedFd::from(tcp), udp.into(), unix.into()]
                .into_iter()
                .zip(3..)
                .map(|(parent_fd, child_fd)| FdMapping {
                    parent_fd,
                    child_fd,
                })
                .collect(),
        )
        .expect("descriptors map");
    let mut server = Server::start_command(&mut command, 3 + usize::from(metrics));
    server.serving_as_grandchild();
    let mut ready = [0u8; 512];
    let len = notify.recv(&mut ready).expect("READY=1 comes");
    assert!(ready[..len].starts_with(b"READY=1\n"), "{ready:?}");

    let tcp = server.listener_addr("tcp", 0);
    let echo = Client::new(tcp).timeout(Some(WAIT));
    assert_eq!(echo.echo_text("small").expect("echoed"), "small");
    let bulk = pattern(7, BULK_BYTES);
    assert!(
        echo.echo(&bulk).expect("echoed") == bulk,
        "the bulk echo differs"
    );
    let udp = Client::new(server.listener_addr("udp", 0)).timeout(Some(WAIT));
    assert_eq!(udp.echo_udp(b"datagram").expect("echoed"), b"datagram");
    let unix_target: Target = format!("unix:{}", unix_path.display())
        .parse()
        .expect("a Unix target");
    let unix = Client::new(unix_target).timeout(Some(WAIT));
    assert_eq!(unix.echo_text("local").expect("echoed"), "local");
    if metrics {
        let mut scrape = TcpStream::connect(server.listener_addr("metrics", 0)).expect("metrics");
        scrape.set_read_timeout(Some(WAIT)).expect("timeout");
        scrape
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("asked");
        let page = read_all(&mut scrape, 1 << 20).expect("answered");
        assert!(page.starts_with(b"HTTP/1.1 200"), "{page:?}");
    }

    let mut idle = TcpStream::connect(tcp).expect("connects");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    // The sweep closes it: end of stream, before the read timeout.
    assert_eq!(read_all(&mut idle, 64).expect("closed"), b"");
    // The totals, also as a STATUS= notification.
    assert_eq!(server.total("idle_closed"), 1);

    assert_eq!(server.stop_during_an_exchange().code(), Some(0));

    std::fs::read_to_string(&trace_path).expect("the trace")
}

#[test]
fn the_sandbox_allows_every_call_the_server_makes() {
    if !(have("systemd-analyze") && have("strace")) {
        return;
    }
    let service = unit("echo-server.service");
    let trace = traced_life(&service);
    let (calls, server_pid) = calls(&trace, &binary("echo-server"));
    let names: BTreeSet<&str> = calls.iter().map(|call| call.name).collect();
    for expected in ["accept4", "splice", "recvfrom", "sendto", "ioctl"] {
        assert!(
            names.contains(expected),
            "no {expected} in the workload: {names:?}"
        );
    }
    let allowed = allowed_syscalls(&service);
    let denied: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !allowed.contains(*name))
        .collect();
    assert!(denied.is_empty(), "SystemCallFilter= denies {denied:?}");

    let families: BTreeSet<&str> = settings(&service, "RestrictAddressFamilies")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    for call in calls
        .iter()
        .filter(|call| matches!(call.name, "socket" | "socketpair"))
    {
        let family = call.args.split(',').next().unwrap_or_default();
        assert!(
            families.contains(family),
            "RestrictAddressFamilies= denies {}({})",
            call.name,
            call.args
        );
    }

    assert_eq!(settings(&service, "MemoryDenyWriteExecute"), ["yes"]);
    for call in &calls {
        let writable_code = match call.name {
            "mmap" => call.args.contains("PROT_WRITE") && call.args.contains("PROT_EXEC"),
            "mprotect" | "pkey_mprotect" => call.args.contains("PROT_EXEC"),
            _ => false,
        };
        assert!(
            !writable_code,
            "MemoryDenyWriteExecute= denies {}({})",
            call.name, call.args
        );
    }

    assert_eq!(settings(&service, "ProcSubset"), ["pid"]);
    assert_eq!(settings(&service, "ProtectProc"), ["invisible"]);
    assert_eq!(settings(&service, "PrivateDevices"), ["yes"]);
    for path in calls.iter().flat_map(paths) {
        if let Some(under_proc) = path.strip_prefix("/proc/") {
            let process = under_proc.split('/').next().unwrap_or_default();
            assert!(
                ["self", "thread-self", server_pid].contains(&process),
                "ProcSubset=pid or ProtectProc=invisible hides {path}"
            );
        }
        if path.starts_with("/dev/") {
            assert!(
                PRIVATE_DEVICES.contains(&path),
                "PrivateDevices= hides {path}"
            );
        }
    }
}
