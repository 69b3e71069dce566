//! Command-line parsing for `coremq-bench` (clap derive).
//!
//! Owns the [`Args`] struct: every knob of a run, with its flag, short alias,
//! default and range check. Called by [`crate::run`] in the parent and again
//! in each worker, which gets the same argv plus the hidden
//! `--worker-index`/`--worker-count` flags (built by `workers.rs`).

use crate::payload::HEADER_LEN;
use clap::{Parser, Subcommand, ValueEnum};
use coremq::codec::ProtocolVersion;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// What to run. The variants a `scenario NAME` can name are its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Open and hold connections; no traffic except keepalive.
    Conn,
    /// Subscribers only (traffic comes from someone else).
    #[value(skip)]
    Sub,
    /// Publishers only.
    #[value(skip)]
    Pub,
    /// C clients, C/5 topics, each subscribes to one and publishes to it: 5x fan-out.
    #[value(name = "emq2015")]
    Emq2015,
    /// P publishers, all of C subscribers on one topic.
    Fanout,
    /// C publishers on their own topics, one subscriber on a wildcard.
    Fanin,
    /// Pairs: client i publishes to the topic client i^1 subscribes to.
    #[value(name = "p2p")]
    P2p,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Conn => "conn",
            Shape::Sub => "sub",
            Shape::Pub => "pub",
            Shape::Emq2015 => "emq2015",
            Shape::Fanout => "fanout",
            Shape::Fanin => "fanin",
            Shape::P2p => "p2p",
        }
    }
}

/// The command line: one subcommand, each with every option.
#[derive(Parser, Debug)]
#[command(
    name = "coremq-bench",
    about = "MQTT 3.1.1 / 5 load and verification tool (any broker; built for coremq)",
    after_help = "Every command takes the same options: coremq-bench <COMMAND> --help."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open and hold connections; no traffic except keepalive.
    Conn(Args),
    /// Subscribers only, on -t PATTERN (traffic comes from someone else).
    Sub(Args),
    /// Publishers only, to -t PATTERN.
    Pub(Args),
    /// A built-in scenario: publishers and subscribers, every delivery verified.
    Scenario {
        #[arg(value_enum)]
        name: Shape,
        #[command(flatten)]
        args: Args,
    },
}

impl Command {
    fn into_args(self) -> Args {
        let (shape, args) = match self {
            Command::Conn(a) => (Shape::Conn, a),
            Command::Sub(a) => (Shape::Sub, a),
            Command::Pub(a) => (Shape::Pub, a),
            Command::Scenario { name, args } => (name, args),
        };
        Args { shape, ..args }
    }
}

