//! Files the broker re-reads on SIGHUP (certificates, the password file, the
//! ACL), and how a new version reaches every shard without a lock on the
//! hot path.
//!
//! A [`Reloadable<T>`] is shared by every shard (`Arc`): it holds the current
//! value behind a lock and a generation counter. A shard keeps a [`Local<T>`]
//! view: a clone of the `Arc<T>` and the generation it was taken at. Reading
//! it costs one relaxed atomic load (the counter, a read-mostly cache line);
//! only after a reload does the view take the lock once to pick up the new
//! value. So the publish path never locks, and a reload is seen by each shard
//! at its next use.
//!
//! [`Reloaders`] is the list of "re-read your file" actions the broker builds
//! at start ([`crate::Broker::start`]); [`crate::BrokerHandle::reload`] runs
//! them (the `coremq` binary calls it on SIGHUP). A reloader that fails
//! keeps the old value and reports why; the others still run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A value every shard reads and a reload replaces.
#[derive(Debug)]
pub struct Reloadable<T> {
    /// Bumped after each [`store`](Self::store).
    generation: AtomicU64,
    value: RwLock<Arc<T>>,
}

impl<T> Reloadable<T> {
    pub fn new(value: T) -> Arc<Self> {
        Arc::new(Reloadable {
            generation: AtomicU64::new(0),
            value: RwLock::new(Arc::new(value)),
        })
    }

    /// Replace the value; shards pick it up at their next read.
    pub fn store(&self, value: T) {
        let value = Arc::new(value);
        // A poisoned lock only means a panic elsewhere while holding it; the
        // Arc inside is still whole, so carry on with it.
        *self.value.write().unwrap_or_else(|p| p.into_inner()) = value;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current value (takes the lock: not for the hot path, see [`Local`]).
    pub fn load(&self) -> Arc<T> {
        self.value.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times the value was replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// One shard's view of a [`Reloadable`]: lock-free until a reload happened.
#[derive(Debug)]
pub struct Local<T> {
    shared: Arc<Reloadable<T>>,
    generation: u64,
    current: Arc<T>,
}

impl<T> Local<T> {
    pub fn new(shared: Arc<Reloadable<T>>) -> Self {
        let generation = shared.generation();
        let current = shared.load();
        Local {
            shared,
            generation,
            current,
        }
    }

    /// The current value, refreshed first if a reload happened since the last call.
    pub fn get(&mut self) -> &Arc<T> {
        let now = self.shared.generation();
        if now != self.generation {
            self.current = self.shared.load();
            self.generation = now;
        }
        &self.current
    }

    /// The generation of the value [`get`](Self::get) last returned (a cache
    /// of decisions made from it is stale when this changes).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// One "re-read your files" action: returns what it reloaded, or why not.
type ReloadFn = dyn Fn() -> Result<String, String> + Send + Sync;

/// The reload actions of a running broker, in registration order.
#[derive(Default, Clone)]
pub struct Reloaders {
    actions: Vec<(&'static str, Arc<ReloadFn>)>,
}

impl std::fmt::Debug for Reloaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.actions.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Reloaders")
            .field("actions", &names)
            .finish()
    }
}

/// What one [`Reloaders::run`] did, per action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// (name, Ok(what was reloaded) or Err(why the old value was kept)).
    pub results: Vec<(&'static str, Result<String, String>)>,
}

impl ReloadReport {
    /// Whether every action succeeded.
    pub fn ok(&self) -> bool {
        self.results.iter().all(|(_, r)| r.is_ok())
    }
}

impl Reloaders {
    /// Add an action, named for the log (`"acl"`, `"password file"`, ...).
    pub fn add(
        &mut self,
        name: &'static str,
        f: impl Fn() -> Result<String, String> + Send + Sync + 'static,
    ) {
        self.actions.push((name, Arc::new(f)));
    }

    /// Run every action, logging each result.
    pub fn run(&self) -> ReloadReport {
        let results = self
            .actions
            .iter()
            .map(|(name, f)| {
                let r = f();
                match &r {
                    Ok(what) => log::info!("reload: {name}: {what}"),
                    Err(why) => log::error!("reload: {name}: kept the old one: {why}"),
                }
                (*name, r)
            })
            .collect();
        ReloadReport { results }
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_view_sees_a_store_at_its_next_read() {
        let shared = Reloadable::new(1u32);
        let mut view = Local::new(shared.clone());
        assert_eq!(**view.get(), 1);
        let g = view.generation();
        shared.store(2);
        assert_eq!(**view.get(), 2);
        assert_ne!(view.generation(), g);
        assert_eq!(*shared.load(), 2);
    }

    #[test]
    fn a_failing_reloader_is_reported_and_the_others_run() {
        let shared = Reloadable::new("old".to_string());
        let mut r = Reloaders::default();
        r.add("broken", || Err("no such file".into()));
        let s = shared.clone();
        r.add("fine", move || {
            s.store("new".into());
            Ok("1 entry".into())
        });
        let report = r.run();
        assert!(!report.ok());
        assert_eq!(report.results[0], ("broken", Err("no such file".into())));
        assert_eq!(report.results[1], ("fine", Ok("1 entry".into())));
        assert_eq!(*shared.load(), "new");
    }
}
