//! `coremq`: the broker binary, a thin main over [`coremq::Broker`].
//!
//! `coremq [--config FILE] [--listen HOST:PORT] [--cores N|LIST] [--print-default-config]`
//! Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for bad flags or
//! configuration, 1 when the broker cannot start (host or bind errors).

use coremq::config::{Config, Cores, DEFAULT_CONFIG_TOML};
use coremq::{host, Broker};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: coremq [--config FILE] [--listen HOST:PORT] [--cores all|N|a,b,c] [--print-default-config]
  --config FILE            TOML configuration (default: built-in defaults, see config/coremq.toml)
  --listen HOST:PORT       override listener.bind
  --cores all|N|a,b,c      override runtime.cores
  --print-default-config   print the commented default configuration and exit
Logging: RUST_LOG=info|debug|... (default info).";

/// What the command line asked for.
struct Args {
    config: Option<PathBuf>,
    listen: Option<String>,
    cores: Option<String>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        config: None,
        listen: None,
        cores: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--config" | "-c" => args.config = Some(PathBuf::from(value("--config")?)),
            "--listen" => args.listen = Some(value("--listen")?),
            "--cores" => args.cores = Some(value("--cores")?),
            "--print-default-config" => {
                print!("{DEFAULT_CONFIG_TOML}");
                return Ok(None);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--version" | "-V" => {
                println!("coremq {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(args))
}

fn load_config(args: &Args) -> Result<Config, String> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(l) = &args.listen {
        cfg.listener.bind = l.clone();
    }
    if let Some(c) = &args.cores {
        cfg.runtime.cores = Cores::parse_cli(c).map_err(|e| e.to_string())?;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coremq: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("coremq: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    host::block_stop_signals();
    let handle = match Broker::new(cfg).start() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("coremq: {e}");
            return ExitCode::from(1);
        }
    };
    let sig = host::wait_for_stop_signal();
    log::info!("signal {sig}: stopping");
    handle.stop();
    let board = handle.metrics_board();
    match handle.join() {
        Ok(()) => {
            let counters: Vec<String> = board
                .total()
                .pairs()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            log::info!("stopped; counters: {}", counters.join(" "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coremq: shard failure: {e}");
            ExitCode::from(1)
        }
    }
}
