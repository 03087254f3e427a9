//! Project automation, run as `cargo xtask <command>`:
//!
//! - `ci`: everything CI checks, in order: the tools tests need (coturn, Redis, HAProxy, Chromium, Node.js, installed by
//!   `scripts/install-test-deps.sh` when missing), formatting, clippy, tests, docs, benchmark
//!   builds, packaging of the publishable crates, each checked with the oldest Rust it claims
//!   (`rust-version`), fuzz smoke. Ends with one line, `ci: N passed, N failed`, counting every test.
//! - `msrv`: each publishable crate checked with the oldest Rust its `rust-version` claims.
//! - `fuzz [TARGET] [--time SECS] [--replay]`: runs the cargo-fuzz targets.
//! - `bench [--save NAME | --baseline NAME] [--micro-only | --load-only] [--quick] [FILTER]`:
//!   runs the criterion benchmarks, then the load scenarios (`scripts/bench-load.py` driving
//!   the release builds of the server and `kvs-signaling-loadgen`, and for the cluster
//!   scenarios a `redis-server`), whose report lands in `target/bench-report/`. With
//!   `--load-only`, FILTER picks the load scenarios by name (`cluster` runs the cluster ones).
//!
//! It has no dependencies, so it builds in seconds on a bare machine.

mod flags;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use flags::Flags;

fn main() -> ExitCode {
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(message) => {
            eprintln!("xtask: {message}\n\n{}", flags::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match flags {
        Flags::Help => {
            eprintln!("{}", flags::USAGE);
            Ok(())
        }
        Flags::Msrv => msrv(),
        Flags::Ci { fuzz_seconds } => ci(fuzz_seconds),
        Flags::Fuzz {
            target,
            seconds,
            replay,
        } => fuzz(target.as_deref(), seconds, replay),
        Flags::Bench {
            criterion_args,
            filters,
            micro,
            load,
            quick,
        } => bench(&criterion_args, &filters, micro, load, quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    // `cargo run` says where this checkout's xtask is; the path compiled in is another
    // checkout's when a target directory shared between checkouts kept its build.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd`, echoing it first; an error names the step.
fn run(step: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("\n==> {step}: {cmd:?}");
    let status = cmd
        .status()
        .map_err(|err| format!("{step}: could not start: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

/// Test counts summed over every `test result:` line of cargo test's output.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
}

impl Counts {
    /// Adds the counts of one `test result: ok. 3 passed; 0 failed; ...` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            let (Some(number), Some(label)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                _ => {}
            }
        }
    }
}

/// Runs cargo test, passing its output through while counting the results.
fn test(counts: &mut Counts) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--locked"])
        .stdout(Stdio::piped());
    eprintln!("\n==> test: {cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|err| format!("test: could not start: {err}"))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            counts.add_line(&line);
            eprintln!("{line}");
        }
    }
    let status = child.wait().map_err(|err| format!("test: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("test failed ({status})"))
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the closing line CI reads goes to stdout"
)]
fn ci(fuzz_seconds: u64) -> Result<(), String> {
    let mut counts = Counts::default();
    let result = (|| {
        run(
            "install test dependencies (coturn, Redis, HAProxy, Chromium, Node.js and the JS SDK)",
            Command::new(root().join("scripts/install-test-deps.sh")).current_dir(root()),
        )?;
        run("fmt", cargo().args(["fmt", "--all", "--check"]))?;
        run(
            "fmt fuzz",
            cargo().args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]),
        )?;
        run(
            "clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
        test(&mut counts)?;
        run(
            "doc",
            cargo()
                .args(["doc", "--workspace", "--no-deps", "--locked"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )?;
        run(
            "bench build",
            cargo().args(["bench", "--workspace", "--no-run", "--locked"]),
        )?;
        let mut package = cargo();
        package.args(["package", "--no-verify", "--locked"]);
        for (name, _) in rust_versions()? {
            package.args(["-p", &name]);
        }
        run("package", &mut package)?;
        msrv()?;
        fuzz(None, fuzz_seconds, false)
    })();
    // The closing line CI reads: every test counted, whatever step failed.
    println!("ci: {} passed, {} failed", counts.passed, counts.failed);
    result
}

/// The `rust-version` of each publishable crate, as its manifest states it (its own, or the
/// workspace's).
fn rust_versions() -> Result<Vec<(String, String)>, String> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))
    };
    let field = |manifest: &str, key: &str| {
        manifest.lines().find_map(|line| {
            let value = line.trim().strip_prefix(key)?.trim().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
    };
    let workspace = read(root().join("Cargo.toml"))?;
    let default = field(&workspace, "rust-version").ok_or("Cargo.toml: no rust-version")?;
    let mut found = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("crates"))
        .map_err(|err| format!("crates/: {err}"))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    dirs.sort();
    for dir in dirs {
        let manifest = read(dir.join("Cargo.toml"))?;
        if field(&manifest, "publish").is_some_and(|value| value == "false") {
            continue;
        }
        let name = field(&manifest, "name").ok_or_else(|| format!("{}: no name", dir.display()))?;
        let version = match field(&manifest, "rust-version") {
            Some(version) => version,
            None => default.clone(),
        };
        found.push((name, version));
    }
    Ok(found)
}

/// Checks each publishable crate with the oldest Rust its manifest claims, installing that
/// toolchain (minimal profile) when it is missing.
fn msrv() -> Result<(), String> {
    let mut by_version: Vec<(String, Vec<String>)> = Vec::new();
    for (name, version) in rust_versions()? {
        match by_version.iter_mut().find(|(v, _)| *v == version) {
            Some((_, names)) => names.push(name),
            None => by_version.push((version, vec![name])),
        }
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| root().join("target/msrv"),
        |dir| PathBuf::from(dir).join("msrv"),
    );
    for (version, names) in by_version {
        let installed = Command::new("rustup")
            .args(["run", &version, "rustc", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            run(
                &format!("install Rust {version}"),
                Command::new("rustup").args([
                    "toolchain",
                    "install",
                    &version,
                    "--profile",
                    "minimal",
                ]),
            )?;
        }
        // Through rustup, so that `+version` picks that toolchain's cargo, not this one's.
        let mut cmd = Command::new("rustup");
        cmd.current_dir(root())
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .args([
                "run",
                &version,
                "cargo",
                "check",
                "--locked",
                "--target-dir",
            ])
            .arg(&target_dir);
        for name in &names {
            cmd.args(["-p", name]);
        }
        run(&format!("msrv {version}: {}", names.join(", ")), &mut cmd)?;
    }
    Ok(())
}

/// The fuzz targets, as `fuzz/Cargo.toml` lists them.
fn fuzz_targets() -> Result<Vec<String>, String> {
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml"))
        .map_err(|err| format!("reading fuzz/Cargo.toml: {err}"))?;
    Ok(manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "kvs-signaling-fuzz")
        .map(str::to_owned)
        .collect())
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let installed = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Ok(());
    }
    run(
        "install cargo-fuzz",
        cargo().args(["install", "cargo-fuzz", "--locked"]),
    )
}

