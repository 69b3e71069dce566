//! One-word containers for a session's queues: absent (a null pointer)
//! while empty, freed again when emptied.
//!
//! A [`super::Session`]'s inflight window, pending queue and awaiting-PUBREL
//! set are empty for most sessions most of the time (an idle subscriber);
//! inline, their headers cost 80 bytes on every session (two `VecDeque`s
//! and a one-entry map), here 24. A
//! non-empty one costs one extra allocation of its header. Used by
//! [`super::inflight`], [`super::mqueue`] and the session itself.

use crate::router::smallmap::SmallMap;
use std::collections::VecDeque;

/// A `VecDeque` behind one pointer, with no allocation while empty.
#[derive(Debug)]
#[allow(clippy::box_collection)] // the point: one word, not four
pub struct ThinDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for ThinDeque<T> {
    fn default() -> Self {
        ThinDeque(None)
    }
}

impl<T> ThinDeque<T> {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| d.len())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Append `item`; returns it, in place.
    pub fn push_back(&mut self, item: T) -> &T {
        let d = self.0.get_or_insert_with(Default::default);
        d.push_back(item);
        &d[d.len() - 1]
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let item = self.0.as_mut()?.pop_front();
        self.trim();
        item
    }

    pub fn remove(&mut self, index: usize) -> Option<T> {
        let item = self.0.as_mut()?.remove(index);
        self.trim();
        item
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flat_map(|d| d.iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().flat_map(|d| d.iter_mut())
    }

    /// Take every item, in order, leaving it empty.
    #[cfg(test)]
    pub fn take_all(&mut self) -> impl Iterator<Item = T> {
        self.0.take().into_iter().flat_map(|d| d.into_iter())
    }

    /// Free the deque once it is empty.
    fn trim(&mut self) {
        if self.0.as_ref().is_some_and(|d| d.is_empty()) {
            self.0 = None;
        }
    }
}

/// A set of packet ids behind one pointer, with no allocation while empty.
#[derive(Debug, Default)]
pub struct PkidSet(Option<Box<SmallMap<u16, ()>>>);

impl PkidSet {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    pub fn contains(&self, pkid: u16) -> bool {
        self.0.as_ref().is_some_and(|m| m.get(&pkid).is_some())
    }

    pub fn insert(&mut self, pkid: u16) {
        self.0.get_or_insert_with(Default::default).insert(pkid, ());
    }

    /// Remove `pkid`; whether it was there.
    pub fn remove(&mut self, pkid: u16) -> bool {
        let Some(m) = self.0.as_mut() else {
            return false;
        };
        let found = m.remove(&pkid).is_some();
        if m.is_empty() {
            self.0 = None;
        }
        found
    }

    /// The ids, in no particular order.
    pub fn ids(&self) -> Vec<u16> {
        let mut ids = Vec::with_capacity(self.len());
        if let Some(m) = &self.0 {
            m.for_each(|k, _| ids.push(*k));
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deque_holds_no_allocation_while_empty_and_frees_it_when_emptied() {
        let mut d = ThinDeque::default();
        assert_eq!(std::mem::size_of_val(&d), 8);
        assert!(d.is_empty() && d.pop_front().is_none() && d.remove(0).is_none());
        assert_eq!(d.push_back(1), &1);
        d.push_back(2);
        d.push_back(3);
        assert_eq!(d.len(), 3);
        d.iter_mut().for_each(|x| *x *= 10);
        assert_eq!(d.remove(1), Some(20));
        assert_eq!(d.iter().copied().collect::<Vec<_>>(), [10, 30]);
        assert_eq!(d.pop_front(), Some(10));
        assert!(!d.is_empty());
        assert_eq!(d.pop_front(), Some(30));
        assert!(d.is_empty() && d.0.is_none());
        d.push_back(4);
        assert_eq!(d.take_all().collect::<Vec<_>>(), [4]);
        assert!(d.is_empty() && d.iter().next().is_none());
    }

    #[test]
    fn a_pkid_set_frees_its_map_when_emptied() {
        let mut s = PkidSet::default();
        assert_eq!(std::mem::size_of_val(&s), 8);
        assert!(!s.remove(1));
        s.insert(7);
        s.insert(9);
        assert!(s.contains(7) && !s.contains(8) && s.len() == 2);
        let mut ids = s.ids();
        ids.sort_unstable();
        assert_eq!(ids, [7, 9]);
        assert!(s.remove(7) && !s.remove(7));
        assert!(s.remove(9));
        assert!(s.0.is_none() && s.ids().is_empty());
    }
}
