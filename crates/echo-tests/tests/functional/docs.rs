//! The docs pages and the flags the binaries accept cannot drift apart: every
//! long flag a binary (or an echo-bench scenario) lists in its `--help` is
//! explained on that binary's page, and no page names a flag of ours that the
//! binary it is given to rejects. The flags come from the built binaries'
//! `--help`, never from a list kept by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use echo_tests::binary;

/// Each binary and the pages that explain its flags, relative to the workspace root.
const PAGES: [(&str, &[&str]); 3] = [
    ("echo-server", &["docs/server.md", "docs/operations.md"]),
    ("echo-client", &["docs/client.md"]),
    ("echo-bench", &["docs/bench.md"]),
];

/// The pages searched for flags the binaries reject, besides every page in `docs/`.
const FRONT_PAGES: [&str; 2] = ["README.md", "BENCHMARKS.md"];

/// clap's own flags, which every binary has and no page needs to explain.
const CLAP_FLAGS: [&str; 2] = ["help", "version"];

/// Long flags of other tools that our pages name: cargo's, `cargo xtask`'s,
/// podman's, kubectl's and kubernetes-validate's. Anything else that looks
/// like a flag must be one our binaries accept.
const FOREIGN_FLAGS: [&str; 17] = [
    "locked",
    "target",
    "path",
    "root",
    "release",
    "reference",
    "rounds",
    "containers",
    "rm",
    "entrypoint",
    "runtime",
    "ulimit",
    "restart",
    "image",
    "command",
    "replicas",
    "strict",
];

/// The workspace root, two levels above this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(page: &str) -> String {
    std::fs::read_to_string(root().join(page)).unwrap_or_else(|error| panic!("{page}: {error}"))
}

/// `name args... --help`, run as a process, with none of our settings from the environment.
fn help(name: &str, args: &[&str]) -> String {
    let output = Command::new(binary(name))
        .args(args)
        .arg("--help")
        .env_remove("ECHO_ADDR")
        .env_remove("ECHO_UDP")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {name}: {error}"));
    assert!(
        output.status.success(),
        "{name} {args:?} --help failed: {output:?}"
    );
    String::from_utf8(output.stdout).expect("--help is UTF-8")
}

/// The long flags an option list of clap's `--help` defines: lines that start
/// with `  -x, --flag` or `      --flag`, never a mention inside a description,
/// which clap indents further.
fn long_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("      --").or_else(|| {
                let short = line.strip_prefix("  -")?;
                let mut chars = short.chars();
                chars.next().filter(char::is_ascii_alphanumeric)?;
                chars.as_str().strip_prefix(", --")
            })?;
            let name: String = rest.chars().take_while(|&c| is_flag_char(c)).collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn is_flag_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// echo-bench's scenarios, from the `Commands:` list of its `--help`, clap's `help` aside.
fn scenarios(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let name = line.strip_prefix("  ")?.split_whitespace().next()?;
            (line.as_bytes().get(2) != Some(&b' ') && name != "help").then(|| name.to_owned())
        })
        .collect()
}

/// What each command accepts: `"echo-server"`, `"echo-client"`, `"echo-bench"`
/// (its flags without a scenario) and `"echo-bench conn"` and so on.
fn accepted() -> BTreeMap<String, BTreeSet<String>> {
    let mut commands = BTreeMap::new();
    for (name, _) in PAGES {
        let top = help(name, &[]);
        if name == "echo-bench" {
            let scenarios = scenarios(&top);
            assert!(
                scenarios.iter().any(|scenario| scenario == "udp"),
                "no scenarios found in echo-bench --help:\n{top}"
            );
            for scenario in scenarios {
                let flags = long_flags(&help(name, &[&scenario]));
                commands.insert(format!("{name} {scenario}"), flags);
            }
        }
        commands.insert(name.to_owned(), long_flags(&top));
    }
    commands
}

/// The `--flag`s a text names: `--` and a lowercase name, not preceded by a
/// word character or a hyphen (so `foo--bar` and `---` are not flags).
fn named_flags(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut flags = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("--") {
        let start = at + offset;
        at = start + 2;
        let before = start.checked_sub(1).map(|i| bytes[i] as char);
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|&c| is_flag_char(c))
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            at += name.len();
            flags.push(name.trim_end_matches('-').to_owned());
        }
    }
    flags
}

/// Whether `page` explains `--flag`: it names it as a whole flag, not as the
/// start of a longer one (`--generate` inside `--generate-dir` does not count).
fn explains(page: &str, flag: &str) -> bool {
    named_flags(page).iter().any(|named| named == flag)
}

/// Every long flag a command lists in `--help` but its pages do not name.
fn unexplained(accepted: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, pages) in PAGES {
        let text: String = pages.iter().map(|page| read(page)).collect();
        let own = accepted
            .iter()
            .filter(|(command, _)| command.split(' ').next() == Some(name));
        for (command, flags) in own {
            for flag in flags {
                if !CLAP_FLAGS.contains(&flag.as_str()) && !explains(&text, flag) {
                    missing.push(format!(
                        "`{command}` accepts --{flag}, which {} does not explain",
                        pages.join(" or ")
                    ));
                }
            }
        }
    }
    missing
}

