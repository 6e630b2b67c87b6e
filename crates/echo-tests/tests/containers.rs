//! The release as it ships: the archive of `cargo xtask dist`, the image of
//! `cargo xtask image`, and `deploy/kubernetes/`, validated and run under
//! `podman kube play`.
//!
//! Every test here is ignored by a plain `cargo test`, which has no release
//! to test. `cargo xtask ci --containers` builds one, names it in
//! `ECHO_TEST_ARCHIVE` and `ECHO_TEST_IMAGE`, and runs the tests whose tools
//! it found, picked by the start of their names: `release_` (tar, ldd,
//! readelf), `image_` and `kube_` (podman), `manifests_` (kubernetes-validate).
//!
//! A container runs here only with runc (crun fails on hybrid cgroups) and
//! with nofile and nproc limits no higher than this process's own (the
//! default 1048576 needs CAP_SYS_RESOURCE): that is this harness's business,
//! never the image's or the manifests'.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use echo_client::Client;
use echo_tests::metrics::{count, scrape};
use echo_tests::{Server, TempDir, binary};
use nix::sys::resource::{Resource, getrlimit};

/// How long a container may take to stop after SIGTERM: the server's
/// default `--grace` (5 s) plus podman's own bookkeeping.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path or name `cargo xtask ci --containers` passes in the environment.
fn given(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: these tests run through `cargo xtask ci --containers`")
    })
}