/// Every option of a run. `None` means "the shape's default" (see `scenario.rs`).
/// A flag given twice takes its last value.
#[derive(clap::Args, Clone, Debug, PartialEq)]
#[command(args_override_self = true)]
pub struct Args {
    /// Set from the command, not a flag.
    #[arg(skip = Shape::Conn)]
    pub shape: Shape,
    /// Broker host.
    #[arg(long, value_name = "H", default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long, value_name = "P", default_value_t = 1883)]
    pub port: u16,
    /// Clients (fanout: subscribers; fanin: publishers).
    #[arg(short = 'c', long, value_name = "N")]
    pub clients: Option<u64>,
    /// Publishers of fanout [default: 1].
    #[arg(long, value_name = "N")]
    pub publishers: Option<u64>,
    /// Number of topics (emq2015: C/5; sub/pub: use bench/%i mod T).
    #[arg(long, value_name = "T")]
    pub topics: Option<u64>,
    /// Topic pattern for sub/pub, %i = client index [default: bench/%i].
    #[arg(short = 't', long, value_name = "PATTERN")]
    pub topic: Option<String>,
    /// Total messages/s over all publishers; 0 = as fast as possible.
    #[arg(short = 'r', long, value_name = "R", value_parser = non_negative)]
    pub rate: Option<f64>,
    /// Per-publisher interval in ms (overrides --rate).
    #[arg(short = 'I', long = "interval", value_name = "MS", value_parser = positive)]
    pub interval_ms: Option<f64>,
    /// Payload bytes (at least 24: the verification header).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64, value_parser = payload_size)]
    pub size: usize,
    /// QoS of publishes and subscriptions.
    #[arg(short = 'q', long, value_name = "0|1|2", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: Option<u8>,
    /// Publish with the retain flag.
    #[arg(long)]
    pub retain: bool,
    /// Seconds of publishing (or holding, for conn/sub).
    #[arg(short = 'd', long, value_name = "S", default_value_t = 10.0, value_parser = non_negative)]
    pub duration: f64,
    /// Seconds to wait for deliveries after publishing stops.
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = non_negative)]
    pub drain: f64,
    /// New connections per second, over all workers.
    #[arg(short = 'R', long, value_name = "N/s", default_value_t = 2000.0, value_parser = positive)]
    pub conn_rate: f64,
    /// Seconds the whole connect phase may take before the run goes on.
    #[arg(long, value_name = "S", default_value_t = 60.0, value_parser = non_negative)]
    pub connect_timeout: f64,
    /// Keepalive in seconds (at least 10).
    #[arg(short = 'k', long, value_name = "S", default_value_t = 300,
          value_parser = clap::value_parser!(u16).range(10..))]
    pub keepalive: u16,
    /// MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5 (5.0; CONNECT with
    /// Receive Maximum = --inflight, acks with reason codes).
    #[arg(long, value_name = "3|4|5", default_value_t = 4,
          value_parser = clap::value_parser!(u8).range(3..=5))]
    pub protocol: u8,
    /// QoS 1/2 messages a publisher may have unacknowledged.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub inflight: u32,
    /// Most messages one publisher sends per tick when saturating.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Worker processes [default: ceil(clients/19000)].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// Executor threads per worker.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: u32,
    /// Local source addresses; client i binds `src_addrs[i % len]`. Filled
    /// from --src-addrs or --ifaddr, whichever came last, after parsing.
    #[arg(skip = default_src_addrs())]
    pub src_addrs: Vec<Ipv4Addr>,
    /// Source addresses 127.0.0.1..=127.0.0.N (N <= 254) [default: 8].
    #[arg(long = "src-addrs", value_name = "N", value_parser = src_range, overrides_with = "ifaddr")]
    src_range: Option<SrcAddrs>,
    /// Source addresses, comma-separated (instead of --src-addrs).
    #[arg(long, value_name = "A,B,..", value_parser = addr_list, overrides_with = "src_range")]
    ifaddr: Option<SrcAddrs>,
    /// Client id prefix.
    #[arg(long = "prefix", value_name = "ID", default_value = "bench")]
    pub client_prefix: String,
    /// Persistent sessions: CONNECT with clean session 0 (MQTT 5: clean
    /// start 0 and a Session Expiry Interval of 300 s), so the broker keeps
    /// (and, with storage on, writes) every session's state.
    #[arg(long)]
    pub persistent: bool,
    /// User name in every CONNECT.
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Password in every CONNECT.
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// Connect over TLS (with --ws: wss); needs --cafile or --insecure.
    #[arg(long)]
    pub tls: bool,
    /// CA certificates (PEM) that verify the broker's certificate.
    #[arg(long, value_name = "PEM", requires = "tls")]
    pub cafile: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs --key.
    #[arg(long, value_name = "PEM", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// Accept any broker certificate (handshake signatures still checked).
    #[arg(long, requires = "tls", conflicts_with = "cafile")]
    pub insecure: bool,
    /// Name to verify in the broker's certificate, sent as SNI unless an IP [default: --host].
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub server_name: Option<String>,
    /// MQTT over WebSocket (binary frames, subprotocol mqtt); with --tls: wss.
    #[arg(long)]
    pub ws: bool,
    /// HTTP path of the WebSocket upgrade.
    #[arg(long, value_name = "PATH", default_value = "/mqtt", requires = "ws")]
    pub ws_path: String,
    /// Print the JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Sample this broker process's RSS and CPU.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// Set in worker processes only.
    #[arg(long, hide = true)]
    pub worker_index: Option<u32>,
    #[arg(long, hide = true)]
    pub worker_count: Option<u32>,
}

