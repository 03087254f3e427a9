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

/// The manifests of the crates under `crates/` that are published (no `publish = false`).
fn publishable() -> Vec<(PathBuf, String)> {
    crates()
        .into_iter()
        .map(|dir| {
            let manifest = read(&dir.join("Cargo.toml"));
            (dir, manifest)
        })
        .filter(|(_, manifest)| !manifest.lines().any(|l| l.trim() == "publish = false"))
        .collect()
}

#[test]
fn publishable_crates_carry_what_a_registry_user_expects() {
    let published = publishable();
    assert!(
        published.len() >= 5,
        "{} publishable crates",
        published.len()
    );
    for (dir, manifest) in published {
        for key in [
            "description",
            "license",
            "repository",
            "readme",
            "documentation",
            "keywords",
            "categories",
            "rust-version",
        ] {
            assert!(
                manifest
                    .lines()
                    .any(|line| line.starts_with(&format!("{key} "))
                        || line.starts_with(&format!("{key}."))),
                "{}/Cargo.toml has no {key}",
                dir.display()
            );
        }
        for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
            let text = read(&dir.join(license));
            assert!(
                text.contains("Permission is hereby granted") || text.contains("Apache License"),
                "{}/{license} is not the license text",
                dir.display()
            );
        }
    }
    let workspace = read(&root().join("Cargo.toml"));
    assert!(
        workspace.contains(r#"license = "MIT OR Apache-2.0""#),
        "the workspace's license is MIT OR Apache-2.0, as LICENSE-MIT and LICENSE-APACHE say"
    );
}

/// The crates in `krate`'s normal dependency tree (no dev or build dependencies).
fn normal_dependencies(krate: &str) -> Vec<String> {
    let output = super::cargo()
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            krate,
        ])
        .output()
        .unwrap_or_else(|err| panic!("cargo tree: {err}"));
    assert!(
        output.status.success(),
        "cargo tree -p {krate}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn proto_core_and_auth_pull_in_no_io_crate() {
    const IO: [&str; 10] = [
        "tokio",
        "mio",
        "hyper",
        "hyper-util",
        "h2",
        "rustls",
        "tokio-rustls",
        "socket2",
        "ring",
        "tungstenite",
    ];
    for krate in [
        "kvs-signaling-proto",
        "kvs-signaling-core",
        "kvs-signaling-auth",
    ] {
        let names = normal_dependencies(krate);
        assert!(names.iter().any(|name| name == krate), "{names:?}");
        let io: Vec<_> = names
            .iter()
            .filter(|name| IO.contains(&name.as_str()) || name.starts_with("tokio"))
            .collect();
        assert!(io.is_empty(), "{krate} depends on {io:?}");
    }
    // The check sees IO crates where they are.
    let transport = normal_dependencies("kvs-transport-tokio");
    assert!(
        transport.iter().any(|name| name == "tokio"),
        "{transport:?}"
    );
}

#[test]
fn dependency_versions_live_in_the_workspace_manifest() {
    let mut manifests: Vec<PathBuf> = crates().iter().map(|dir| dir.join("Cargo.toml")).collect();
    manifests.push(root().join("tests/Cargo.toml"));
    for manifest in manifests {
        let mut section = String::new();
        for line in read(&manifest).lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let in_dependencies = section.ends_with("dependencies]");
            if !in_dependencies || line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                line.contains("workspace = true") || line.contains("path = "),
                "{}: {line:?} sets its own version; put it in [workspace.dependencies]",
                manifest.display()
            );
        }
    }
}

/// The transport's public API names no tungstenite type: a bump of that crate must not break
/// our users (its WebSocket is an implementation detail of the client).
#[test]
fn the_transport_api_leaks_no_tungstenite_type() {
    let src = root().join("crates/kvs-transport-tokio/src");
    let mut leaks = Vec::new();
    for entry in files(&src, ".rs") {
        let text = read(&entry);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            let public = line.starts_with("pub fn")
                || line.starts_with("pub async fn")
                || line.starts_with("pub struct")
                || line.starts_with("pub enum")
                || line.starts_with("pub type")
                || line.starts_with("pub use");
            if public && line.contains("tungstenite") {
                leaks.push(format!("{}:{}: {line}", entry.display(), n + 1));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "public items naming tungstenite:\n{}",
        leaks.join("\n")
    );
}