/// Runs `program` with `args`, failing the test unless it succeeds.
fn run_ok(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.to_string_lossy()));
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}):\n{}{}",
        program.to_string_lossy(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A container's limit of `resource`, as `soft:hard`: this process's own soft
/// limit, and at most 20,000, since runc is refused even the host's own
/// limit of processes here (96,369 refused, 20,000 taken).
fn limit(resource: Resource) -> String {
    let (soft, _) = getrlimit(resource).expect("getrlimit");
    let limit = soft.min(20_000);
    format!("{limit}:{limit}")
}

/// `podman`'s arguments that let a container start on this kind of machine.
fn runtime_args() -> Vec<String> {
    vec![
        "--runtime".to_owned(),
        "runc".to_owned(),
        "--ulimit".to_owned(),
        format!("nofile={}", limit(Resource::RLIMIT_NOFILE)),
        "--ulimit".to_owned(),
        format!("nproc={}", limit(Resource::RLIMIT_NPROC)),
    ]
}

/// A container or pod removed, whatever state it is in, when the test ends.
struct Removed(Vec<String>);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0"])
            .args(&self.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A name no other test, or other run of this one, uses at the same time.
fn unique(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("echo-test-{}-{tag}-{n}", std::process::id())
}

/// The host side of a published container port: `podman port NAME 7007/tcp`.
fn published(container: &str, port: &str) -> SocketAddr {
    let output = run_ok("podman", &["port", container, port]);
    let said = text(&output.stdout);
    said.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("podman port {container} {port} said {said:?}"))
}

/// A message of `len` bytes that is not all the same byte, so a reordered or
/// repeated piece shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Echoes `message` over TCP to `addr` and checks every byte came back.
fn assert_tcp_echo(addr: SocketAddr, message: &[u8]) {
    let reply = Client::new(addr)
        .timeout(Some(Duration::from_secs(10)))
        .echo(message)
        .unwrap_or_else(|err| panic!("TCP echo through {addr}: {err}"));
    assert!(
        reply == message,
        "TCP echo through {addr}: {} bytes back for {}",
        reply.len(),
        message.len()
    );
}

/// Echoes one datagram to `addr` with `echo-client --udp`, which resends it
/// within its timeout until the reply comes (the first may meet a port
/// mapping that is still being set up), and checks the reply.
fn assert_udp_echo(addr: SocketAddr, message: &str) {
    let output = run_ok(
        binary("echo-client"),
        &[
            "--udp",
            "--timeout",
            "10s",
            "-a",
            &addr.to_string(),
            message,
        ],
    );
    assert_eq!(text(&output.stdout), format!("{message}\n"));
}

#[test]
#[ignore = "needs a release: cargo xtask ci --containers"]
fn release_archive_is_static_stripped_and_serves_by_name() {
    let archive = PathBuf::from(given("ECHO_TEST_ARCHIVE"));
    let dist = archive.parent().expect("the archive is in a directory");
    let file_name = archive
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a UTF-8 name");
    let sums = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dist)
        .output()
        .expect("sha256sum runs");
    assert!(sums.status.success(), "{}", text(&sums.stderr));
    assert_eq!(text(&sums.stdout), format!("{file_name}: OK\n"));

    let unpacked = TempDir::new("release");
    run_ok(
        "tar",
        &[
            "-xzf",
            archive.to_str().expect("UTF-8"),
            "-C",
            unpacked.path().to_str().expect("UTF-8"),
        ],
    );
    let name = file_name.strip_suffix(".tar.gz").expect("a .tar.gz");
    let tree = unpacked.path().join(name);
    let inside = Command::new("sha256sum")
        .args(["-c", "--strict", "--quiet", "SHA256SUMS"])
        .current_dir(&tree)
        .output()
        .expect("sha256sum runs");
    assert!(inside.status.success(), "{}", text(&inside.stdout));
    for file in [
        "LICENSE",
        "README.md",
        "lib/systemd/system/echo-server.service",
        "lib/systemd/system/echo-server.socket",
        "share/man/man1/echo-server.1",
        "share/man/man1/echo-client.1",
        "share/man/man1/echo-bench.1",
        "share/bash-completion/completions/echo-client",
    ] {
        assert!(tree.join(file).is_file(), "{file} is not in the archive");
    }

    for program in ["echo-server", "echo-client", "echo-bench"] {
        let path = tree.join("bin").join(program);
        let ldd = Command::new("ldd").arg(&path).output().expect("ldd runs");
        let said = text(&ldd.stdout) + &text(&ldd.stderr);
        assert!(
            said.contains("not a dynamic executable") || said.contains("statically linked"),
            "{program} is dynamic: {said}"
        );
        let sections =
            text(&run_ok("readelf", &["-S", "-W", path.to_str().expect("UTF-8")]).stdout);
        for section in [".symtab", ".debug_info", ".debug_line"] {
            assert!(!sections.contains(section), "{program} keeps {section}");
        }
        let version = run_ok(&path, &["--version"]);
        assert_eq!(
            text(&version.stdout),
            format!("{program} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    // glibc linked statically still reads /etc/hosts (and asks DNS) by
    // itself since 2.34: `localhost` resolves with no libnss on disk.
    let server = Server::start_command(
        Command::new(tree.join("bin/echo-server"))
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null()),
        1,
    );
    let port = server.addr().port();
    let output = run_ok(
        tree.join("bin/echo-client"),
        &[
            "-a",
            &format!("localhost:{port}"),
            "by name, from the archive",
        ],
    );
    assert_eq!(text(&output.stdout), "by name, from the archive\n");
}

#[test]
#[ignore = "needs an image: cargo xtask ci --containers"]
fn image_is_small_unprivileged_and_listens_on_every_address() {
    let image = given("ECHO_TEST_IMAGE");
    let output = run_ok(
        "podman",
        &[
            "image",
            "inspect",
            "--format",
            "{{.Size}} {{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.Env}}",
            &image,
        ],
    );
    let said = text(&output.stdout);
    let mut fields = said.trim().splitn(5, ' ');
    let size: u64 = fields.next().and_then(|s| s.parse().ok()).expect("a size");
    assert!(size <= 20_000_000, "{image} weighs {size} bytes: {said}");
    assert_eq!(fields.next(), Some("65534:65534"), "{said}");
    assert_eq!(
        fields.next(),
        Some(r#"["/usr/local/bin/echo-server"]"#),
        "{said}"
    );
    assert_eq!(fields.next(), Some(r#"["--udp"]"#), "{said}");
    let env = fields.next().unwrap_or_default();
    assert!(env.contains("\"ECHO_LISTEN=0.0.0.0:7007\""), "{said}");
    assert!(env.contains("\"ECHO_LOG_FORMAT=json\""), "{said}");
    assert!(env.contains("\"ECHO_THREADS=auto\""), "{said}");
    assert!(env.contains("\"ECHO_METRICS=0.0.0.0:9007\""), "{said}");
    assert!(
        !env.contains("ECHO_ADDR") && !env.contains("ECHO_UDP"),
        "read by echo-client too: {said}"
    );
}

/// Runs the image with `args`, echoes TCP and UDP through ports published on
/// loopback, reads the counters of that through its published metrics port,
/// probes from inside with its own echo-client, and stops it with SIGTERM:
/// exit 0 within the grace period, every line it wrote a JSON object.
fn serve_stop(args: &[&str]) {
    let image = given("ECHO_TEST_IMAGE");
    let name = unique("run");
    let _removed = Removed(vec![name.clone()]);
    let mut server = Server::start_command(
        Command::new("podman")
            .arg("run")
            .args(runtime_args())
            .args(["--name", &name])
            .args(["--publish", "127.0.0.1::7007/tcp"])
            .args(["--publish", "127.0.0.1::7007/udp"])
            .args(["--publish", "127.0.0.1::9007/tcp"])
            .arg(&image)
            .args(args)
            .stdin(Stdio::null()),
        3,
    );
    assert_eq!(
        server.listeners(),
        [
            "tcp 0.0.0.0:7007",
            "udp 0.0.0.0:7007",
            "metrics 0.0.0.0:9007"
        ]
    );

    let message = pattern(256 * 1024);
    assert_tcp_echo(published(&name, "7007/tcp"), &message);
    assert_udp_echo(
        published(&name, "7007/udp"),
        "a datagram through the mapped port",
    );
    let metrics = scrape(published(&name, "9007/tcp"));
    assert_eq!(count(&metrics, "echo_connections_accepted_total"), 1);
    assert_eq!(
        count(&metrics, "echo_stream_echoed_bytes_total"),
        message.len() as u64
    );
    // echo-client resends a datagram whose reply is late: at least one answered.
    assert!(count(&metrics, "echo_udp_echoed_datagrams_total") >= 1);
    let probe = run_ok(
        "podman",
        &[
            "exec",
            &name,
            "/usr/local/bin/echo-client",
            "--check",
            "probe from inside",
        ],
    );
    assert_eq!(text(&probe.stdout), "probe from inside\n");

    run_ok("podman", &["kill", "--signal", "TERM", &name]);
    let status = server.wait_exit(STOP_LIMIT);
    assert!(
        status.success(),
        "stopped with {status}:\n{}",
        server.stderr()
    );
    let log = server.stderr();
    for line in server
        .announcements()
        .iter()
        .map(String::as_str)
        .chain(log.lines())
    {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()),
            "a line on stdout or stderr that is not a JSON object: {line}\n{log}"
        );
    }
    assert!(log.contains(r#""message":"echo-server stopped""#), "{log}");
}

#[test]
#[ignore = "needs an image: cargo xtask ci --containers"]
fn image_serves_tcp_and_udp_by_default_and_stops_on_sigterm() {
    serve_stop(&[]);
}

#[test]
#[ignore = "needs an image: cargo xtask ci --containers"]
fn image_given_udp_serves_the_same() {
    serve_stop(&["--udp"]);
}

/// The probes' commands in `deploy/kubernetes/deployment.yaml`, each written
/// as a one-line `command: [...]`, a flow sequence of quoted strings, which
/// is JSON too.
fn probe_commands(manifest: &str) -> Vec<Vec<String>> {
    manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("command: "))
        .map(|list| serde_json::from_str(list).unwrap_or_else(|err| panic!("{list}: {err}")))
        .collect()
}

/// A port below 32768 (outside Linux's ephemeral range, so no client takes
/// it meanwhile) that is free for TCP and UDP on loopback now, from `from`
/// on if that is in the range.
fn free_low_port(from: u16) -> u16 {
    let start = if (20_000..32_768).contains(&from) {
        from
    } else {
        20_000 + (std::process::id() % 10_000) as u16
    };
    (start..32_768)
        .chain(20_000..start)
        .find(|&port| {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
                && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        })
        .expect("a free port below 32768")
}

#[test]
#[ignore = "needs an image: cargo xtask ci --containers"]
fn kube_play_runs_the_deployment_whose_probes_prove_an_echo_takes_the_docs_load_and_stops_cleanly()
{
    given("ECHO_TEST_IMAGE");
    let manifest = std::fs::read_to_string(root().join("deploy/kubernetes/deployment.yaml"))
        .expect("the manifest");
    // podman 4.3 publishes every containerPort on the host, on all addresses,
    // and makes one pod per replica: one replica, published on loopback only.
    let port = free_low_port(0);
    let metrics_port = free_low_port(port + 1);
    let played: String = manifest
        .replace("replicas: 2", "replicas: 1")
        .lines()
        .flat_map(|line| {
            let mut lines = vec![line.to_owned()];
            let host_port = match line.trim() {
                "containerPort: 7007" => Some(port),
                "containerPort: 9007" => Some(metrics_port),
                other => {
                    assert!(!other.starts_with("containerPort"), "unknown {other}");
                    None
                }
            };
            if let Some(host_port) = host_port {
                let indent = &line[..line.len() - line.trim_start().len()];
                lines.push(format!("{indent}hostIP: 127.0.0.1"));
                lines.push(format!("{indent}hostPort: {host_port}"));
            }
            lines
        })
        .map(|line| line + "\n")
        .collect();
    assert!(
        played.contains("replicas: 1") && played.contains("hostPort"),
        "{played}"
    );
    let dir = TempDir::new("kube");
    let yaml = dir.path().join("deployment.yaml");
    std::fs::write(&yaml, &played).expect("write the manifest");
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={}\", \"nproc={}\"]\n[engine]\nruntime = \"runc\"\n",
            limit(Resource::RLIMIT_NOFILE),
            limit(Resource::RLIMIT_NPROC)
        ),
    )
    .expect("write containers.conf");

    let (pod, container) = ("echo-pod-0", "echo-pod-0-echo-server");
    let _removed = Removed(vec![container.to_owned()]);
    let kube = |verb: &str| {
        Command::new("podman")
            .args(["kube", verb])
            .args(if verb == "play" {
                &["--replace"][..]
            } else {
                &[][..]
            })
            .arg(&yaml)
            .env("CONTAINERS_CONF", &conf)
            .output()
            .expect("podman kube runs")
    };
    struct Down<F: Fn(&str) -> Output>(F);
    impl<F: Fn(&str) -> Output> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)("down");
        }
    }
    let played = kube("play");
    assert!(played.status.success(), "{}", text(&played.stderr));
    let _down = Down(kube);

    // The container's output from its start: its announcement says it serves.
    let logs = Server::start_command(
        Command::new("podman")
            .args(["logs", "--follow", container])
            .stdin(Stdio::null()),
        3,
    );
    assert_eq!(
        logs.listeners(),
        [
            "tcp 0.0.0.0:7007",
            "udp 0.0.0.0:7007",
            "metrics 0.0.0.0:9007"
        ]
    );
    let published: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_tcp_echo(published, &pattern(64 * 1024));
    assert_udp_echo(published, "a datagram to the pod");
    let metrics = scrape(([127, 0, 0, 1], metrics_port).into());
    assert_eq!(count(&metrics, "echo_connections_accepted_total"), 1);

    let probes = probe_commands(&manifest);
    assert_eq!(
        probes.len(),
        2,
        "a readiness and a liveness probe: {probes:?}"
    );
    for probe in &probes {
        let message = probe.last().expect("a probe command has a message");
        let mut args = vec!["exec", container];
        args.extend(probe.iter().map(String::as_str));
        let output = run_ok("podman", &args);
        assert_eq!(text(&output.stdout), format!("{message}\n"));
    }

    // docs/bench.md's three generators started together, as written there,
    // as local processes against the pod; their merged run against the
    // server's own count of connections.
    let before = count(
        &scrape(([127, 0, 0, 1], metrics_port).into()),
        "echo_connections_accepted_total",
    );
    let (merged, generators) = run_docs_recipe(published);
    assert_eq!(merged["generators"], 3, "{merged}");
    let workers = merged["workers"].as_u64().expect("workers");
    assert_eq!(workers, 3 * generators, "{merged}");
    let after = scrape(([127, 0, 0, 1], metrics_port).into());
    // Each generator's workers, and the one connection that checks a server is there.
    assert_eq!(
        count(&after, "echo_connections_accepted_total") - before,
        workers + 3
    );
    assert!(
        merged["exchanges"].as_u64().expect("exchanges") > 0,
        "{merged}"
    );

    run_ok("podman", &["pod", "stop", "--time", "15", pod]);
    let state = run_ok(
        "podman",
        &[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            container,
        ],
    );
    assert_eq!(text(&state.stdout).trim(), "exited 0");
}

