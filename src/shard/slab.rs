//! A generational slab: dense storage for a shard's connections and sessions.
//!
//! Owned by its shard. Keys carry a generation so a stale key (a timer entry
//! or a routing hit for a connection that has since closed and whose slot was
//! reused) finds nothing instead of the wrong entry: timers are never
//! cancelled, they are validated when they fire.

/// A slot index plus the generation it was filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    idx: u32,
    gen: u32,
}

#[derive(Debug)]
enum Slot<T> {
    Full { gen: u32, val: T },
    Empty { gen: u32 },
}

/// Dense storage addressed by [`Key`].
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
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
    pub fn insert(&mut self, val: T) -> Key {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            let slot = &mut self.slots[idx as usize];
            let (Slot::Empty { gen } | Slot::Full { gen, .. }) = *slot;
            let gen = gen.wrapping_add(1);
            *slot = Slot::Full { gen, val };
            return Key { idx, gen };
        }
        let idx = self.slots.len() as u32;
        self.slots.push(Slot::Full { gen: 0, val });
        Key { idx, gen: 0 }
    }

    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.idx as usize) {
            Some(Slot::Full { gen, val }) if *gen == key.gen => Some(val),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.idx as usize) {
            Some(Slot::Full { gen, val }) if *gen == key.gen => Some(val),
            _ => None,
        }
    }

    pub fn remove(&mut self, key: Key) -> Option<T> {
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
    pub fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Full { gen, .. } => Some(Key {
                    idx: i as u32,
                    gen: *gen,
                }),
                Slot::Empty { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_find_nothing() {
        let mut s = Slab::new();
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
