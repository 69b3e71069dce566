//! The broker as a library: configure, hook, start on any port, stop.
//!
//! [`Broker::start`] checks the host, reads each TLS listener's files (a bad
//! one is a [`StartError::Tls`] naming it; a reloader re-reads them on
//! SIGHUP), claims every listener's address (a second broker on it fails
//! with "address in use"), binds one SO_REUSEPORT socket per shard and
//! listener, builds the mailbox mesh and starts one pinned glommio executor per
//! shard; it returns a [`BrokerHandle`] that knows the bound addresses, reads
//! the merged counters and stops the shards. The `coremq` binary is a thin
//! main over this.

use crate::acl::Acl;
use crate::auth::login::Logins;
use crate::config::Config;
use crate::conn_limit::ConnCount;
use crate::hooks::Hooks;
use crate::host;
use crate::listener;
use crate::metrics::{Metrics, MetricsBoard};
use crate::reload::{Local, ReloadReport, Reloadable, Reloaders};
use crate::shard::{mesh, tick, CloseReason, Shard, ShardRef};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the broker did not start.
#[derive(Debug)]
pub enum StartError {
    Config(crate::config::ConfigError),
    Host(host::HostError),
    Bind(SocketAddr, std::io::Error),
    /// Another coremq, or another program, listens on the address; says which.
    AddressInUse(SocketAddr, &'static str),
    /// A TLS listener's certificate, key or CA file is missing or bad; names
    /// the listener and the file.
    Tls(String),
    /// The storage directory is locked by another broker, unreadable, or
    /// its log is damaged (the message says what to do).
    Storage(String),
    Executor(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "bad configuration: {e}"),
            StartError::Host(e) => write!(f, "{e}"),
            StartError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            StartError::AddressInUse(a, why) => {
                write!(f, "cannot listen on {a}: address in use ({why})")
            }
            StartError::Tls(e) => write!(f, "bad TLS files: {e}"),
            StartError::Storage(e) => write!(f, "{e}"),
            StartError::Executor(e) => write!(f, "cannot start shard executors: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A broker, configured and not yet started.
#[derive(Debug, Default)]
pub struct Broker {
    config: Config,
    hooks: Hooks,
    /// What SIGHUP re-reads; the broker's own files are added at start.
    reloaders: Reloaders,
    faults: Option<Arc<crate::faults::Faults>>,
    /// Start even if the log is damaged before its end (`--recover`).
    recover: bool,
}

/// A running broker.
pub struct BrokerHandle {
    /// Each listener's bound address, in configuration order.
    addrs: Vec<SocketAddr>,
    /// The management listener's address, when it is on.
    http_addr: Option<SocketAddr>,
    shards: usize,
    stop: Arc<AtomicBool>,
    board: Arc<MetricsBoard>,
    endpoints: Arc<Vec<Arc<listener::Endpoint>>>,
    reloaders: Reloaders,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    /// The listen addresses are ours until the shards are joined (or the
    /// handle is dropped).
    _claims: Vec<listener::AddressClaim>,
    /// The storage directory is ours likewise.
    _storage_lock: Option<crate::storage::layout::DirLock>,
}

/// One listener's sockets (one per shard), its address and its claim.
struct BoundListener {
    fds: Vec<OwnedFd>,
    addr: SocketAddr,
    claim: listener::AddressClaim,
}

/// How the start log describes listener `i`.
fn describe(i: usize, l: &crate::config::ListenerConfig, addr: SocketAddr) -> String {
    let mut line = format!("listener {i}: {:?} on {addr}", l.kind);
    if l.proxy_protocol {
        line.push_str(", PROXY protocol");
    }
    if l.max_connection_rate > 0 {
        line.push_str(&format!(
            ", at most {} connections/s",
            l.max_connection_rate
        ));
    }
    line
}

/// Claim listener `i`'s address and bind one socket per shard to it.
fn bind_listener(config: &Config, i: usize, shards: usize) -> Result<BoundListener, StartError> {
    let l = &config.listener[i];
    let bind = l
        .bind_addr(&config.listener.key(i))
        .map_err(StartError::Config)?;
    let claim_error = |a: SocketAddr| {
        move |e| match e {
            listener::ClaimError::InUse(why) => StartError::AddressInUse(a, why),
            listener::ClaimError::Io(e) => StartError::Bind(a, e),
        }
    };
    // Port 0: the kernel picks a port nobody listens on; lock that one.
    let early = (bind.port() != 0)
        .then(|| listener::claim(bind, listener::CLAIM_WAIT).map_err(claim_error(bind)))
        .transpose()?;
    let (fds, addr) =
        listener::bind_all(bind, shards, l.backlog).map_err(|e| StartError::Bind(bind, e))?;
    let claim = match early {
        Some(c) => c,
        None => listener::lock(addr).map_err(claim_error(addr))?,
    };
    Ok(BoundListener { fds, addr, claim })
}

/// Each listener's TLS configuration (None for plain ones), read from its
/// files now; a reloader re-reads them on SIGHUP.
fn tls_configs(
    config: &Config,
    reloaders: &mut Reloaders,
) -> Result<Vec<Option<Arc<Reloadable<rustls::ServerConfig>>>>, StartError> {
    let mut out = Vec::with_capacity(config.listener.len());
    for (i, l) in config.listener.iter().enumerate() {
        let Some(t) = l.tls.as_ref() else {
            out.push(None);
            continue;
        };
        let key = format!("{}.tls", config.listener.key(i));
        let built = crate::tls::config::server_config(t)
            .map_err(|e| StartError::Tls(format!("{key}: {e}")))?;
        let shared = Reloadable::new(built);
        let (t, target) = (t.clone(), shared.clone());
        reloaders.add("tls certificates", move || {
            let built = crate::tls::config::server_config(&t).map_err(|e| format!("{key}: {e}"))?;
            target.store(built);
            Ok(format!("{key}: {} reloaded", t.cert_file))
        });
        out.push(Some(shared));
    }
    Ok(out)
}

/// Threads of each shard's blocking pool (password hashing), not pinned.
const BLOCKING_THREADS: usize = 2;

/// What every shard thread is given.
struct ShardSeed {
    id: usize,
    shards: usize,
    config: Arc<Config>,
    hooks: Arc<Hooks>,
    board: Arc<MetricsBoard>,
    stop: Arc<AtomicBool>,
    endpoints: Arc<Vec<Arc<listener::Endpoint>>>,
    /// One listening socket per listener, in configuration order.
    listen_fds: Vec<OwnedFd>,
    ends: mesh::MeshEnds,
    faults: Option<Arc<crate::faults::Faults>>,
    /// The password table and JWT key every shard shares.
    logins: crate::auth::login::Sources,
    acl: Arc<Reloadable<Acl>>,
    /// The storage start plan (None: storage off).
    storage: Option<Arc<crate::storage::start::Plan>>,
    durable: Arc<crate::storage::DurableBoard>,
    /// The management listener's socket (shard 0, `[http] enabled`).
    http: Option<OwnedFd>,
}

impl Broker {
    pub fn new(config: Config) -> Self {
        Broker {
            config,
            hooks: Hooks::new(),
            reloaders: Reloaders::default(),
            faults: None,
            recover: false,
        }
    }

    /// Start even when a shard's log is damaged before its end, keeping
    /// what is readable (`coremq --recover`).
    pub fn recover(mut self, yes: bool) -> Self {
        self.recover = yes;
        self
    }

    /// Start with fault injection: `faults` can slow or fail a shard's
    /// writes and mailbox sends while the broker runs (tests).
    #[doc(hidden)]
    pub fn with_faults(mut self, faults: Arc<crate::faults::Faults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Register hooks before starting.
    pub fn hooks_mut(&mut self) -> &mut Hooks {
        &mut self.hooks
    }

    /// Check the host, bind the listeners and start the shards.
    pub fn start(self) -> Result<BrokerHandle, StartError> {
        self.config.validate().map_err(StartError::Config)?;
        host::check_memlock().map_err(StartError::Host)?;
        host::probe_io_uring().map_err(StartError::Host)?;
        let nofile = host::raise_nofile();
        let cpus = host::resolve_cpus(&self.config.runtime.cores).map_err(StartError::Host)?;
        let n = cpus.len();
        let mut reloaders = self.reloaders;
        let tls = tls_configs(&self.config, &mut reloaders)?;
        let mut bound = Vec::with_capacity(self.config.listener.len());
        for i in 0..self.config.listener.len() {
            bound.push(bind_listener(&self.config, i, n)?);
        }
        let logins =
            crate::auth::login::Sources::load(&self.config.auth).map_err(StartError::Config)?;
        if let Some(reload) = logins.reloader() {
            reloaders.add("password file", reload);
        }
        if let Some(reload) = logins.jwt_reloader() {
            reloaders.add("jwt key", reload);
        }
        let acl = Reloadable::new(Acl::load(&self.config.acl).map_err(StartError::Config)?);
        if !acl.load().is_off() {
            log::info!("ACL: {} rules in force", acl.load().len());
        }
        reloaders.add("acl", acl_reloader(&acl, &self.config.acl));
        let (storage_lock, plan) = open_storage(&self.config, n, self.recover)?;
        let mut http = bind_http(&self.config)?;
        let http_addr = http.as_ref().map(|(_, a)| *a);
        let durable = crate::storage::DurableBoard::new(n);
        let ends = mesh::build(n, self.config.runtime.mailbox_capacity);
        let config = Arc::new(self.config);
        let hooks = Arc::new(self.hooks);
        let stop = Arc::new(AtomicBool::new(false));
        let board = MetricsBoard::new(n);
        let mut per_shard: Vec<Vec<OwnedFd>> = (0..n).map(|_| Vec::new()).collect();
        let mut endpoints = Vec::with_capacity(bound.len());
        let (mut addrs, mut claims, mut described) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (b, tls)) in bound.into_iter().zip(tls).enumerate() {
            for (shard, fd) in b.fds.into_iter().enumerate() {
                per_shard[shard].push(fd);
            }
            let l = &config.listener[i];
            described.push(describe(i, l, b.addr));
            endpoints.push(Arc::new(listener::Endpoint {
                index: i as u16,
                count: ConnCount::new(),
                tls,
            }));
            addrs.push(b.addr);
            claims.push(b.claim);
        }
        let endpoints = Arc::new(endpoints);
        let mut threads = Vec::with_capacity(n);
        for ((id, cpu), (listen_fds, ends)) in
            cpus.iter().enumerate().zip(per_shard.into_iter().zip(ends))
        {
            let seed = ShardSeed {
                id,
                shards: n,
                config: config.clone(),
                hooks: hooks.clone(),
                board: board.clone(),
                stop: stop.clone(),
                endpoints: endpoints.clone(),
                listen_fds,
                ends,
                faults: self.faults.clone(),
                logins: logins.clone(),
                acl: acl.clone(),
                storage: plan.as_ref().map(|(p, _)| p.clone()),
                durable: durable.clone(),
                http: if id == 0 {
                    http.take().map(|(fd, _)| fd)
                } else {
                    None
                },
            };
            let rt = &config.runtime;
            let placement = match rt.pin {
                true => Placement::Fixed(*cpu),
                false => Placement::Unbound,
            };
            let spawned = LocalExecutorBuilder::new(placement)
                .name(&format!("coremq-shard-{id}"))
                .io_memory(64 << 10)
                .ring_depth(rt.ring_depth)
                .spin_before_park(Duration::from_micros(rt.spin_before_park_us))
                // Password hashing runs here, off the shard's CPU.
                .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS))
                .spawn(move || shard_main(seed));
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    return Err(StartError::Executor(e.to_string()));
                }
            }
        }
        let mut replayed = Vec::new();
        if let Some((plan, reports)) = &plan {
            match storage_ready(plan, reports, n) {
                Ok(lines) => replayed = lines,
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
        // This line first: scripts and tests read the address from it.
        log::info!(
            "coremq listening on {} with {n} shards on CPUs {cpus:?} (fd limit {nofile})",
            addrs[0]
        );
        for line in described.iter().chain(&replayed) {
            log::info!("{line}");
        }
        if let Some(a) = http_addr {
            log::info!("http listening on {a}");
        }
        Ok(BrokerHandle {
            addrs,
            http_addr,
            shards: n,
            stop,
            board,
            endpoints,
            reloaders,
            threads,
            _claims: claims,
            _storage_lock: storage_lock,
        })
    }
}

impl BrokerHandle {
    /// The address the first listener is bound to (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The address listener `i` is bound to (port 0 resolved); None past the last.
    pub fn listener_addr(&self, i: usize) -> Option<SocketAddr> {
        self.addrs.get(i).copied()
    }