/// Runs docs/bench.md's recipe of three generators on one machine, as the
/// page writes it but aimed at `server`, with our echo-bench first on the
/// `PATH`; returns the JSON of `echo-bench merge` of their logs, and the
/// workers each generator ran.
fn run_docs_recipe(server: SocketAddr) -> (serde_json::Value, u64) {
    let page = std::fs::read_to_string(root().join("docs/bench.md")).expect("docs/bench.md");
    let after = page
        .split_once("On one machine, three generators against one server:")
        .expect("the recipe's heading")
        .1;
    let recipe = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the recipe's code block")
        .0;
    assert!(recipe.contains("127.0.0.1:7007"), "{recipe}");
    let workers: u64 = recipe
        .split_once(" -c ")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .expect("the recipe's -c");
    let script = recipe.replace("127.0.0.1:7007", &server.to_string());
    let dir = TempDir::new("recipe");
    let bin = binary("echo-bench");
    let path = std::env::join_paths(
        std::iter::once(bin.parent().expect("a directory").to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ),
    )
    .expect("a PATH");
    // Bounded: the recipe's start is 5 s away and its runs last 10 s.
    let output = Command::new("timeout")
        .args(["120", "bash", "-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", &path)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "the recipe failed ({}):\n{script}\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("3 merged"),
        "{}",
        text(&output.stdout)
    );
    let merged = Command::new(&bin)
        .args(["merge", "--json", "gen1.hlog", "gen2.hlog", "gen3.hlog"])
        .current_dir(dir.path())
        .output()
        .expect("echo-bench merge runs");
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let json = serde_json::from_slice(&merged.stdout).expect("merge --json is JSON");
    (json, workers)
}