impl Args {
    /// The protocol version `--protocol` names.
    pub fn version(&self) -> ProtocolVersion {
        match self.protocol {
            3 => ProtocolVersion::V31,
            5 => ProtocolVersion::V5,
            _ => ProtocolVersion::V311,
        }
    }
}

/// A parsed `--src-addrs` or `--ifaddr` value.
#[derive(Clone, Debug, PartialEq)]
struct SrcAddrs(Vec<Ipv4Addr>);

/// 127.0.0.1 ..= 127.0.0.8.
fn default_src_addrs() -> Vec<Ipv4Addr> {
    (1..=8).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect()
}

/// Parse argv (without the program name). No arguments at all is `--help`.
/// An `Err` is printed with [`clap::Error::print`] and ends the process with
/// [`clap::Error::exit_code`]: 0 for help, 2 for a bad command line.
pub fn parse<T: AsRef<OsStr>>(argv: &[T]) -> Result<Args, clap::Error> {
    let name = OsStr::new("coremq-bench");
    let cli = if argv.is_empty() {
        Cli::try_parse_from([name, OsStr::new("--help")])
    } else {
        Cli::try_parse_from(std::iter::once(name).chain(argv.iter().map(AsRef::as_ref)))
    }?;
    let mut a = cli.command.into_args();
    if let Some(SrcAddrs(list)) = a.ifaddr.take().or(a.src_range.take()) {
        a.src_addrs = list;
    }
    Ok(a)
}

/// Seconds or a rate: finite and >= 0.
fn non_negative(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("'{v}' is not a finite number >= 0")),
    }
}

/// A rate or interval that must be finite and > 0.
fn positive(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("'{v}' is not a finite number > 0")),
    }
}

/// Payload bytes: room for the verification header at least.
fn payload_size(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= HEADER_LEN => Ok(n),
        _ => Err(format!("'{v}' is not a size >= {HEADER_LEN}")),
    }
}

/// 127.0.0.1 ..= 127.0.0.n (n <= 254 keeps it in 127.0.0.0/24).
fn src_range(v: &str) -> Result<SrcAddrs, String> {
    match v.parse::<u8>() {
        Ok(n @ 1..=254) => Ok(SrcAddrs(
            (1..=n).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
        )),
        _ => Err(format!("'{v}' is not a count in 1..=254")),
    }
}