/// Runs each fuzz target (or `only`) for `seconds`, or replays the committed corpus. New
/// inputs go to a scratch directory so that the committed corpus stays as reviewed.
fn fuzz(only: Option<&str>, seconds: u64, replay: bool) -> Result<(), String> {
    ensure_cargo_fuzz()?;
    let targets = fuzz_targets()?;
    if let Some(name) = only.filter(|name| !targets.iter().any(|t| t == name)) {
        return Err(format!(
            "no fuzz target {name}; there are {}",
            targets.join(", ")
        ));
    }
    let fuzz_cmd = || {
        let mut cmd = cargo();
        // Only a stable toolchain is available: let it accept cargo-fuzz's -Z flags.
        cmd.env("RUSTC_BOOTSTRAP", "1")
            .current_dir(root().join("fuzz"));
        cmd
    };
    let target_dir = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| root().join("fuzz/target"),
        |dir| PathBuf::from(dir).join("fuzz"),
    );
    run(
        "fuzz build",
        fuzz_cmd()
            .args(["fuzz", "build", "-O", "--target-dir"])
            .arg(&target_dir),
    )?;
    for target in targets
        .iter()
        .filter(|t| only.is_none_or(|name| name == *t))
    {
        let corpus = root().join("fuzz/corpus").join(target);
        let scratch =
            std::env::temp_dir().join(format!("kvs-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|err| format!("{}: {err}", scratch.display()))?;
        let mut cmd = fuzz_cmd();
        cmd.args(["fuzz", "run", "-O", "--target-dir"])
            .arg(&target_dir)
            .arg(target)
            .arg(&scratch)
            .arg(&corpus)
            .arg("--")
            .arg("-max_len=16384");
        if replay {
            cmd.arg("-runs=0");
        } else {
            cmd.arg(format!("-max_total_time={seconds}"));
        }
        let result = run(&format!("fuzz {target}"), &mut cmd);
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
    }
    Ok(())
}

/// The criterion benchmarks (`micro`), then the load scenarios (`load`); with the load
/// scenarios alone, `filters` pick them by name.
fn bench(
    criterion_args: &[String],
    filters: &[String],
    micro: bool,
    load: bool,
    quick: bool,
) -> Result<(), String> {
    if micro {
        run(
            "bench",
            cargo()
                .args(["bench", "--workspace", "--locked", "--"])
                .args(criterion_args),
        )?;
    }
    if !load {
        return Ok(());
    }
    run(
        "build the server and the load generator (release)",
        cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "kvs-signaling-server",
            "-p",
            "kvs-signaling-loadgen",
        ]),
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let release = target.join("release");
    let mut load = Command::new("python3");
    load.current_dir(root())
        .arg(root().join("scripts/bench-load.py"))
        .arg("--server")
        .arg(release.join("kvs-signaling"))
        .arg("--loadgen")
        .arg(release.join("kvs-signaling-loadgen"))
        .arg("--out")
        .arg(target.join("bench-report"));
    if quick {
        load.arg("--quick");
    }
    if !micro {
        for filter in filters {
            load.arg("--filter").arg(filter);
        }
    }
    run("load scenarios", &mut load)
}

#[cfg(test)]
mod tidy;

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_sum_every_result_line() {
        let mut counts = Counts::default();
        for line in [
            "test result: ok. 64 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.81s",
            "running 2 tests",
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            counts.add_line(line);
        }
        assert_eq!(
            counts,
            Counts {
                passed: 65,
                failed: 2
            }
        );
    }
}
