//! Command-line parsing for `coremq-bench` (by hand, no clap).
//!
//! Owns the [`Args`] struct: every knob of a run. Called by [`crate::run`]
//! in the parent and again in each worker (which gets the same argv plus the
//! hidden `--worker-index`/`--worker-count` flags).

use std::fmt;
use std::net::Ipv4Addr;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Open and hold connections; no traffic except keepalive.
    Conn,
    /// Subscribers only (traffic comes from someone else).
    Sub,
    /// Publishers only.
    Pub,
    /// C clients, C/5 topics, each subscribes to one and publishes to it: 5x fan-out.
    Emq2015,
    /// P publishers, all of C subscribers on one topic.
    Fanout,
    /// C publishers on their own topics, one subscriber on a wildcard.
    Fanin,
    /// Pairs: client i publishes to the topic client i^1 subscribes to.
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

    fn scenario(name: &str) -> Option<Shape> {
        Some(match name {
            "emq2015" => Shape::Emq2015,
            "fanout" => Shape::Fanout,
            "fanin" => Shape::Fanin,
            "p2p" => Shape::P2p,
            "conn" => Shape::Conn,
            _ => return None,
        })
    }
}

/// Every option of a run. `None` means "the shape's default" (see `scenario.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub shape: Shape,
    pub host: String,
    pub port: u16,
    /// Clients (subscribers for fanout, publishers for fanin).
    pub clients: Option<u64>,
    /// Publishers of fanout (default 1).
    pub publishers: Option<u64>,
    /// Number of topics for `sub`/`pub`/`emq2015` (default C/5 for emq2015).
    pub topics: Option<u64>,
    /// Topic pattern for `sub`/`pub`: `%i` is the client index.
    pub topic: Option<String>,
    /// Total publish rate, messages/s over all publishers; 0 = as fast as possible.
    pub rate: Option<f64>,
    /// Per-publisher interval in ms (overrides `rate`).
    pub interval_ms: Option<f64>,
    /// Payload bytes (at least 24: the verification header).
    pub size: usize,
    pub qos: Option<u8>,
    pub retain: bool,
    /// Seconds of publishing (or holding, for `conn`/`sub`).
    pub duration: f64,
    /// Seconds to wait for deliveries after publishing stops.
    pub drain: f64,
    /// New connections per second, over all workers.
    pub conn_rate: f64,
    /// Seconds the whole connect phase may take before the run goes on.
    pub connect_timeout: f64,
    pub keepalive: u16,
    /// QoS 1/2 messages a publisher may have unacknowledged.
    pub inflight: u32,
    /// Most messages one publisher sends per tick when saturating.
    pub batch: u32,
    pub workers: Option<u32>,
    pub threads: u32,
    /// Local source addresses; client i binds `src_addrs[i % len]`.
    pub src_addrs: Vec<Ipv4Addr>,
    pub client_prefix: String,
    pub json: bool,
    pub quiet: bool,
    pub broker_pid: Option<u32>,
    /// Hidden: set in worker processes.
    pub worker_index: Option<u32>,
    pub worker_count: Option<u32>,
}

impl Args {
    fn new(shape: Shape) -> Args {
        Args {
            shape,
            host: "127.0.0.1".into(),
            port: 1883,
            clients: None,
            publishers: None,
            topics: None,
            topic: None,
            rate: None,
            interval_ms: None,
            size: 64,
            qos: None,
            retain: false,
            duration: 10.0,
            drain: 2.0,
            conn_rate: 2000.0,
            connect_timeout: 60.0,
            keepalive: 300,
            inflight: 64,
            batch: 64,
            workers: None,
            threads: 1,
            src_addrs: (1..=8).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
            client_prefix: "bench".into(),
            json: false,
            quiet: false,
            broker_pid: None,
            worker_index: None,
            worker_count: None,
        }
    }
}

/// A command line that could not be parsed; `Help` is not an error.
#[derive(Debug, PartialEq)]
pub enum ArgError {
    Help,
    Bad(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Help => f.write_str(USAGE),
            ArgError::Bad(m) => write!(f, "{m}\n\n{USAGE}"),
        }
    }
}