#[test]
#[ignore = "needs kubernetes-validate: cargo xtask ci --containers"]
fn manifests_pass_the_kubernetes_schemas_and_name_this_version() {
    let dir = root().join("deploy/kubernetes");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes/")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 2, "{manifests:?}");
    let validate = |path: &Path| {
        Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
            .arg(path)
            .output()
            .expect("kubernetes-validate runs")
    };
    for manifest in &manifests {
        let output = validate(manifest);
        assert!(
            output.status.success(),
            "{}: {}{}",
            manifest.display(),
            text(&output.stdout),
            text(&output.stderr)
        );
        let yaml = std::fs::read_to_string(manifest).expect("read");
        for line in yaml
            .lines()
            .filter(|line| line.trim().starts_with("image:"))
        {
            assert_eq!(
                line.trim(),
                format!("image: localhost/echo:{}", env!("CARGO_PKG_VERSION")),
                "{}",
                manifest.display()
            );
        }
    }
    // The validator can fail: a port that is not a number does.
    let broken = TempDir::new("manifest");
    let path = broken.path().join("deployment.yaml");
    let yaml = std::fs::read_to_string(dir.join("deployment.yaml")).expect("read");
    std::fs::write(
        &path,
        yaml.replace("containerPort: 7007", "containerPort: seven"),
    )
    .expect("write");
    assert!(!validate(&path).status.success());
}
