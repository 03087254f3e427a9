//! `kvs-signaling-loadgen`: the command line over the library (see `--help`).

use std::process::ExitCode;
use std::time::Duration;

use kvs_signaling_loadgen::{Command, ReferenceRelay, USAGE, parse_args, run};

/// Time past `--deadline` after which the binary gives up on the run itself (it is meant to
/// stop by itself well before).
const DEADLINE_GRACE: Duration = Duration::from_secs(10);

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    builder
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))
}

#[expect(
    clippy::print_stdout,
    reason = "the report and the relay's address go to stdout"
)]
fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("kvs-signaling-loadgen: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Run { config, threads } => {
            let runtime = match runtime(threads) {
                Ok(runtime) => runtime,
                Err(message) => {
                    eprintln!("kvs-signaling-loadgen: {message}");
                    return ExitCode::FAILURE;
                }
            };
            let cap = config.deadline + DEADLINE_GRACE;
            let outcome = runtime.block_on(async { tokio::time::timeout(cap, run(*config)).await });
            // Tasks a stalled server left behind must not hold the exit.
            runtime.shutdown_timeout(Duration::from_secs(1));
            let message = match outcome {
                Ok(Ok(report)) => match serde_json::to_string_pretty(&report) {
                    Ok(json) => {
                        println!("{json}");
                        return ExitCode::SUCCESS;
                    }
                    Err(err) => format!("cannot encode the report: {err}"),
                },
                Ok(Err(err)) => err.to_string(),
                Err(_) => {
                    format!("the run did not stop within its deadline plus {DEADLINE_GRACE:?}")
                }
            };
            eprintln!("kvs-signaling-loadgen: {message}");
            println!("{}", serde_json::json!({ "error": message }));
            ExitCode::FAILURE
        }
        Command::ReferenceRelay { listen, threads } => {
            let runtime = match runtime(threads) {
                Ok(runtime) => runtime,
                Err(message) => {
                    eprintln!("kvs-signaling-loadgen: {message}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async {
                match ReferenceRelay::start(listen).await {
                    Ok(relay) => {
                        println!("{}", relay.local_addr());
                        eprintln!(
                            "kvs-signaling-loadgen: reference relay on ws://{}",
                            relay.local_addr()
                        );
                        std::future::pending::<()>().await;
                        ExitCode::SUCCESS
                    }
                    Err(err) => {
                        eprintln!("kvs-signaling-loadgen: cannot listen on {listen}: {err}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => ExitCode::FAILURE,
    }
}