fn addr_list(v: &str) -> Result<SrcAddrs, String> {
    let list: Result<Vec<Ipv4Addr>, _> = v.split(',').map(|s| s.trim().parse()).collect();
    match list {
        Ok(l) if !l.is_empty() => Ok(SrcAddrs(l)),
        _ => Err(format!(
            "'{v}' is not a comma-separated list of IPv4 addresses"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn p(s: &str) -> Result<Args, clap::Error> {
        let v: Vec<&str> = s.split_whitespace().collect();
        parse(&v)
    }

    /// A bad command line: exit code 2, never a help text.
    fn bad(s: &str) -> bool {
        matches!(p(s), Err(e) if e.exit_code() == 2 && e.use_stderr())
    }

    fn help(s: &str) -> bool {
        matches!(p(s), Err(e) if e.kind() == ErrorKind::DisplayHelp && e.exit_code() == 0)
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn scenario_with_options() {
        let a = p("scenario emq2015 -c 15000 --rate 4000 -q 1 --port 1999 --json").unwrap();
        assert_eq!(a.shape, Shape::Emq2015);
        assert_eq!(a.clients, Some(15000));
        assert_eq!(a.rate, Some(4000.0));
        assert_eq!(a.qos, Some(1));
        assert_eq!(a.port, 1999);
        assert!(a.json);
        assert_eq!(a.src_addrs.len(), 8);
    }

    #[test]
    fn defaults() {
        let a = p("conn").unwrap();
        assert_eq!(a.shape, Shape::Conn);
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 1883));
        assert_eq!((a.clients, a.publishers, a.topics), (None, None, None));
        assert_eq!(
            (a.topic.as_deref(), a.rate, a.interval_ms),
            (None, None, None)
        );
        assert_eq!((a.size, a.qos, a.retain), (64, None, false));
        assert_eq!((a.duration, a.drain), (10.0, 2.0));
        assert_eq!(
            (a.conn_rate, a.connect_timeout, a.keepalive),
            (2000.0, 60.0, 300)
        );
        assert_eq!(
            (a.inflight, a.batch, a.workers, a.threads),
            (64, 64, None, 1)
        );
        assert_eq!(a.src_addrs, default_src_addrs());
        assert_eq!(a.client_prefix, "bench");
        assert_eq!(a.version(), ProtocolVersion::V311);
        assert!(!a.json && !a.quiet);
        assert!(!a.tls && !a.insecure && !a.ws);
        assert_eq!(
            (a.cafile, a.cert, a.key, a.server_name),
            (None, None, None, None)
        );
        assert_eq!(a.ws_path, "/mqtt");
        assert_eq!(
            (a.broker_pid, a.worker_index, a.worker_count),
            (None, None, None)
        );
    }

    #[test]
    fn short_aliases_and_every_value_flag() {
        let a = p(
            "sub -p 7 -c 3 -t x/%i -r 5 -I 2.5 -s 100 -q 2 -d 1 -R 10 -k 30 \
                   --host h --publishers 2 --topics 4 --drain 0 --connect-timeout 9 \
                   --inflight 5 --batch 6 --workers 2 --threads 3 --prefix id \
                   --broker-pid 42 --username u --password pw --quiet",
        )
        .unwrap();
        assert_eq!(a.shape, Shape::Sub);
        assert_eq!(
            (a.port, a.clients, a.topic.as_deref()),
            (7, Some(3), Some("x/%i"))
        );
        assert_eq!(
            (a.rate, a.interval_ms, a.size, a.qos),
            (Some(5.0), Some(2.5), 100, Some(2))
        );
        assert_eq!((a.duration, a.conn_rate, a.keepalive), (1.0, 10.0, 30));
        assert_eq!(
            (a.host.as_str(), a.publishers, a.topics),
            ("h", Some(2), Some(4))
        );
        assert_eq!((a.drain, a.connect_timeout), (0.0, 9.0));
        assert_eq!(
            (a.inflight, a.batch, a.workers, a.threads),
            (5, 6, Some(2), 3)
        );
        assert_eq!((a.client_prefix.as_str(), a.broker_pid), ("id", Some(42)));
        assert_eq!(
            (a.username.as_deref(), a.password.as_deref()),
            (Some("u"), Some("pw"))
        );
        assert!(a.quiet);
    }

    #[test]
    fn protocol_levels() {
        assert_eq!(
            p("conn --protocol 3").unwrap().version(),
            ProtocolVersion::V31
        );
        assert_eq!(
            p("conn --protocol 4").unwrap().version(),
            ProtocolVersion::V311
        );
        let a = p("scenario fanout --protocol 5").unwrap();
        assert_eq!(a.version(), ProtocolVersion::V5);
        assert!(bad("conn --protocol 6") && bad("conn --protocol 2"));
    }

    #[test]
    fn commands_and_addresses() {
        assert_eq!(p("conn -c 5").unwrap().shape, Shape::Conn);
        assert_eq!(p("scenario conn").unwrap().shape, Shape::Conn);
        let a = p("pub -t bench/%i --ifaddr 127.0.0.5,127.0.0.6 --retain").unwrap();
        assert_eq!(a.shape, Shape::Pub);
        assert_eq!(a.topic.as_deref(), Some("bench/%i"));
        assert_eq!(
            a.src_addrs,
            vec![Ipv4Addr::new(127, 0, 0, 5), Ipv4Addr::new(127, 0, 0, 6)]
        );
        assert!(a.retain);
        assert_eq!(p("sub --src-addrs 3").unwrap().src_addrs.len(), 3);
        for (name, shape) in [
            ("emq2015", Shape::Emq2015),
            ("fanout", Shape::Fanout),
            ("fanin", Shape::Fanin),
            ("p2p", Shape::P2p),
        ] {
            assert_eq!(p(&format!("scenario {name}")).unwrap().shape, shape);
            assert_eq!(shape.name(), name);
        }
    }

    #[test]
    fn last_value_wins() {
        let a = p("pub --src-addrs 3 --ifaddr 127.0.0.9 --port 1 --port 2").unwrap();
        assert_eq!(
            (a.src_addrs, a.port),
            (vec![Ipv4Addr::new(127, 0, 0, 9)], 2)
        );
        let a = p("pub --ifaddr 127.0.0.9 --src-addrs 2 --json --json").unwrap();
        assert_eq!(a.src_addrs.len(), 2);
    }

    #[test]
    fn tls_and_websocket_flags() {
        let a =
            p("pub --tls --cafile ca.pem --cert c.pem --key k.pem --server-name b.test").unwrap();
        assert!(a.tls && !a.ws && !a.insecure);
        assert_eq!(a.cafile, Some(PathBuf::from("ca.pem")));
        assert_eq!(
            (a.cert, a.key),
            (Some(PathBuf::from("c.pem")), Some(PathBuf::from("k.pem")))
        );
        assert_eq!(a.server_name.as_deref(), Some("b.test"));
        let a = p("sub --tls --insecure --ws --ws-path /x").unwrap();
        assert!(a.tls && a.ws && a.insecure);
        assert_eq!(a.ws_path, "/x");
        // TLS options without --tls, half a key pair, both ways to trust.
        assert!(bad("pub --cafile ca.pem") && bad("pub --insecure"));
        assert!(bad("pub --server-name x") && bad("pub --ws-path /x"));
        assert!(bad("pub --tls --cert c.pem") && bad("pub --tls --key k.pem"));
        assert!(bad("pub --tls --insecure --cafile ca.pem"));
    }

    #[test]
    fn hidden_worker_flags() {
        let a = p("scenario p2p --worker-index 1 --worker-count 2").unwrap();
        assert_eq!((a.worker_index, a.worker_count), (Some(1), Some(2)));
    }

    #[test]
    fn errors() {
        assert!(help(""));
        assert!(help("--help"));
        assert!(help("help"));
        assert!(help("conn --help"));
        assert!(help("scenario -h"));
        assert!(bad("bogus"));
        assert!(bad("scenario nope"));
        assert!(bad("scenario"));
        assert!(bad("scenario sub"));
        assert!(bad("--json"));
        assert!(bad("pub -q 3"));
        assert!(bad("pub -s 10"));
        assert!(bad("pub -c"));
        assert!(bad("pub -c x"));
        assert!(bad("pub --src-addrs 0"));
        assert!(bad("pub --src-addrs 255"));
        assert!(bad("pub --ifaddr 1.2.3"));
        assert!(bad("pub --threads 0"));
        assert!(bad("pub --workers 0"));
        assert!(bad("pub -k 9"));
        assert!(bad("pub -R 0"));
        assert!(bad("pub -I 0"));
        assert!(bad("pub -d -1"));
        assert!(bad("pub -r nan"));
        assert!(bad("pub --whatever 1"));
    }
}