/// The code of a page: each line of a fenced block, and each inline `code` span.
fn code_spans(page: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            spans.push(line);
        } else {
            spans.extend(line.split('`').skip(1).step_by(2));
        }
    }
    spans
}

/// In one span of code, each invocation of our binaries (`echo-bench udp ...`,
/// `cargo run -p echo-client -- ...`) and the long flags given to it, up to
/// the end of that command (`|`, `;`, `&`, `#`, `)`), or `--` for echo-client.
fn invocations(span: &str, accepted: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    let tokens: Vec<&str> = span.split_whitespace().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let name = tokens[i];
        i += 1;
        if !PAGES.iter().any(|(binary, _)| *binary == name) {
            continue;
        }
        let mut command = name.to_owned();
        if tokens.get(i) == Some(&"--") && i >= 2 && tokens[i - 2] == "-p" {
            i += 1;
        }
        if let Some(scenario) = tokens.get(i)
            && accepted.contains_key(&format!("{name} {scenario}"))
        {
            command = format!("{name} {scenario}");
            i += 1;
        }
        while let Some(&token) = tokens.get(i) {
            if ["|", "||", ";", "&", "&&", "#", ")", "--"].contains(&token)
                || PAGES.iter().any(|(binary, _)| *binary == token)
            {
                break;
            }
            i += 1;
            if let Some(flag) = token.strip_prefix("--") {
                let flag = flag.split('=').next().unwrap_or(flag);
                found.push((command.clone(), flag.to_owned()));
            }
        }
    }
    found
}

/// Every `--flag` a page names that none of our binaries accepts (other
/// tools' aside), and every flag given in code to one of our commands that
/// this command rejects.
fn rejected(
    pages: &[(String, String)],
    accepted: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let ours: BTreeSet<&str> = accepted.values().flatten().map(String::as_str).collect();
    let mut wrong = Vec::new();
    for (path, page) in pages {
        for flag in named_flags(page) {
            if !ours.contains(flag.as_str()) && !FOREIGN_FLAGS.contains(&flag.as_str()) {
                wrong.push(format!(
                    "{path} names --{flag}, which no binary of ours accepts"
                ));
            }
        }
        for span in code_spans(page) {
            for (command, flag) in invocations(span, accepted) {
                let flags = &accepted[&command];
                if !flags.contains(&flag) && !CLAP_FLAGS.contains(&flag.as_str()) {
                    wrong.push(format!(
                        "{path} gives --{flag} to `{command}`, which rejects it: `{span}`"
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    wrong
}

/// README.md, BENCHMARKS.md and every page in `docs/`, with their paths.
fn all_pages() -> Vec<(String, String)> {
    let mut paths: Vec<String> = FRONT_PAGES.iter().map(|page| (*page).to_owned()).collect();
    let docs = std::fs::read_dir(root().join("docs")).expect("docs/ is readable");
    for entry in docs {
        let name = entry.expect("docs/ lists").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            paths.push(format!("docs/{name}"));
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| (read(&path), path))
        .map(|(page, path)| (path, page))
        .collect()
}

#[test]
fn every_flag_a_binary_accepts_is_explained_on_its_page() {
    let accepted = accepted();
    let missing = unexplained(&accepted);
    assert!(
        missing.is_empty(),
        "flags without docs:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_page_names_a_flag_the_binary_rejects() {
    let accepted = accepted();
    let wrong = rejected(&all_pages(), &accepted);
    assert!(
        wrong.is_empty(),
        "flags the binaries reject:\n{}",
        wrong.join("\n")
    );
}

/// The checks themselves can fail: a flag left out of a page, a flag no
/// binary has, and a real flag given to the wrong binary are each reported
/// with the flag and the page.
#[test]
fn the_checks_name_the_flag_and_the_page() {
    let accepted = accepted();
    assert!(accepted["echo-server"].contains("udp-rate"), "{accepted:?}");
    assert!(
        accepted["echo-bench udp"].contains("max-loss"),
        "{accepted:?}"
    );
    assert!(!explains("`--generate-dir DIR`", "generate"));
    assert!(explains("`--generate` and `--generate-dir`", "generate"));

    let page = "Run `echo-server --udp --udp-rat 5` or `cargo run -p echo-bench -- udp --splice never`.\n\
                ```sh\nprintf x | nc -N 127.0.0.1 7 && echo-client -- --not-a-flag\n```\n";
    let wrong = rejected(&[("docs/x.md".to_owned(), page.to_owned())], &accepted);
    assert_eq!(
        wrong,
        [
            "docs/x.md gives --splice to `echo-bench udp`, which rejects it: `cargo run -p echo-bench -- udp --splice never`",
            "docs/x.md gives --udp-rat to `echo-server`, which rejects it: `echo-server --udp --udp-rat 5`",
            "docs/x.md names --not-a-flag, which no binary of ours accepts",
            "docs/x.md names --udp-rat, which no binary of ours accepts",
        ],
    );
}
