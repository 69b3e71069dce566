//! `coremq`: the broker binary, a thin main over [`coremq::Broker`].
//!
//! Owns the command line (clap derive). Running the broker is the default
//! command: `coremq [--config FILE] [--listen HOST:PORT] [--cores N|LIST]`,
//! or the same after `coremq run`; `--print-default-config`, `--help` and
//! `--version` print and exit. `coremq passwd [-c] [-b] FILE USER [PASSWORD]`
//! and `coremq passwd -D FILE USER` edit a password file as
//! `mosquitto_passwd` does (argon2id hashes; the password is asked twice,
//! without echo, unless `-b` gives it). `coremq storage inspect|compact DIR`
//! read or rewrite a storage directory no broker is using (`--data-dir` and
//! `--recover` are the storage flags of a run).
//! `coremq ctl ...` is a client of a running broker's management HTTP API ([`coremq::ctl`]).
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

/// What `coremq` can do besides the default (running the broker).
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker (the default when no command is given).
    Run(RunArgs),
    /// Add, update (-b: batch) or delete (-D) a user of a password file
    /// (Mosquitto's format; new hashes are argon2id).
    Passwd(PasswdArgs),
    /// Read or rewrite a storage directory while no broker runs on it.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Ask a running broker, through its management HTTP API ([http]).
    Ctl(coremq::ctl::CtlArgs),
}

/// `coremq storage ...`.
#[derive(Subcommand, Debug)]
enum StorageCommand {
    /// Describe the log: segments, persistent sessions, retained messages.
    Inspect(StorageArgs),
    /// Rewrite the log as its live state and remove the old segments.
    Compact(StorageArgs),
}

/// Arguments of the storage commands.
#[derive(clap::Args, Debug)]
struct StorageArgs {
    /// The storage directory ([storage] dir).
    dir: PathBuf,
    /// The configuration the broker runs with (queue limits apply to the replay).
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep what is readable of a segment damaged before its end.
    #[arg(long)]
    recover: bool,
    /// JSON instead of tables (inspect).
    #[arg(long)]
    json: bool,
}

/// Run a storage command: exit 0, or 1 with the reason.
fn storage(cmd: &StorageCommand) -> ExitCode {
    let (StorageCommand::Inspect(a) | StorageCommand::Compact(a)) = cmd;
    let cfg = match &a.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    };
    let result = cfg.and_then(|cfg| match cmd {
        StorageCommand::Inspect(_) => {
            coremq::storage_tool::inspect(&cfg, &a.dir, a.recover).map(|r| match a.json {
                true => serde_json::to_string_pretty(&r).unwrap_or_default(),
                false => coremq::storage_tool::render(&r),
            })
        }
        StorageCommand::Compact(_) => coremq::storage_tool::compact(&cfg, &a.dir, a.recover),
    });
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coremq storage: {e}");
            ExitCode::from(1)
        }
    }
}

/// `coremq passwd`, with mosquitto_passwd's flags.
#[derive(clap::Args, Debug)]
struct PasswdArgs {
    /// Create the file, overwriting one that exists.
    #[arg(short = 'c', conflicts_with = "delete")]
    create: bool,
    /// Batch mode: the password is the last argument (it shows in `ps`).
    #[arg(short = 'b', conflicts_with = "delete", requires = "password")]
    batch: bool,
    /// Delete the user.
    #[arg(short = 'D')]
    delete: bool,
    file: PathBuf,
    user: String,
    /// The password, with -b.
    #[arg(requires = "batch")]
    password: Option<String>,
}

/// Edit the password file; exit 1 (with the reason) when it cannot be done.
fn passwd(args: &PasswdArgs) -> ExitCode {
    let password = match (&args.password, args.delete) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone().into_bytes()),
        (None, false) => match prompt::twice() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("coremq passwd: {e}");
                return ExitCode::from(1);
            }
        },
    };
    match coremq::auth::passwd::edit_file(&args.file, args.create, &args.user, password.as_deref())
    {
        Ok(done) => {
            eprintln!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coremq passwd: {e}");
            ExitCode::from(1)
        }
    }
}

/// Reading a password from the terminal without echo.
mod prompt {
    use std::io::{BufRead, Write};

    /// Ask for the password twice; they must match and not be empty.
    pub fn twice() -> Result<Vec<u8>, String> {
        let first = ask("Password: ")?;
        let again = ask("Reenter password: ")?;
        if first != again {
            return Err("passwords do not match".into());
        }
        if first.is_empty() {
            return Err("empty password".into());
        }
        Ok(first)
    }

    /// One line from stdin; echo is off while it is typed on a terminal.
    fn ask(label: &str) -> Result<Vec<u8>, String> {
        eprint!("{label}");
        let _ = std::io::stderr().flush();
        let echo = EchoOff::new();
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        drop(echo);
        eprintln!();
        match read {
            Ok(0) => Err("no password given".into()),
            Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Terminal echo off on stdin until dropped (nothing when not a terminal).
    struct EchoOff(Option<libc::termios>);

    impl EchoOff {
        fn new() -> EchoOff {
            // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::isatty(0) != 1 || libc::tcgetattr(0, &mut t) != 0 {
                    return EchoOff(None);
                }
                let saved = t;
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(0, libc::TCSANOW, &t);
                EchoOff(Some(saved))
            }
        }
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            if let Some(t) = &self.0 {
                // SAFETY: restores the settings read in `new`.
                unsafe {
                    libc::tcsetattr(0, libc::TCSANOW, t);
                }
            }
        }
    }
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
    /// Override storage.dir.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Start even if a shard's log is damaged before its end, keeping what
    /// is readable (the rest of that segment is dropped, and logged).
    #[arg(long)]
    recover: bool,
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
    if let Some(d) = &args.data_dir {
        cfg.storage.dir = d.clone();
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        // glommio logs an error the first time a shard opens a file on a
        // device without I/O polling support (it then uses the normal ring):
        // harmless, and not the operator's to act on.
        .filter_module("glommio::reactor", log::LevelFilter::Off)
        .init();
    // Prints help/version (exit 0) or the error (exit 2) and exits itself.
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{DEFAULT_CONFIG_TOML}");
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Run(args)) => run(&args),
        Some(Command::Passwd(args)) => passwd(&args),
        Some(Command::Storage(cmd)) => storage(&cmd),
        Some(Command::Ctl(args)) => coremq::ctl::run(&args),
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
    match Broker::new(cfg).recover(args.recover).start() {
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
            Some(other) => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn passwd_takes_mosquitto_passwd_flags() {
        let cli = parse(&["passwd", "-c", "-b", "pw", "alice", "secret"]).unwrap();
        let Some(Command::Passwd(a)) = cli.command else {
            panic!("{cli:?}")
        };
        assert!(a.create && a.batch && !a.delete);
        assert_eq!(
            (a.user.as_str(), a.password.as_deref()),
            ("alice", Some("secret"))
        );
        assert!(parse(&["passwd", "-D", "pw", "alice"]).is_ok());
        // -b needs the password, a password needs -b, -D takes neither -c nor -b.
        assert!(parse(&["passwd", "-b", "pw", "alice"]).is_err());
        assert!(parse(&["passwd", "pw", "alice", "secret"]).is_err());
        assert!(parse(&["passwd", "-D", "-c", "pw", "alice"]).is_err());
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