pub const USAGE: &str = "\
usage: coremq-bench <conn|sub|pub|scenario NAME> [options]
  scenarios: emq2015 fanout fanin p2p conn
  --host H (127.0.0.1)  --port P (1883)
  -c, --clients N        clients (fanout: subscribers; fanin: publishers)
  --publishers N         fanout publishers (1)
  --topics T             topics (emq2015: C/5; sub/pub: use bench/%i mod T)
  -t, --topic PATTERN    sub/pub topic, %i = client index (bench/%i)
  -r, --rate R           total messages/s over all publishers, 0 = saturate
  -I, --interval MS      per-publisher interval (overrides --rate)
  -s, --size BYTES (64, min 24)  -q, --qos 0|1|2  --retain
  -d, --duration S (10)  --drain S (2)
  -R, --conn-rate N/s (2000)  --connect-timeout S (60)  -k, --keepalive S (300)
  --inflight N (64)  --batch N (64)
  --workers K (ceil(C/19000))  --threads N (1)
  --src-addrs N | --ifaddr A,B,..   source addresses (127.0.0.1..8)
  --prefix ID   --json   --quiet   --broker-pid PID";

/// Parse argv (without the program name).
pub fn parse(argv: &[String]) -> Result<Args, ArgError> {
    let mut it = argv.iter().map(String::as_str).peekable();
    let shape = match it.next() {
        None | Some("-h") | Some("--help") | Some("help") => return Err(ArgError::Help),
        Some("conn") => Shape::Conn,
        Some("sub") => Shape::Sub,
        Some("pub") => Shape::Pub,
        Some("scenario") => {
            let name = it.next().unwrap_or("");
            Shape::scenario(name).ok_or_else(|| bad(format!("unknown scenario '{name}'")))?
        }
        Some(other) => return Err(bad(format!("unknown command '{other}'"))),
    };
    let mut a = Args::new(shape);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(ArgError::Help);
        }
        if apply_switch(&mut a, flag) {
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| bad(format!("{flag} needs a value")))?;
        apply_value(&mut a, flag, value)?;
    }
    validate(&a)?;
    Ok(a)
}

fn bad(m: String) -> ArgError {
    ArgError::Bad(m)
}

