//! A generational slab: dense storage for a shard's connections and sessions.
//!
//! Owned by the part that stores the values (the connections part, the
//! sessions part). Keys carry a generation so a stale key (a timer entry or a
//! routing hit for a connection that has since closed and whose slot was
//! reused) finds nothing instead of the wrong entry: timers are never
//! cancelled, they are validated when they fire.
//!
//! A key is typed by a tag naming what its slab stores ([`ConnKey`],
//! [`SessionKey`]): swapping a connection key and a session key does not
//! compile. The tags live here, below every module that uses the keys, so
//! connections and sessions can name each other's keys without importing
//! each other.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// Tag of the connections slab (`crate::shard::conns`).
#[derive(Debug)]
pub enum ConnTag {}

/// Tag of the sessions slab (`crate::session::store`).
#[derive(Debug)]
pub enum SessionTag {}

/// Tag of a shard's readiness set (`crate::transport::ready`).
#[derive(Debug)]
pub enum ReadyTag {}

/// A connection of this shard.
pub type ConnKey = Key<ConnTag>;

/// A session of this shard.
pub type SessionKey = Key<SessionTag>;

/// A slot index plus the generation it was filled in, for a slab tagged `T`.
pub struct Key<T> {
    idx: u32,
    gen: u32,
    kind: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    fn new(idx: u32, gen: u32) -> Self {
        Key {
            idx,
            gen,
            kind: PhantomData,
        }
    }

    /// The key as one number (the storage log names sessions by it).
    pub fn to_raw(self) -> u64 {
        u64::from(self.gen) << 32 | u64::from(self.idx)
    }

    /// The key [`Key::to_raw`] gave this number for (it finds nothing in
    /// its slab if the number was never a key there).
    pub fn from_raw(raw: u64) -> Self {
        Key::new(raw as u32, (raw >> 32) as u32)
    }
}

// Written by hand: derives would require `T` itself to be Copy, Eq, ...
impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Key<T> {}

impl<T> PartialEq for Key<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.idx, self.gen) == (other.idx, other.gen)
    }
}

impl<T> Eq for Key<T> {}

impl<T> Hash for Key<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.idx, self.gen).hash(state);
    }
}

impl<T> PartialOrd for Key<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Key<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.idx, self.gen).cmp(&(other.idx, other.gen))
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.idx, self.gen)
    }
}

#[derive(Debug)]
enum Slot<T> {
    Full { gen: u32, val: T },
    Empty { gen: u32 },
}

/// Dense storage of `T` addressed by keys tagged `Tag`.
#[derive(Debug)]
pub struct Slab<T, Tag> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    tag: PhantomData<fn() -> Tag>,
}

impl<T, Tag> Default for Slab<T, Tag> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            tag: PhantomData,
        }
    }
}

impl<T, Tag> Slab<T, Tag> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Store a value; its key stays valid until it is removed.
    pub fn insert(&mut self, val: T) -> Key<Tag> {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            let slot = &mut self.slots[idx as usize];
            let (Slot::Empty { gen } | Slot::Full { gen, .. }) = *slot;
            let gen = gen.wrapping_add(1);
            *slot = Slot::Full { gen, val };
            return Key::new(idx, gen);
        }
        let idx = self.slots.len() as u32;
        self.slots.push(Slot::Full { gen: 0, val });
        Key::new(idx, 0)
    }

    pub fn get(&self, key: Key<Tag>) -> Option<&T> {
        match self.slots.get(key.idx as usize) {
            Some(Slot::Full { gen, val }) if *gen == key.gen => Some(val),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: Key<Tag>) -> Option<&mut T> {
        match self.slots.get_mut(key.idx as usize) {
            Some(Slot::Full { gen, val }) if *gen == key.gen => Some(val),
            _ => None,
        }
    }

    pub fn remove(&mut self, key: Key<Tag>) -> Option<T> {
        let slot = self.slots.get_mut(key.idx as usize)?;
        match slot {
            Slot::Full { gen, .. } if *gen == key.gen => {
                let old = std::mem::replace(slot, Slot::Empty { gen: key.gen });
                self.free.push(key.idx);
                self.len -= 1;
                match old {
                    Slot::Full { val, .. } => Some(val),
                    Slot::Empty { .. } => None,
                }
            }
            _ => None,
        }
    }

    /// Every key in use (shutdown walks connections with it).
    pub fn keys(&self) -> Vec<Key<Tag>> {
        self.iter().map(|(k, _)| k).collect()
    }

    /// Every stored value with its key, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Key<Tag>, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Full { gen, val } => Some((Key::new(i as u32, *gen), val)),
            Slot::Empty { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_find_nothing() {
        let mut s: Slab<&str, ()> = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(s.get(a), None, "slot reused with a new generation");
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.keys(), vec![b]);
    }
}
