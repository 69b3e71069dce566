//! Slow login checks and the CONNECT held while one runs.
//!
//! The login decision (`auth::login`) answers most CONNECTs at once; a
//! password hash to verify, or the embedder's authenticate hook, takes a
//! [`Check`]. The CONNECT handler (`protocol/login.rs`) then parks the
//! CONNECT in a [`Pending`] (the connection's `Phase::Verifying`) with the
//! [`Job`] to run; the connection task (`crate::conn`) takes the job, runs
//! it with [`run`] — hashing on glommio's blocking thread pool, the hook's
//! future on the shard itself — without blocking the shard, and hands the
//! [`AuthDecision`] back. Packets that arrive meanwhile are held in order
//! ([`Pending::hold`], at most [`MAX_HELD`]) and handled after CONNACK, or
//! dropped with the connection on a refusal.

use super::login::{AuthDecision, LoginRequest, Refusal};
use super::passwd::Hash;
use crate::codec::{Connect, Packet};
use crate::hooks::Hooks;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Packets a client may send between CONNECT and CONNACK while its login
/// is checked (the connection task reads nothing more meanwhile, so this
/// only bounds what one read brought).
pub const MAX_HELD: usize = 1024;

/// Password hashes one shard may have queued or running on its blocking
/// pool; a login beyond it is refused 0x03 (MQTT 5 0x88) at once, so a
/// flood of bad logins cannot queue unbounded work (counted in
/// `auth_busy_refused`).
pub const MAX_HASHING: usize = 128;

/// A place among a shard's [`MAX_HASHING`] hashes, held until the hash is
/// done (dropped on the blocking thread) or abandoned.
#[derive(Debug)]
pub struct HashSlot(Arc<AtomicUsize>);

impl HashSlot {
    /// A place, if fewer than [`MAX_HASHING`] are taken.
    pub fn take(taken: &Arc<AtomicUsize>) -> Option<HashSlot> {
        let ok = taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_HASHING).then_some(n + 1)
            })
            .is_ok();
        ok.then(|| HashSlot(taken.clone()))
    }
}

impl Clone for HashSlot {
    /// Another place (a copy of a held CONNECT counts as one more).
    fn clone(&self) -> HashSlot {
        self.0.fetch_add(1, Ordering::AcqRel);
        HashSlot(self.0.clone())
    }
}

impl Drop for HashSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which slow check a login needs (from the decision).
#[derive(Debug, Clone)]
pub enum Check {
    /// Verify the password against this hash.
    Hash(Arc<Hash>, HashSlot),
    /// Ask the embedder's authenticate hook.
    Hook,
}

/// The work itself, with what it needs from the CONNECT.
#[derive(Clone)]
pub enum Job {
    Hash(Arc<Hash>, Bytes, HashSlot),
    Hook(LoginRequest),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Hash(h, ..) => write!(f, "Job::Hash({h:?})"),
            Job::Hook(r) => write!(f, "Job::Hook({r:?})"),
        }
    }
}

/// Run a job on the current glommio executor: a hash on its blocking
/// thread pool, the hook's future here. Never blocks the shard.
pub async fn run(job: Job, hooks: Arc<Hooks>) -> AuthDecision {
    match job {
        Job::Hash(hash, password, slot) => {
            glommio::executor()
                .spawn_blocking(move || {
                    let ok = hash.verify(&password);
                    drop(slot);
                    verdict(ok)
                })
                .await
        }
        Job::Hook(req) => match hooks.authenticate(&req) {
            Some(f) => f.await,
            None => AuthDecision::Refuse(Refusal::NotAuthorized),
        },
    }
}

fn verdict(ok: bool) -> AuthDecision {
    if ok {
        AuthDecision::Allow
    } else {
        AuthDecision::Refuse(Refusal::BadCredentials)
    }
}

/// A CONNECT waiting for its login check.
#[derive(Debug, Clone)]
pub struct Pending {
    connect: Box<Connect>,
    /// Taken by the connection task when it starts the job.
    job: Option<Job>,
    /// Packets that came after the CONNECT, in order.
    held: Vec<Packet>,
    /// The job verifies a password hash (a success is remembered).
    hashes: bool,
    /// The password table generation the decision was made from.
    generation: u64,
}

impl Pending {
    pub fn new(connect: Box<Connect>, job: Job, generation: u64) -> Pending {
        Pending {
            generation,
            connect,
            hashes: matches!(job, Job::Hash(..)),
            job: Some(job),
            held: Vec::new(),
        }
    }

    /// The job, once (the connection task runs it).
    pub fn take_job(&mut self) -> Option<Job> {
        self.job.take()
    }

    /// Whether the job is a password hash (its success is cached).
    pub fn hashes(&self) -> bool {
        self.hashes
    }

    /// Keep a packet for after CONNACK; false when [`MAX_HELD`] are held.
    pub fn hold(&mut self, packet: Packet) -> bool {
        if self.held.len() >= MAX_HELD {
            return false;
        }
        self.held.push(packet);
        true
    }

    /// The password table generation the decision was made from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The CONNECT and the packets held after it.
    pub fn into_parts(self) -> (Box<Connect>, Vec<Packet>) {
        (self.connect, self.held)
    }
}