/// Flags without a value. Returns false if `flag` is not one.
fn apply_switch(a: &mut Args, flag: &str) -> bool {
    match flag {
        "--retain" => a.retain = true,
        "--json" => a.json = true,
        "--quiet" => a.quiet = true,
        _ => return false,
    }
    true
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, ArgError> {
    v.parse()
        .map_err(|_| bad(format!("{flag}: bad number '{v}'")))
}

fn apply_value(a: &mut Args, flag: &str, v: &str) -> Result<(), ArgError> {
    match flag {
        "--host" => a.host = v.to_string(),
        "--port" | "-p" => a.port = num(flag, v)?,
        "-c" | "--clients" => a.clients = Some(num(flag, v)?),
        "--publishers" => a.publishers = Some(num(flag, v)?),
        "--topics" => a.topics = Some(num(flag, v)?),
        "-t" | "--topic" => a.topic = Some(v.to_string()),
        "-r" | "--rate" => a.rate = Some(num(flag, v)?),
        "-I" | "--interval" => a.interval_ms = Some(num(flag, v)?),
        "-s" | "--size" => a.size = num(flag, v)?,
        "-q" | "--qos" => a.qos = Some(num(flag, v)?),
        "-d" | "--duration" => a.duration = num(flag, v)?,
        "--drain" => a.drain = num(flag, v)?,
        "-R" | "--conn-rate" => a.conn_rate = num(flag, v)?,
        "--connect-timeout" => a.connect_timeout = num(flag, v)?,
        "-k" | "--keepalive" => a.keepalive = num(flag, v)?,
        "--inflight" => a.inflight = num(flag, v)?,
        "--batch" => a.batch = num(flag, v)?,
        "--workers" => a.workers = Some(num(flag, v)?),
        "--threads" => a.threads = num(flag, v)?,
        "--src-addrs" => a.src_addrs = src_range(num(flag, v)?)?,
        "--ifaddr" => a.src_addrs = addr_list(v)?,
        "--prefix" => a.client_prefix = v.to_string(),
        "--broker-pid" => a.broker_pid = Some(num(flag, v)?),
        "--worker-index" => a.worker_index = Some(num(flag, v)?),
        "--worker-count" => a.worker_count = Some(num(flag, v)?),
        _ => return Err(bad(format!("unknown option '{flag}'"))),
    }
    Ok(())
}

/// 127.0.0.1 ..= 127.0.0.n (n <= 254 keeps it in 127.0.0.0/24).
fn src_range(n: u32) -> Result<Vec<Ipv4Addr>, ArgError> {
    if n == 0 || n > 254 {
        return Err(bad(format!("--src-addrs must be 1..254, got {n}")));
    }
    Ok((1..=n).map(|i| Ipv4Addr::new(127, 0, 0, i as u8)).collect())
}

fn addr_list(v: &str) -> Result<Vec<Ipv4Addr>, ArgError> {
    let list: Result<Vec<Ipv4Addr>, _> = v.split(',').map(|s| s.trim().parse()).collect();
    match list {
        Ok(l) if !l.is_empty() => Ok(l),
        _ => Err(bad(format!("--ifaddr: bad address list '{v}'"))),
    }
}

fn validate(a: &Args) -> Result<(), ArgError> {
    if a.size < crate::payload::HEADER_LEN {
        return Err(bad(format!(
            "--size must be >= {}",
            crate::payload::HEADER_LEN
        )));
    }
    if matches!(a.qos, Some(q) if q > 2) {
        return Err(bad("--qos must be 0, 1 or 2".into()));
    }
    let finite = |x: f64| x.is_finite() && x >= 0.0;
    if !finite(a.duration) || !finite(a.drain) || !finite(a.connect_timeout) {
        return Err(bad("durations must be finite and >= 0".into()));
    }
    if !(a.conn_rate.is_finite() && a.conn_rate > 0.0) {
        return Err(bad("--conn-rate must be > 0".into()));
    }
    if a.rate.is_some_and(|r| !finite(r)) || a.interval_ms.is_some_and(|i| i.is_nan() || i <= 0.0) {
        return Err(bad("--rate must be >= 0 and --interval > 0".into()));
    }
    if a.threads == 0 || a.workers == Some(0) || a.inflight == 0 || a.batch == 0 {
        return Err(bad(
            "--threads, --workers, --inflight, --batch must be >= 1".into(),
        ));
    }
    if a.keepalive < 10 {
        return Err(bad("--keepalive must be >= 10 s".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, ArgError> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&v)
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
    }

    #[test]
    fn hidden_worker_flags() {
        let a = p("scenario p2p --worker-index 1 --worker-count 2").unwrap();
        assert_eq!((a.worker_index, a.worker_count), (Some(1), Some(2)));
    }

    #[test]
    fn errors() {
        assert_eq!(p(""), Err(ArgError::Help));
        assert_eq!(p("conn --help"), Err(ArgError::Help));
        assert!(matches!(p("bogus"), Err(ArgError::Bad(_))));
        assert!(matches!(p("scenario nope"), Err(ArgError::Bad(_))));
        assert!(matches!(p("pub -q 3"), Err(ArgError::Bad(_))));
        assert!(matches!(p("pub -s 10"), Err(ArgError::Bad(_))));
        assert!(matches!(p("pub -c"), Err(ArgError::Bad(_))));
        assert!(matches!(p("pub -c x"), Err(ArgError::Bad(_))));
        assert!(matches!(p("pub --src-addrs 0"), Err(ArgError::Bad(_))));
        assert!(matches!(p("pub --threads 0"), Err(ArgError::Bad(_))));
        assert!(matches!(p("pub --whatever 1"), Err(ArgError::Bad(_))));
    }
}
