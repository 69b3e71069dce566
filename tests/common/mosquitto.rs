//! A driver for the Eclipse Mosquitto command-line clients (`mosquitto_pub`,
//! `mosquitto_sub`, Debian package mosquitto-clients) against a broker: the
//! `coremq` binary with each of [`super::SHARD_COUNTS`], or an external
//! broker named by `COREMQ_INTEROP_BROKER` where a test allows one.
//!
//! Subscribers print one line per message in the format of their [`Line`]
//! type and are always bounded by `-W`; publishers must exit 0 (their QoS
//! flow completed) within [`WAIT`]. Every process is killed when its test
//! ends.

use super::binary::{external_broker, require_program, BrokerProcess, Finished, Proc};
use super::id_on;
use std::io::Write;
use std::marker::PhantomData;
use std::process::Command;
use std::time::{Duration, Instant};

/// What any expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);
/// Silence that stands for "nothing arrives".
pub const QUIET: Duration = Duration::from_millis(300);

/// One message as a subscriber prints it.
pub trait Line: Sized {
    /// The `mosquitto_sub -F` format: `MSG %t`, then [`Line::SEP`], then the rest.
    const FORMAT: &'static str;
    /// What follows the topic in a printed line.
    const SEP: char;
    /// A printed message line (starting `MSG `).
    fn parse(line: &str) -> Self;
}

/// The line as printed.
impl Line for String {
    const FORMAT: &'static str = "MSG %t %q %r %p";
    const SEP: char = ' ';
    fn parse(line: &str) -> String {
        line.to_string()
    }
}

/// How one test file runs the clients.
#[derive(Clone)]
pub struct Clients {
    /// Arguments given to every client before the others (protocol version).
    pub version: &'static [&'static str],
    /// Hard bound on every mosquitto_sub (`-W`, seconds).
    pub sub_limit_s: &'static str,
    /// Client id prefixes of publishers (homed on shard 0) and subscribers
    /// (homed on the last shard).
    pub pub_prefix: String,
    pub sub_prefix: String,
    /// How failure messages name a coremq with this many shards.
    pub describe: fn(usize) -> String,
    /// Whether `COREMQ_INTEROP_BROKER` replaces coremq.
    pub external: bool,
}

pub fn require_mosquitto() {
    for p in ["mosquitto_pub", "mosquitto_sub"] {
        require_program(p, "apt-get install -y mosquitto-clients");
    }
}

/// Run `f` against the external broker if `clients` allow one and one is
/// named, otherwise against a fresh coremq with one, two and four shards.
pub fn each_broker<M: Line>(clients: Clients, f: impl Fn(&Ctx<M>)) {
    require_mosquitto();
    if clients.external {
        if let Some((host, port)) = external_broker() {
            f(&Ctx {
                what: format!("{host}:{port}"),
                broker: None,
                host,
                port,
                cores: 1,
                clients,
                _line: PhantomData,
            });
            return;
        }
    }
    for cores in super::SHARD_COUNTS {
        let broker = BrokerProcess::start(cores);
        let clients = clients.clone();
        let ctx = Ctx {
            what: (clients.describe)(cores),
            host: "127.0.0.1".into(),
            port: broker.port,
            cores,
            broker: Some(broker),
            clients,
            _line: PhantomData,
        };
        f(&ctx);
        if let Some(b) = ctx.broker {
            b.stop();
        }
    }
}

/// One broker and the clients run against it; subscribers print `M`.
pub struct Ctx<M> {
    pub broker: Option<BrokerProcess>,
    pub host: String,
    pub port: u16,
    pub cores: usize,
    /// The broker, as failure messages name it.
    pub what: String,
    pub clients: Clients,
    _line: PhantomData<fn() -> M>,
}

impl<M: Line> Ctx<M> {
    pub fn cores(&self) -> usize {
        self.cores
    }

    pub fn what(&self) -> String {
        self.what.clone()
    }

    pub fn log(&self) -> String {
        self.broker
            .as_ref()
            .map_or_else(|| "(external broker)".into(), BrokerProcess::log)
    }

    /// A publisher id, homed on shard 0.
    pub fn pub_id(&self, name: &str) -> String {
        id_on(&format!("{}{name}", self.clients.pub_prefix), 0, self.cores)
    }

    /// A subscriber id, homed on the last shard.
    pub fn sub_id(&self, name: &str) -> String {
        let prefix = &self.clients.sub_prefix;
        id_on(&format!("{prefix}{name}"), self.cores - 1, self.cores)
    }

