//! A hashed timer wheel: one per shard, for keepalive, retry, expiry and connect timeouts.
//!
//! Owns the pending timer entries `(deadline_ms, T)`; nothing else. The shard's event loop
//! `insert`s an entry whenever a connection or session arms a timer and calls `advance` once
//! per tick (about every `resolution_ms`) with the current time, then handles what fired.
//! There is no cancel: `T` carries e.g. (connection id, generation) and the caller drops fired
//! entries whose generation is stale. Time is plain milliseconds passed in, so the wheel is
//! pure and testable.
//!
//! ```text
//!   tick = ms / resolution_ms, slot = tick % slots
//!
//!   slots: [ 0 ][ 1 ][ 2 ] ... [cur] ... [n-1]       each slot: Vec<(deadline_ms, T)>
//!                                ^
//!                  last tick advanced to; past deadlines are filed here
//! ```
//!
//! An entry lives in the slot of its deadline's tick. `advance(now)` examines the slots from
//! the current tick through now's tick (at most one full rotation, however far time jumped)
//! and fires the entries with `deadline <= now`; entries more than one rotation away share a
//! slot with nearer ones and are simply kept until a later pass finds them due. The current
//! slot is re-examined on every advance because it may hold entries due later in the same
//! tick, or past-deadline entries inserted since.

/// A hashed timer wheel. See the module doc.
pub struct TimerWheel<T> {
    slots: Vec<Vec<(u64, T)>>,
    resolution_ms: u64,
    /// The tick of the latest `now_ms` seen (by `new` or `advance`).
    tick: u64,
    /// Slots examined by `advance` so far: lets tests check the cost bound.
    #[cfg(test)]
    examined: usize,
}

impl<T> TimerWheel<T> {
    /// `resolution_ms`: slot width (e.g. 100); `slots`: number of slots (e.g. 512). `now_ms`: the current time.
    ///
    /// Zero values are treated as 1.
    pub fn new(resolution_ms: u64, slots: usize, now_ms: u64) -> Self {
        let resolution_ms = resolution_ms.max(1);
        TimerWheel {
            slots: (0..slots.max(1)).map(|_| Vec::new()).collect(),
            resolution_ms,
            tick: now_ms / resolution_ms,
            #[cfg(test)]
            examined: 0,
        }
    }

    fn slot_of(&self, tick: u64) -> usize {
        // The remainder is < slots.len(), which is a usize.
        (tick % self.slots.len() as u64) as usize
    }

    /// Schedule `item` to fire at `deadline_ms` (a deadline in the past fires on the next advance).
    pub fn insert(&mut self, deadline_ms: u64, item: T) {
        let tick = (deadline_ms / self.resolution_ms).max(self.tick);
        let slot = self.slot_of(tick);
        self.slots[slot].push((deadline_ms, item));
    }

    /// Move time to `now_ms` and push every item whose deadline is <= now_ms into `fired` (order: by slot).
    /// Items whose deadline is more than one rotation away stay in their slot until due.
    /// Must be cheap when called every resolution_ms: O(slots passed + items examined in those slots).
    ///
    /// A `now_ms` earlier than a previous one (a clock step back) fires what is due by `now_ms`
    /// and does not move the wheel back.
    pub fn advance(&mut self, now_ms: u64, fired: &mut Vec<T>) {
        let now_tick = (now_ms / self.resolution_ms).max(self.tick);
        let span = now_tick - self.tick;
        // Slots to examine: the current one through now's, capped at one full rotation.
        let count = usize::try_from(span)
            .ok()
            .and_then(|s| s.checked_add(1))
            .map_or(self.slots.len(), |c| c.min(self.slots.len()));
        let first = self.slot_of(self.tick);
        for i in 0..count {
            let slot = (first + i) % self.slots.len();
            self.fire_slot(slot, now_ms, fired);
        }
        self.tick = now_tick;
    }

    /// Move every entry of `slot` due by `now_ms` into `fired`.
    fn fire_slot(&mut self, slot: usize, now_ms: u64, fired: &mut Vec<T>) {
        #[cfg(test)]
        {
            self.examined += 1;
        }
        let entries = &mut self.slots[slot];
        let mut i = 0;
        while i < entries.len() {
            if entries[i].0 <= now_ms {
                let (_, item) = entries.swap_remove(i);
                fired.push(item);
            } else {
                i += 1;
            }
        }
        if entries.is_empty() {
            // A burst (15K connections' connect timers) leaves no buffer
            // behind in the slots it passed through.
            *entries = Vec::new();
        }
    }

