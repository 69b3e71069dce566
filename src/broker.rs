//! The broker as a library: configure, hook, start on any port, stop.
//!
//! [`Broker::start`] checks the host, claims the listen address (a second
//! broker on it fails with "address in use"), binds one SO_REUSEPORT socket per
//! shard, builds the mailbox mesh and starts one pinned glommio executor per
//! shard; it returns a [`BrokerHandle`] that knows the bound address, reads
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
}

/// A running broker.
pub struct BrokerHandle {
    addr: SocketAddr,
    shards: usize,
    stop: Arc<AtomicBool>,
    board: Arc<MetricsBoard>,
    conns: Arc<ConnCount>,
    reloaders: Reloaders,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    /// The listen address is ours until the shards are joined (or the
    /// handle is dropped).
    _claim: listener::AddressClaim,
}

/// What every shard thread is given.
/// Threads of each shard's blocking pool (password hashing), not pinned.
const BLOCKING_THREADS: usize = 2;

struct ShardSeed {
    id: usize,
    shards: usize,
    config: Arc<Config>,
    hooks: Arc<Hooks>,
    board: Arc<MetricsBoard>,
    stop: Arc<AtomicBool>,
    conns: Arc<ConnCount>,
    listen_fd: OwnedFd,
    ends: mesh::MeshEnds,
    faults: Option<Arc<crate::faults::Faults>>,
    /// The password table and JWT key every shard shares.
    logins: crate::auth::login::Sources,
    acl: Arc<Reloadable<Acl>>,
}

impl Broker {
    pub fn new(config: Config) -> Self {
        Broker {
            config,
            hooks: Hooks::new(),
            reloaders: Reloaders::default(),
            faults: None,
        }
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
        let bind = self.config.bind_addr().map_err(StartError::Config)?;
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
        let (fds, addr) = listener::bind_all(bind, n, self.config.listener[0].backlog)
            .map_err(|e| StartError::Bind(bind, e))?;
        let claim = match early {
            Some(c) => c,
            None => listener::lock(addr).map_err(claim_error(addr))?,
        };
        let logins =
            crate::auth::login::Sources::load(&self.config.auth).map_err(StartError::Config)?;
        let mut reloaders = self.reloaders;
        if let Some(reload) = logins.reloader() {
            reloaders.add("password file", reload);
        }
        let acl = Reloadable::new(Acl::load(&self.config.acl).map_err(StartError::Config)?);
        if !acl.load().is_off() {
            log::info!("ACL: {} rules in force", acl.load().len());
        }
        reloaders.add("acl", acl_reloader(&acl, &self.config.acl));
        let ends = mesh::build(n, self.config.runtime.mailbox_capacity);
        let config = Arc::new(self.config);
        let hooks = Arc::new(self.hooks);
        let stop = Arc::new(AtomicBool::new(false));
        let board = MetricsBoard::new(n);
        let conns = ConnCount::new();
        log::info!(
            "coremq listening on {addr} with {n} shards on CPUs {cpus:?} (fd limit {nofile})"
        );
        let mut threads = Vec::with_capacity(n);
        for ((id, cpu), (listen_fd, ends)) in cpus.iter().enumerate().zip(fds.into_iter().zip(ends))
        {
            let seed = ShardSeed {
                id,
                shards: n,
                config: config.clone(),
                hooks: hooks.clone(),
                board: board.clone(),
                stop: stop.clone(),
                conns: conns.clone(),
                listen_fd,
                ends,
                faults: self.faults.clone(),
                logins: logins.clone(),
                acl: acl.clone(),
            };
            let rt = &config.runtime;
            let spawned = LocalExecutorBuilder::new(Placement::Fixed(*cpu))
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
        Ok(BrokerHandle {
            addr,
            shards: n,
            stop,
            board,
            conns,
            reloaders,
            threads,
            _claim: claim,
        })
    }
}

impl BrokerHandle {
    /// The address the listeners are bound to (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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

    /// Open connections on the node right now.
    pub fn connections(&self) -> usize {
        self.conns.get()
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
            threads, _claim, ..
        } = self;
        let mut errors = Vec::new();
        for (i, t) in threads.into_iter().enumerate() {
            if let Err(e) = t.join() {
                errors.push(format!("shard {i}: {e}"));
            }
        }
        drop(_claim);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
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
    {
        let mut sh = shard.borrow_mut();
        sh.logins = Logins::new(&sh.cfg.auth, &seed.logins, sh.hooks.has_authenticate());
    }
    shard.borrow_mut().acl = Local::new(seed.acl);
    mesh::spawn_tasks(&shard, seed.ends, crate::conn::spawn_handoff);
    glommio::spawn_local(crate::protocol::deliver::fanout_task(shard.clone())).detach();
    // SAFETY: a listening socket we own, moved into glommio on its executor.
    let listener = unsafe { TcpListener::from_raw_fd(seed.listen_fd.into_raw_fd()) };
    let acceptor = glommio::spawn_local(listener::accept_loop(shard.clone(), listener, seed.conns));
    tick::run(shard.clone()).await;
    acceptor.cancel().await;
    shutdown(&shard).await;
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
