//! Delivery accounting: lost, duplicated and out-of-order messages.
//!
//! Owns one [`Tracker`] per subscriber (inside that client's state in
//! `client.rs`), keyed by publisher id. Sequence numbers start at 1 per
//! publisher. A 128-wide sliding window below the highest sequence seen tells
//! a duplicate from a late (out-of-order) arrival; anything older than the
//! window counts as out of order (it cannot be told from a duplicate).
//! Totals are summed per executor, per worker and in the parent ([`Tally`]);
//! `lost = expected - unique`, where `expected` comes from the scenario shape
//! (see `scenario.rs`).

use ahash::AHashMap;

const WINDOW: u64 = 128;

/// What one (subscriber, publisher) pair has seen.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// Highest sequence received.
    max: u64,
    /// Bit k set = sequence `max - k` was received (bit 0 is `max`).
    window: u128,
}

/// Counts for one subscriber or any sum of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Distinct (publisher, seq) deliveries.
    pub unique: u64,
    pub duplicates: u64,
    /// Deliveries with a sequence lower than the highest already seen.
    pub out_of_order: u64,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.unique += o.unique;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
    }
}

/// Per-subscriber state: one `Seen` per publisher heard from.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: AHashMap<u64, Seen>,
    pub tally: Tally,
}

/// How one delivery was classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    InOrder,
    Late,
    Duplicate,
}

impl Tracker {
    /// Record delivery `seq` from `publisher`.
    pub fn record(&mut self, publisher: u64, seq: u64) -> Verdict {
        let s = self.seen.entry(publisher).or_default();
        let v = classify(s, seq);
        match v {
            Verdict::InOrder => self.tally.unique += 1,
            Verdict::Late => {
                self.tally.unique += 1;
                self.tally.out_of_order += 1;
            }
            Verdict::Duplicate => self.tally.duplicates += 1,
        }
        v
    }
}

fn classify(s: &mut Seen, seq: u64) -> Verdict {
    if seq > s.max {
        let shift = seq - s.max;
        s.window = if shift >= WINDOW {
            0
        } else {
            s.window << shift
        };
        s.window |= 1;
        s.max = seq;
        return Verdict::InOrder;
    }
    let back = s.max - seq;
    if back >= WINDOW {
        // Too old to remember: count it as a late arrival.
        return Verdict::Late;
    }
    let bit = 1u128 << back;
    if s.window & bit != 0 {
        return Verdict::Duplicate;
    }
    s.window |= bit;
    Verdict::Late
}

/// `expected - unique`, never negative (extra deliveries are reported apart).
pub fn lost(expected: u64, unique: u64) -> u64 {
    expected.saturating_sub(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream() {
        let mut t = Tracker::default();
        for s in 1..=1000 {
            assert_eq!(t.record(9, s), Verdict::InOrder);
        }
        assert_eq!(
            t.tally,
            Tally {
                unique: 1000,
                duplicates: 0,
                out_of_order: 0
            }
        );
        assert_eq!(lost(1000, t.tally.unique), 0);
    }

    #[test]
    fn duplicates_and_late() {
        let mut t = Tracker::default();
        assert_eq!(t.record(1, 1), Verdict::InOrder);
        assert_eq!(t.record(1, 3), Verdict::InOrder);
        assert_eq!(t.record(1, 3), Verdict::Duplicate);
        assert_eq!(t.record(1, 2), Verdict::Late);
        assert_eq!(t.record(1, 2), Verdict::Duplicate);
        assert_eq!(t.record(1, 1), Verdict::Duplicate);
        assert_eq!(
            t.tally,
            Tally {
                unique: 3,
                duplicates: 3,
                out_of_order: 1
            }
        );
    }

    #[test]
    fn publishers_are_independent() {
        let mut t = Tracker::default();
        t.record(1, 5);
        assert_eq!(t.record(2, 1), Verdict::InOrder);
        assert_eq!(t.record(2, 1), Verdict::Duplicate);
        assert_eq!(t.tally.unique, 2);
    }

    #[test]
    fn gaps_are_loss_and_old_arrivals_are_late() {
        let mut t = Tracker::default();
        t.record(1, 1);
        t.record(1, 1000); // 998 missing
        assert_eq!(lost(1000, t.tally.unique), 998);
        assert_eq!(t.record(1, 2), Verdict::Late); // beyond the window
        assert_eq!(t.record(1, 999), Verdict::Late);
        assert_eq!(t.record(1, 999), Verdict::Duplicate);
        assert_eq!(lost(5, 10), 0);
    }

    #[test]
    fn tallies_sum() {
        let mut a = Tally {
            unique: 1,
            duplicates: 2,
            out_of_order: 3,
        };
        a.add(&Tally {
            unique: 10,
            duplicates: 20,
            out_of_order: 30,
        });
        assert_eq!(
            a,
            Tally {
                unique: 11,
                duplicates: 22,
                out_of_order: 33
            }
        );
    }
}
