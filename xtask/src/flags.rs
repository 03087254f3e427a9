//! The command line of `cargo xtask`.

/// How to call it.
pub(crate) const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci [--fuzz-time SECS]              fmt, clippy, tests, docs, bench build, packaging,
                                     msrv, fuzz smoke (10 s per target)
  msrv                               check each publishable crate with the oldest Rust its
                                     rust-version claims (installing it with rustup)
  fuzz [TARGET] [--time SECS] [--replay]
                                     run every fuzz target (or one) for SECS (default 60),
                                     or replay the committed corpus only
  bench [--save NAME | --baseline NAME] [--micro-only | --load-only] [--quick] [FILTER]
                                     the criterion benchmarks, then the load scenarios
                                     (our server and the reference relay under
                                     kvs-signaling-loadgen; report in target/bench-report/);
                                     --quick runs the load scenarios at 1/20 of their size;
                                     with --load-only, FILTER picks the load scenarios whose
                                     name holds it (cluster, tls, saturate, ...), else it is
                                     criterion's";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flags {
    Help,
    Msrv,
    Ci {
        fuzz_seconds: u64,
    },
    Fuzz {
        target: Option<String>,
        seconds: u64,
        replay: bool,
    },
    Bench {
        criterion_args: Vec<String>,
        /// The FILTER arguments (also in `criterion_args`): with `--load-only`, they pick the
        /// load scenarios instead.
        filters: Vec<String>,
        /// Run the criterion benchmarks.
        micro: bool,
        /// Run the load scenarios.
        load: bool,
        /// Load scenarios at a small scale.
        quick: bool,
    },
}

fn seconds(value: Option<String>, flag: &str) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a number of seconds"))?;
    value
        .parse()
        .map_err(|_| format!("{flag} takes a number of seconds, not {value:?}"))
}

impl Flags {
    pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let Some(command) = args.next() else {
            return Ok(Self::Help);
        };
        match command.as_str() {
            "help" | "-h" | "--help" => Ok(Self::Help),
            "msrv" => match args.next() {
                None => Ok(Self::Msrv),
                Some(other) => Err(format!("msrv: unknown argument {other:?}")),
            },
            "ci" => {
                let mut fuzz_seconds = 10;
                while let Some(arg) = args.next() {
                    match arg.as_str() {
                        "--fuzz-time" => fuzz_seconds = seconds(args.next(), "--fuzz-time")?,
                        other => return Err(format!("ci: unknown argument {other:?}")),
                    }
                }
                Ok(Self::Ci { fuzz_seconds })
            }
            "fuzz" => {
                let (mut target, mut secs, mut replay) = (None, 60, false);
                while let Some(arg) = args.next() {
                    match arg.as_str() {
                        "--time" => secs = seconds(args.next(), "--time")?,
                        "--replay" => replay = true,
                        other if other.starts_with('-') => {
                            return Err(format!("fuzz: unknown flag {other:?}"));
                        }
                        other => target = Some(other.to_owned()),
                    }
                }
                Ok(Self::Fuzz {
                    target,
                    seconds: secs,
                    replay,
                })
            }
            "bench" => {
                let mut criterion_args = Vec::new();
                let mut filters = Vec::new();
                let (mut micro, mut load, mut quick) = (true, true, false);
                while let Some(arg) = args.next() {
                    match arg.as_str() {
                        "--micro-only" => load = false,
                        "--load-only" => micro = false,
                        "--quick" => quick = true,
                        "--save" | "--baseline" => {
                            let name = args
                                .next()
                                .ok_or_else(|| format!("{arg} needs a baseline name"))?;
                            let flag = if arg == "--save" {
                                "--save-baseline"
                            } else {
                                "--baseline"
                            };
                            criterion_args.extend([flag.to_owned(), name]);
                        }
                        filter => {
                            criterion_args.push(filter.to_owned());
                            filters.push(filter.to_owned());
                        }
                    }
                }
                if !micro && !load {
                    return Err("--micro-only and --load-only exclude each other".to_owned());
                }
                Ok(Self::Bench {
                    criterion_args,
                    filters,
                    micro,
                    load,
                    quick,
                })
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Flags;

    fn parse(line: &str) -> Result<Flags, String> {
        Flags::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn commands() {
        assert_eq!(parse(""), Ok(Flags::Help));
        assert_eq!(parse("ci"), Ok(Flags::Ci { fuzz_seconds: 10 }));
        assert_eq!(parse("msrv"), Ok(Flags::Msrv));
        assert!(parse("msrv extra").is_err());
        assert_eq!(parse("ci --fuzz-time 3"), Ok(Flags::Ci { fuzz_seconds: 3 }));
        assert_eq!(
            parse("fuzz client_message --time 5"),
            Ok(Flags::Fuzz {
                target: Some("client_message".to_owned()),
                seconds: 5,
                replay: false
            })
        );
        assert_eq!(
            parse("fuzz --replay"),
            Ok(Flags::Fuzz {
                target: None,
                seconds: 60,
                replay: true
            })
        );
        assert_eq!(
            parse("bench --save main codec"),
            Ok(Flags::Bench {
                criterion_args: vec!["--save-baseline".into(), "main".into(), "codec".into()],
                filters: vec!["codec".into()],
                micro: true,
                load: true,
                quick: false,
            })
        );
        assert_eq!(
            parse("bench --load-only --quick"),
            Ok(Flags::Bench {
                criterion_args: vec![],
                filters: vec![],
                micro: false,
                load: true,
                quick: true,
            })
        );
        assert_eq!(
            parse("bench --load-only cluster"),
            Ok(Flags::Bench {
                criterion_args: vec!["cluster".into()],
                filters: vec!["cluster".into()],
                micro: false,
                load: true,
                quick: false,
            })
        );
        assert!(parse("bench --load-only --micro-only").is_err());
        assert_eq!(
            parse("fuzz --time x"),
            Err("--time takes a number of seconds, not \"x\"".to_owned())
        );
        assert!(parse("deploy").is_err());
    }
}
