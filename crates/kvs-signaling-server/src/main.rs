//! The `kvs-signaling` binary: `serve` runs the server, `connect` an interactive client.

use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod repl;
mod serve;

use cli::{Cli, Command, Options};

/// Starts logging at `default_level` (`RUST_LOG` overrides it), runs `task` on a runtime from
/// `builder`, and turns its outcome into the exit code, naming `what` failed.
fn run_logged(
    what: &str,
    default_level: &str,
    mut builder: tokio::runtime::Builder,
    task: impl Future<Output = Result<(), String>>,
) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kvs-signaling: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{what}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // clap prints --help and --version to stdout, and a usage error to stderr (exit code 2).
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let options = match Options::resolve(*args) {
                Ok(options) => options,
                Err(message) => {
                    eprintln!("kvs-signaling serve: {message}");
                    return ExitCode::from(2);
                }
            };
            run_logged(
                "kvs-signaling",
                "info",
                tokio::runtime::Builder::new_multi_thread(),
                serve::serve(options),
            )
        }
        Command::Connect(options) => run_logged(
            "kvs-signaling connect",
            "warn",
            tokio::runtime::Builder::new_current_thread(),
            repl::run(*options),
        ),
    }
}