    /// The management HTTP listener's address (None: `[http]` is off).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Number of shards running.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Counters summed over shards, as of their last tick (≤ 100 ms old).
    pub fn metrics(&self) -> Metrics {
        self.board.total()
    }

    /// The board the shards post their counters to; outlives [`join`](Self::join).
    pub fn metrics_board(&self) -> Arc<MetricsBoard> {
        self.board.clone()
    }

    /// Open connections on the node right now (all listeners).
    pub fn connections(&self) -> usize {
        self.endpoints.iter().map(|e| e.count.get()).sum()
    }

    /// Re-read the files the configuration names (certificates, password
    /// file, ACL), as on SIGHUP. Each that fails keeps its old contents and
    /// is logged; connections stay up either way.
    pub fn reload(&self) -> ReloadReport {
        self.reloaders.run()
    }

    /// Ask every shard to stop: listeners close, connections close.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Wait for every shard to finish (call [`stop`](Self::stop) first).
    /// The listen address is released once every shard has stopped.
    pub fn join(self) -> Result<(), String> {
        let BrokerHandle {
            threads, _claims, ..
        } = self;
        let mut errors = Vec::new();
        for (i, t) in threads.into_iter().enumerate() {
            if let Err(e) = t.join() {
                errors.push(format!("shard {i}: {e}"));
            }
        }
        drop(_claims);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// The storage start plan and the channel its shards report on.
type StoragePlan = (
    Arc<crate::storage::start::Plan>,
    std::sync::mpsc::Receiver<Result<String, String>>,
);

/// Lock the storage directory and plan the start (None: storage off).
fn open_storage(
    config: &Config,
    shards: usize,
    recover: bool,
) -> Result<(Option<crate::storage::layout::DirLock>, Option<StoragePlan>), StartError> {
    if !config.storage.enabled {
        return Ok((None, None));
    }
    let dir = std::path::Path::new(&config.storage.dir);
    let lock = crate::storage::layout::lock(dir).map_err(|e| StartError::Storage(e.0))?;
    let layout =
        crate::storage::layout::Layout::open(dir, shards).map_err(|e| StartError::Storage(e.0))?;
    if layout.resharding() {
        log::info!(
            "storage: {} shards now, {} before: every persistent session moves to its new home shard",
            shards,
            layout.old_shards
        );
    }
    let plan = crate::storage::start::Plan::new(layout, recover);
    Ok((Some(lock), Some(plan)))
}

/// Wait for every shard's replay; on success make the new generation the
/// one in force and let the shards serve.
fn storage_ready(
    plan: &crate::storage::start::Plan,
    reports: &std::sync::mpsc::Receiver<Result<String, String>>,
    shards: usize,
) -> Result<Vec<String>, StartError> {
    let (mut failure, mut lines) = (None, Vec::new());
    for _ in 0..shards {
        match reports.recv() {
            Ok(Ok(line)) => lines.push(line),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => {
                failure = failure.or(Some("storage: a shard stopped during its replay".into()))
            }
        }
    }
    let result = match failure {
        None => plan.layout.commit().map_err(|e| e.0),
        Some(e) => Err(e),
    };
    plan.release(result.is_ok());
    result.map(|()| lines).map_err(StartError::Storage)
}

/// Bind the management listener (`[http]`), when it is on: a plain
/// socket without SO_REUSEPORT, so a second broker on the address fails.
fn bind_http(config: &Config) -> Result<Option<(OwnedFd, SocketAddr)>, StartError> {
    if !config.http.enabled {
        return Ok(None);
    }
    let addr = config.http.bind_addr().map_err(StartError::Config)?;
    let l = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => StartError::AddressInUse(addr, "the [http] listener"),
        _ => StartError::Bind(addr, e),
    })?;
    let bound = l.local_addr().map_err(|e| StartError::Bind(addr, e))?;
    l.set_nonblocking(true)
        .map_err(|e| StartError::Bind(addr, e))?;
    Ok(Some((OwnedFd::from(l), bound)))
}

/// Re-read the ACL (the inline rules and `acl.file`); on an error the
/// rules in force stay.
fn acl_reloader(
    shared: &Arc<Reloadable<Acl>>,
    cfg: &crate::config::AclConfig,
) -> impl Fn() -> Result<String, String> + Send + Sync + 'static {
    let (shared, cfg) = (shared.clone(), cfg.clone());
    move || {
        let acl = Acl::load(&cfg).map_err(|e| e.0)?;
        let n = acl.len();
        shared.store(acl);
        Ok(format!("{n} rules"))
    }
}

