//! Which shared group a queued or inflight delivery came through.
//!
//! A delivery chosen for this session as a member of a shared group
//! (`$share/{group}/{filter}`) carries a [`ShareTag`]: two bytes that fit in
//! the padding of [`Delivery`](super::Delivery), so ordinary deliveries do not
//! grow. The tag names a slot of the session's [`ShareTags`], which holds the
//! share string; when the session ends, its tagged deliveries go back to their
//! group (`protocol/shared.rs`). Owned by the [`Session`](super::Session);
//! a slot is taken when the session joins a group (`Sessions::add_filter`, so
//! a replay takes the same slots) and reused only once neither a
//! subscription nor a delivery refers to it.

use std::num::NonZeroU16;
use std::sync::Arc;

/// A slot of the session's [`ShareTags`] (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareTag(NonZeroU16);

/// The share strings of a session's tags, by slot.
#[derive(Debug, Default)]
pub struct ShareTags {
    slots: Vec<Arc<str>>,
}

impl ShareTags {
    /// Whether no slot was ever taken.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The tag of `share`, if it has one.
    pub fn tag_of(&self, share: &str) -> Option<ShareTag> {
        let i = self.slots.iter().position(|s| &**s == share)?;
        tag(i)
    }

    /// The share string of `tag`.
    pub fn share_of(&self, tag: ShareTag) -> Option<&Arc<str>> {
        self.slots.get(usize::from(tag.0.get()) - 1)
    }

    /// The tag of `share`, taking a slot for it if it has none: a slot
    /// `in_use` does not claim (no subscription, no delivery), or a new one.
    /// None only when every one of the 65535 slots is in use.
    pub fn intern(
        &mut self,
        share: &Arc<str>,
        in_use: impl Fn(ShareTag) -> bool,
    ) -> Option<ShareTag> {
        if let Some(t) = self.tag_of(share) {
            return Some(t);
        }
        let free = (0..self.slots.len()).find(|&i| tag(i).is_some_and(|t| !in_use(t)));
        if let Some(i) = free {
            self.slots[i] = share.clone();
            return tag(i);
        }
        let t = tag(self.slots.len())?;
        self.slots.push(share.clone());
        Some(t)
    }
}

/// The tag of slot `i`.
fn tag(i: usize) -> Option<ShareTag> {
    u16::try_from(i + 1)
        .ok()
        .and_then(NonZeroU16::new)
        .map(ShareTag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_only_when_free() {
        let mut t = ShareTags::default();
        let a: Arc<str> = "$share/g/a".into();
        let b: Arc<str> = "$share/g/b".into();
        let ta = t.intern(&a, |_| true).unwrap();
        assert_eq!(t.intern(&a, |_| true), Some(ta));
        let tb = t.intern(&b, |_| true).unwrap();
        assert_ne!(ta, tb);
        assert_eq!(t.share_of(tb), Some(&b));
        let c: Arc<str> = "$share/h/c".into();
        let tc = t.intern(&c, |x| x != ta).unwrap();
        assert_eq!(tc, ta, "a's slot was free");
        assert_eq!(t.tag_of("$share/g/a"), None);
        assert_eq!(t.share_of(tc), Some(&c));
    }
}
