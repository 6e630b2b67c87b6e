//! Invariants of the code base, checked as ordinary tests so CI has nothing hidden in scripts.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }

    fn workspace_rust_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let mut files = Vec::new();
        rust_files(&root.join("crates"), &mut files);
        rust_files(&root.join("xtask"), &mut files);
        assert!(
            files.len() > 20,
            "found only {} Rust files; is the walk broken?",
            files.len()
        );
        files
    }

    /// The `mod NAME;` declarations of `text` that stand inside a macro
    /// invocation's braces (`cfg_if! { ... }`, say), as `line: text`.
    fn mods_inside_macros(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        // The brace depths at which a macro invocation's body opened: a `{`
        // right after a `!`, as in `cfg_if::cfg_if! {`.
        let mut macros: Vec<usize> = Vec::new();
        let mut depth = 0usize;
        let mut previous = ' ';
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let declaration = code.trim();
            let is_mod = declaration
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ")
                .strip_prefix("mod ")
                .is_some_and(|rest| rest.ends_with(';'));
            if is_mod && !macros.is_empty() {
                found.push(format!("{}: {declaration}", number + 1));
            }
            for character in code.chars() {
                match character {
                    '{' => {
                        depth += 1;
                        if previous == '!' {
                            macros.push(depth);
                        }
                    }
                    '}' => {
                        if macros.last() == Some(&depth) {
                            macros.pop();
                        }
                        depth = depth.saturating_sub(1);
                    }
                    _ => {}
                }
                if !character.is_whitespace() {
                    previous = character;
                }
            }
        }
        found
    }

    #[test]
    fn the_macro_check_finds_a_mod_inside_a_macro_and_only_there() {
        let hidden =
            "cfg_if::cfg_if! {\n    if #[cfg(unix)] {\n        mod hidden;\n    }\n}\nmod plain;\n";
        assert_eq!(mods_inside_macros(hidden), ["3: mod hidden;"]);
        let plain = "#[cfg(target_os = \"linux\")]\npub mod seen;\nfn f() {\n    let x = 1;\n}\n";
        assert!(mods_inside_macros(plain).is_empty());
    }

    /// cargo-mutants, and any tool that reads the source rather than macro
    /// expansions, cannot follow a `mod` declared inside a macro: the module
    /// would silently go untested by it.
    #[test]
    fn no_mod_is_declared_inside_a_macro() {
        let offenders: Vec<String> = workspace_rust_files()
            .into_iter()
            .flat_map(|path| {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                mods_inside_macros(&text)
                    .into_iter()
                    .map(move |found| format!("{}:{found}", path.display()))
            })
            .collect();
        assert!(
            offenders.is_empty(),
            "`mod` declared inside a macro, where tools that read the source cannot follow it: {offenders:#?}"
        );
    }

    #[test]
    fn every_rust_file_says_why_it_exists() {
        let missing: Vec<_> = workspace_rust_files()
            .into_iter()
            .filter(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                !text.starts_with("//!")
            })
            .collect();
        assert!(
            missing.is_empty(),
            "files not opening with a `//!` comment: {missing:#?}"
        );
    }

    #[test]
    fn no_trailing_whitespace() {
        let mut offenders = Vec::new();
        for path in workspace_rust_files() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (number, line) in text.lines().enumerate() {
                if line.ends_with(' ') || line.ends_with('\t') {
                    offenders.push(format!("{}:{}", path.display(), number + 1));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "trailing whitespace at {offenders:#?}"
        );
    }
}