/// The life of one shard's executor.
async fn shard_main(seed: ShardSeed) {
    let shard: ShardRef = Rc::new(RefCell::new(Shard::new(
        seed.id,
        seed.shards,
        seed.config,
        seed.hooks,
        seed.board,
        seed.stop,
    )));
    shard.borrow_mut().faults = seed.faults;
    crate::transport::ready::set_window(Duration::from_micros(
        shard.borrow().cfg.runtime.wake_window_us,
    ));
    {
        let mut sh = shard.borrow_mut();
        sh.logins = Logins::new(&sh.cfg.auth, &seed.logins, sh.hooks.has_authenticate());
    }
    shard.borrow_mut().acl = Local::new(seed.acl);
    mesh::spawn_tasks(&shard, seed.ends, crate::conn::spawn_handoff);
    glommio::spawn_local(crate::protocol::deliver::fanout_task(shard.clone())).detach();
    shard.borrow_mut().storage.set_board(seed.durable);
    let mut writer = None;
    if let Some(plan) = &seed.storage {
        match crate::storage::start::open(&shard, plan).await {
            Some(seg) => {
                writer = Some(glommio::spawn_local(crate::storage::writer::run(
                    shard.clone(),
                    seg,
                )))
            }
            None => {
                // Another shard failed: the broker does not start.
                tick::run(shard.clone()).await;
                shard.borrow_mut().mesh.close();
                return;
            }
        }
    }
    let mut acceptors = Vec::with_capacity(seed.listen_fds.len() + 1);
    if seed.id == 0 {
        let max: usize = shard
            .borrow()
            .cfg
            .listener
            .iter()
            .map(|l| l.max_connections)
            .sum();
        let ops = crate::control::sys::Ops::new(max as u64);
        glommio::spawn_local(crate::control::sys::run(shard.clone(), ops.clone())).detach();
        if let Some(fd) = seed.http {
            // SAFETY: a listening socket we own, moved into glommio on its executor.
            let l = unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) };
            acceptors.push(glommio::spawn_local(crate::http::serve(
                shard.clone(),
                ops,
                l,
            )));
        }
    }
    for (fd, ep) in seed.listen_fds.into_iter().zip(seed.endpoints.iter()) {
        let ep = ep.clone();
        acceptors.push(glommio::spawn_local(listener::accept_loop(
            shard.clone(),
            fd,
            ep,
        )));
    }
    tick::run(shard.clone()).await;
    for a in acceptors {
        a.cancel().await;
    }
    shutdown(&shard).await;
    if let Some(w) = writer {
        shard.borrow_mut().storage.close();
        w.await;
    }
}

/// Close every connection, give them a moment to finish, stop the mesh.
async fn shutdown(shard: &ShardRef) {
    {
        let mut sh = shard.borrow_mut();
        sh.mesh.lift_backpressure();
        sh.resume_readers();
        for k in sh.conns.keys() {
            sh.close_conn(k, CloseReason::Shutdown);
        }
    }
    for _ in 0..50 {
        if shard.borrow().conns.is_empty() {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    let mut sh = shard.borrow_mut();
    sh.mesh.close();
    sh.post_metrics();
    log::debug!("shard {} stopped", sh.id);
}
