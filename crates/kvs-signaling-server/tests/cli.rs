//! The command line as a user meets it: `--version`, and the help of each command.

#![cfg(test)]

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
        .args(args)
        .env_remove("KVS_CONFIG")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn version_prints_the_version_on_stdout() {
    for args in [&["--version"][..], &["-V"]] {
        let (ok, stdout, _) = run(args);
        assert!(ok, "{args:?}");
        assert_eq!(
            stdout.trim(),
            format!("kvs-signaling {}", env!("CARGO_PKG_VERSION")),
            "{args:?}"
        );
    }
    // A command's own --version names it.
    let (ok, stdout, _) = run(&["serve", "--version"]);
    assert!(ok);
    assert_eq!(
        stdout.trim(),
        format!("kvs-signaling-serve {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_and_connect_each_have_their_own_help() {
    let (ok, serve, _) = run(&["serve", "--help"]);
    assert!(ok);
    let (ok, connect, _) = run(&["connect", "--help"]);
    assert!(ok);
    let (ok, top, _) = run(&["--help"]);
    assert!(ok);
    for flag in [
        "--listen",
        "--public-url",
        "--tls-cert",
        "--access-key-id",
        "--turn-uri",
        "--data-dir",
        "--indications",
        "--cors-origin",
        "KVS_LISTEN",
        "KVS_CORS_ORIGINS",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}:\n{serve}");
        assert!(!connect.contains(flag), "connect --help has {flag}");
    }
    for flag in [
        "--channel",
        "--role",
        "--client-id",
        "--ca-file",
        "candidate [to=ID] JSON",
    ] {
        assert!(
            connect.contains(flag),
            "connect --help lacks {flag}:\n{connect}"
        );
        assert!(!serve.contains(flag), "serve --help has {flag}");
    }
    assert!(top.contains("serve") && top.contains("connect"), "{top}");
    assert_ne!(top, serve);
}

#[test]
fn a_bad_flag_is_refused_with_its_name_and_exit_code_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
        .args(["serve", "--shards", "many"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--shards") && stderr.contains("many"),
        "{stderr}"
    );
}
