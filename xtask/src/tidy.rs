//! Repository hygiene, checked as ordinary tests.

use std::path::{Path, PathBuf};

use super::root;

/// Every file under `dir` whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && name != ".git" {
                    stack.push(path);
                }
            } else if name.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_crate_has_a_readme_and_crate_docs() {
    for dir in crates() {
        assert!(
            dir.join("README.md").is_file(),
            "{} has no README.md",
            dir.display()
        );
        let lib = read(&dir.join("src/lib.rs"));
        assert!(
            lib.starts_with("//! "),
            "{}/src/lib.rs does not start with crate docs",
            dir.display()
        );
    }
}

#[test]
fn no_debugging_leftovers_or_untracked_todos() {
    let mut sources = files(&root().join("crates"), ".rs");
    sources.extend(files(&root().join("xtask/src"), ".rs"));
    sources.extend(files(&root().join("tests"), ".rs"));
    sources.extend(files(&root().join("fuzz/fuzz_targets"), ".rs"));
    assert!(sources.len() > 10);
    let this_file = root().join("xtask/src/tidy.rs");
    for path in sources.iter().filter(|path| **path != this_file) {
        for (number, line) in read(path).lines().enumerate() {
            let at = format!("{}:{}", path.display(), number + 1);
            for banned in ["dbg!(", "todo!(", "unimplemented!("] {
                assert!(!line.contains(banned), "{at}: {banned}");
            }
            for marker in ["TODO", "FIXME"] {
                if line.contains(marker) {
                    assert!(
                        line.contains("(#"),
                        "{at}: {marker} without an issue number"
                    );
                }
            }
        }
    }
}

#[test]
fn every_fuzz_target_is_listed_and_seeded() {
    let targets = super::fuzz_targets().unwrap();
    let files = files(&root().join("fuzz/fuzz_targets"), ".rs");
    assert_eq!(
        targets.len(),
        files.len(),
        "fuzz/Cargo.toml lists {targets:?}"
    );
    for target in &targets {
        assert!(
            root()
                .join(format!("fuzz/fuzz_targets/{target}.rs"))
                .is_file(),
            "fuzz target {target} has no source"
        );
        let seeds = std::fs::read_dir(root().join("fuzz/corpus").join(target))
            .map(Iterator::count)
            .unwrap_or(0);
        assert!(seeds > 0, "fuzz target {target} has no seed corpus");
    }
}

#[test]
fn readme_starts_with_the_two_commands_and_ci_runs_the_second() {
    let readme = read(&root().join("README.md"));
    let commands: Vec<&str> = readme
        .split("```")
        .skip(1)
        .step_by(2)
        .take(2)
        .map(|block| block.trim_start_matches("sh").trim())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run --release -p kvs-signaling-server -- serve",
            "cargo xtask ci"
        ],
        "README.md must open with the command that runs the server, then the test command"
    );
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|line| line.trim() == "cargo xtask ci"),
        ".ci/run must run the README's test command, `cargo xtask ci`"
    );
}
