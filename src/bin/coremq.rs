//! `coremq`: the broker binary, a thin main over [`coremq::Broker`].
//!
//! Owns the command line (clap derive). Running the broker is the default
//! command: `coremq [--config FILE] [--listen HOST:PORT] [--cores N|LIST]`,
//! or the same after `coremq run`; `--print-default-config`, `--help` and
//! `--version` print and exit. Subcommands to come go into [`Command`].
//! SIGHUP re-reads the files the configuration names (certificates, the
//! password file, the ACL) without dropping connections.
//! Exit codes: 0 after a clean stop (SIGINT/SIGTERM) or after printing, 2 for
//! bad flags (clap's own exit code) or configuration, 1 when the broker cannot
//! start (host or bind errors) or a shard fails.

use clap::{Parser, Subcommand};
use coremq::config::{Config, Cores, DEFAULT_CONFIG_TOML};
use coremq::metrics::MetricsBoard;
use coremq::{host, Broker, BrokerHandle};
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "coremq",
    version,
    about = "A thread-per-core, shared-nothing MQTT broker",
    after_help = "Logging: RUST_LOG=info|debug|... (default info).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Running the broker, when no command is given.
    #[command(flatten)]
    run: RunArgs,
    /// Print the commented default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
}

/// What `coremq` can do besides the default (running the broker). The
/// administration commands (`passwd`, `ctl`, `storage`) are to come here.
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker (the default when no command is given).
    Run(RunArgs),
}

/// Where the broker's configuration comes from. A flag given twice takes
/// its last value.
#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
struct RunArgs {
    /// TOML configuration (default: built-in defaults, see config/coremq.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override the first listener's bind address.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Override runtime.cores.
    #[arg(long, value_name = "all|N|a,b,c")]
    cores: Option<String>,
}

/// The file (or the defaults), then the flags over it, then one validation.
fn load_config(args: &RunArgs) -> Result<Config, String> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(l) = &args.listen {
        cfg.listener[0].bind = l.clone();
    }
    if let Some(c) = &args.cores {
        cfg.runtime.cores = Cores::parse_cli(c).map_err(|e| e.to_string())?;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Prints help/version (exit 0) or the error (exit 2) and exits itself.
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{DEFAULT_CONFIG_TOML}");
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Run(args)) => run(&args),
        None => run(&cli.run),
    }
}

/// Configure, start, serve until SIGINT/SIGTERM, stop.
fn run(args: &RunArgs) -> ExitCode {
    let cfg = match load_config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("coremq: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    host::block_stop_signals();
    match Broker::new(cfg).start() {
        Ok(handle) => serve_until_stopped(handle),
        Err(e) => {
            eprintln!("coremq: {e}");
            ExitCode::from(1)
        }
    }
}

/// Serve, reloading the configured files on SIGHUP, until SIGINT/SIGTERM.
fn serve_until_stopped(handle: BrokerHandle) -> ExitCode {
    let sig = loop {
        match host::wait_for_stop_signal() {
            libc::SIGHUP => {
                log::info!("SIGHUP: reloading");
                handle.reload();
            }
            sig => break sig,
        }
    };
    log::info!("signal {sig}: stopping");
    handle.stop();
    let board = handle.metrics_board();
    match handle.join() {
        Ok(()) => {
            log::info!("stopped; counters: {}", nonzero_counters(&board));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coremq: shard failure: {e}");
            ExitCode::from(1)
        }
    }
}

/// `name=value` for every counter that moved, summed over the shards.
fn nonzero_counters(board: &MetricsBoard) -> String {
    let counters: Vec<String> = board
        .total()
        .pairs()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    counters.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("coremq").chain(args.iter().copied()))
    }

    /// The run arguments, whichever way they were given.
    fn run_args(args: &[&str]) -> RunArgs {
        let cli = parse(args).unwrap();
        match cli.command {
            Some(Command::Run(a)) => a,
            None => cli.run,
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_is_the_default_command() {
        for args in [
            &["-c", "f.toml", "--listen", "h:1", "--cores", "2"][..],
            &[
                "run", "--config", "f.toml", "--listen", "h:1", "--cores", "2",
            ],
            &[
                "--config", "x", "--listen", "h:0", "-c", "f.toml", "--listen", "h:1", "--cores",
                "2",
            ],
        ] {
            let a = run_args(args);
            assert_eq!(a.config, Some(PathBuf::from("f.toml")), "{args:?}");
            assert_eq!(a.listen.as_deref(), Some("h:1"), "{args:?}");
            assert_eq!(a.cores.as_deref(), Some("2"), "{args:?}");
        }
        let a = run_args(&[]);
        assert!(a.config.is_none() && a.listen.is_none() && a.cores.is_none());
        assert!(
            parse(&["--print-default-config"])
                .unwrap()
                .print_default_config
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["--bogus"][..],
            &["--listen"],
            &["bogus"],
            &["--listen", "h:1", "run"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        for (args, kind) in [
            (&["--help"][..], ErrorKind::DisplayHelp),
            (&["-h"], ErrorKind::DisplayHelp),
            (&["--version"], ErrorKind::DisplayVersion),
            (&["-V"], ErrorKind::DisplayVersion),
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!((e.kind(), e.exit_code()), (kind, 0), "{args:?}");
        }
    }
}