    /// Every pending entry (deadline, item), in slot order: harness tests
    /// assert what a handler armed.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> impl Iterator<Item = &(u64, T)> {
        self.slots.iter().flatten()
    }

    /// Entries the slots' buffers have room for (tests).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.iter().map(Vec::capacity).sum()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advance in `step_ms` steps from `from` to `to`, recording (fire time, item).
    fn run(wheel: &mut TimerWheel<u64>, from: u64, to: u64, step_ms: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut fired = Vec::new();
        let mut now = from;
        while now <= to {
            wheel.advance(now, &mut fired);
            out.extend(fired.drain(..).map(|item| (now, item)));
            now += step_ms;
        }
        out
    }

    #[test]
    fn slots_emptied_by_firing_keep_no_buffer() {
        let mut w = TimerWheel::new(100, 64, 0);
        for i in 0..1000 {
            w.insert(1_000 + i % 300, i);
        }
        w.insert(5_000, 9_999);
        assert!(w.capacity() >= 1001);
        let mut fired = Vec::new();
        w.advance(2_000, &mut fired);
        assert_eq!(fired.len(), 1000);
        // Only the slot holding the 5 s entry keeps a buffer.
        assert!(w.capacity() <= 4, "{} entries' room left", w.capacity());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn fires_at_deadline_within_one_resolution() {
        let start = 1_000_000;
        let mut wheel = TimerWheel::new(100, 64, start);
        // The item is its own deadline.
        let deadlines: Vec<u64> = (0..200).map(|i| start + 1 + i * 37).collect();
        for &d in &deadlines {
            wheel.insert(d, d);
        }
        assert_eq!(wheel.len(), deadlines.len());
        let fired = run(&mut wheel, start, start + 10_000, 100);
        assert_eq!(fired.len(), deadlines.len());
        for (at, deadline) in fired {
            assert!(at >= deadline, "fired early: {deadline} at {at}");
            assert!(at < deadline + 100, "fired late: {deadline} at {at}");
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn not_before_deadline_within_the_current_tick() {
        let mut wheel = TimerWheel::new(100, 8, 0);
        wheel.insert(50, 1);
        let mut fired = Vec::new();
        wheel.advance(49, &mut fired);
        assert!(fired.is_empty());
        wheel.advance(50, &mut fired);
        assert_eq!(fired, [1]);
    }

    #[test]
    fn past_deadlines_fire_on_next_advance() {
        let mut wheel = TimerWheel::new(100, 8, 10_000);
        wheel.insert(0, 1);
        wheel.insert(9_999, 2);
        wheel.insert(10_000, 3);
        let mut fired = Vec::new();
        // Same time, no tick passed.
        wheel.advance(10_000, &mut fired);
        fired.sort();
        assert_eq!(fired, [1, 2, 3]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn deadlines_spanning_several_rotations() {
        // One rotation = 8 * 100 ms.
        let mut wheel = TimerWheel::new(100, 8, 0);
        for (i, d) in [250, 1_050, 2_650, 8_050, 8_051].into_iter().enumerate() {
            wheel.insert(d, i as u64);
        }
        let fired = run(&mut wheel, 0, 10_000, 10);
        assert_eq!(
            fired,
            [(250, 0), (1_050, 1), (2_650, 2), (8_050, 3), (8_060, 4)]
        );
    }

    #[test]
    fn large_time_jump() {
        let mut wheel = TimerWheel::new(100, 512, 0);
        let hour = 3_600_000;
        wheel.insert(5, 1);
        wheel.insert(hour, 2);
        wheel.insert(3 * hour, 3);
        wheel.insert(u64::MAX, 4);
        let mut fired = Vec::new();
        wheel.advance(2 * hour, &mut fired);
        fired.sort();
        assert_eq!(fired, [1, 2]);
        // At most one rotation of slots, not one per tick (72_000) or per ms.
        assert_eq!(wheel.examined, 512);
        assert_eq!(wheel.len(), 2);
        // A jump far beyond u64 ticks-as-usize range is capped at one rotation too.
        wheel.advance(u64::MAX - 1, &mut fired);
        fired.sort();
        assert_eq!(fired, [1, 2, 3]);
        wheel.advance(u64::MAX, &mut fired);
        assert_eq!(fired, [1, 2, 3, 4]);
        // The last advance stays in the same tick: only the current slot.
        assert_eq!(wheel.examined, 512 + 512 + 1);
        assert!(wheel.is_empty());
    }

    #[test]
    fn clock_step_back_does_not_rewind() {
        let mut wheel = TimerWheel::new(100, 8, 5_000);
        wheel.insert(5_200, 1);
        let mut fired = Vec::new();
        wheel.advance(4_000, &mut fired);
        assert!(fired.is_empty());
        wheel.advance(5_200, &mut fired);
        assert_eq!(fired, [1]);
    }

    #[test]
    fn many_items_fire_in_slot_order() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut wheel = TimerWheel::new(10, 256, 0);
        let n = 20_000;
        for _ in 0..n {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let d = rng % 60_000;
            wheel.insert(d, d);
        }
        assert_eq!(wheel.len(), n);
        let fired = run(&mut wheel, 0, 60_000, 10);
        assert_eq!(fired.len(), n);
        // Steady ticking: the current slot plus the new one per advance.
        assert_eq!(wheel.examined, 1 + 2 * 6_000);
        // Slot order: the deadlines' ticks never go back.
        let mut last_tick = 0;
        for (at, deadline) in fired {
            assert!(deadline <= at && at < deadline + 10);
            assert!(
                deadline / 10 >= last_tick,
                "tick {} after {last_tick}",
                deadline / 10
            );
            last_tick = deadline / 10;
        }
        assert!(wheel.is_empty());
    }
}