    pub fn base(&self, program: &str, id: &str) -> Command {
        let mut c = Command::new(program);
        c.args(self.clients.version).args([
            "-h",
            &self.host,
            "-p",
            &self.port.to_string(),
            "-i",
            id,
        ]);
        c
    }

    /// Start a subscriber and wait until it is subscribed: it also subscribes
    /// to `probe/ID`, and QoS 0 probes are published there until one is printed
    /// (mosquitto_sub flushes stdout per message, but not its `-d` lines).
    pub fn sub(&self, id: &str, args: &[&str]) -> Sub<M> {
        let probe = format!("probe/{id}");
        let mut c = self.base("mosquitto_sub", id);
        c.args(["-W", self.clients.sub_limit_s, "-F", M::FORMAT]);
        c.args(args).args(["-t", &probe]);
        let mut p = Proc::spawn(c, false);
        let end = Instant::now() + WAIT;
        let prefix = format!("MSG {probe}{}", M::SEP);
        loop {
            self.publish(
                &self.pub_id("probe"),
                &["-q", "0", "-t", &probe, "-m", "probe"],
            );
            if p.wait_line(Duration::from_millis(100), |l| l.starts_with(&prefix))
                .is_some()
            {
                break;
            }
            if Instant::now() > end {
                let (stdout, stderr) = p.output_so_far();
                panic!(
                    "[{}] {}: not subscribed within {WAIT:?}\nstdout: {stdout:?}\nstderr: {stderr}\nbroker log:\n{}",
                    self.what,
                    p.name,
                    self.log()
                );
            }
        }
        Sub {
            proc: p,
            _line: PhantomData,
        }
    }

    /// Run mosquitto_pub to completion; it must succeed.
    pub fn publish(&self, id: &str, args: &[&str]) {
        let mut c = self.base("mosquitto_pub", id);
        c.args(args);
        let out = Proc::spawn(c, false).finish(WAIT);
        self.assert_ok("mosquitto_pub", args, &out);
    }

    /// `mosquitto_pub -l`: one message per line, in order, on one connection.
    pub fn publish_lines(&self, id: &str, args: &[&str], lines: &[String]) {
        let mut c = self.base("mosquitto_pub", id);
        c.arg("-l").args(args);
        let mut p = Proc::spawn(c, true);
        for l in lines {
            writeln!(p.stdin(), "{l}").expect("write to mosquitto_pub");
        }
        let out = p.finish(WAIT);
        self.assert_ok("mosquitto_pub -l", args, &out);
    }

    pub fn assert_ok(&self, what: &str, args: &[&str], out: &Finished) {
        assert!(
            out.success(),
            "[{}] {what} {args:?} failed: {:?}\nstdout: {:?}\nstderr: {}\nbroker log:\n{}",
            self.what,
            out.status,
            out.stdout,
            out.stderr,
            self.log()
        );
    }
}

/// A running mosquitto_sub (see [`Ctx::sub`]).
pub struct Sub<M> {
    pub proc: Proc,
    _line: PhantomData<fn() -> M>,
}

impl<M: Line> Sub<M> {
    /// The messages printed so far (probes left out), without stopping it.
    pub fn so_far(&self) -> Vec<M> {
        let (stdout, _) = self.proc.output_so_far();
        messages(&stdout)
    }

    /// Wait (at most `within`) for `n` messages.
    pub fn wait_for(&self, n: usize, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.so_far().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.so_far().len() >= n
    }

    /// Wait for `n` messages, then QUIET more for extras (duplicates), and
    /// return every message printed, stopping the subscriber.
    pub fn expect(self, n: usize) -> Vec<M> {
        self.wait_for(n, WAIT);
        self.quiet()
    }

    /// Wait QUIET, kill it, and return every message printed (probes left out).
    pub fn quiet(self) -> Vec<M> {
        std::thread::sleep(QUIET);
        let out = self.proc.kill();
        messages(&out.stdout)
    }

    pub fn signal(&self, sig: libc::c_int) {
        self.proc.signal(sig);
    }
}

fn messages<M: Line>(stdout: &[String]) -> Vec<M> {
    stdout
        .iter()
        .filter(|l| is_message(l))
        .map(|l| M::parse(l))
        .collect()
}

/// A message line, not a probe.
pub fn is_message(l: &str) -> bool {
    l.starts_with("MSG ") && !l.starts_with("MSG probe/")
}

pub fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}
