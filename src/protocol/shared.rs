//! Shared subscriptions on the publish path: one member per group.
//!
//! For every message, [`Shard::route_shared`] asks the router's replica of
//! the groups for one member of each group whose filter matches, chosen by
//! the configured strategy on this (the publishing) shard, and sends the
//! message straight to that member's shard: no hop when the member is local,
//! one otherwise. The member's shard delivers it at min(message QoS, granted
//! QoS) [MQTT-4.8.2-3], tagged with the group ([`ShareTag`]), unless the
//! member has just left: then it chooses again from its own replica
//! ([`Shard::on_shared`]). When a member's session ends, what it held
//! through a group goes to another member ([`Shard::redistribute`]). Every
//! message that finds no member is counted.
//!
//! [`ShareTag`]: crate::session::shares::ShareTag

use crate::message::Message;
use crate::router::shared::Member;
use crate::shard::mesh::MeshMsg;
use crate::shard::{SessionKey, Shard};
use std::sync::Arc;

impl Shard {
    /// Send the message to the chosen member of each matching shared group.
    pub(super) fn route_shared(&mut self, msg: &Arc<Message>) -> bool {
        let mut picks = Vec::new();
        self.router.shared_picks(msg, &mut picks);
        let matched = !picks.is_empty();
        for (member, share) in picks {
            self.send_to_member(member, share, msg, 0);
        }
        matched
    }

    /// Deliver here or send to the member's shard.
    fn send_to_member(&mut self, m: Member, share: Arc<str>, msg: &Arc<Message>, hops: u8) {
        if usize::from(m.shard) == self.id {
            self.on_shared(msg, share, m.session, hops);
            return;
        }
        let msg = msg.clone();
        let member = m.session;
        self.mesh.push(
            usize::from(m.shard),
            MeshMsg::Shared {
                msg,
                share,
                member,
                hops,
            },
        );
    }

    /// A message chosen for this shard's session `sk` in the group of
    /// `share`: delivered, or, if `sk` is no longer a member, sent to
    /// another member chosen from this shard's replica.
    pub(crate) fn on_shared(
        &mut self,
        msg: &Arc<Message>,
        share: Arc<str>,
        sk: SessionKey,
        hops: u8,
    ) {
        let Some(granted) = self.router.share_granted(&share, sk) else {
            self.choose_again(msg, share, hops.saturating_add(1));
            return;
        };
        let tag = self.sessions.get(sk).and_then(|s| s.share_tag(&share));
        self.metrics.shared_delivered += 1;
        let retain = msg.retain && granted.retain_as_published();
        let qos = msg.qos.min(granted.qos());
        self.deliver_via(sk, msg, retain, qos, granted.id().as_slice(), tag);
    }

    /// Choose another member of `share`'s group for `msg`; false (counted)
    /// when the group is empty, or the message was chosen again more times
    /// than there are shards (replicas still catching up).
    fn choose_again(&mut self, msg: &Arc<Message>, share: Arc<str>, hops: u8) -> bool {
        let member = (usize::from(hops) <= self.shards)
            .then(|| self.router.shared_pick_in(&share, msg))
            .flatten();
        let Some(m) = member else {
            self.metrics.shared_dropped_no_member += 1;
            log::debug!(
                "shard {}: {share:?} has no member for a message on {:?}; dropped",
                self.id,
                msg.topic
            );
            return false;
        };
        self.send_to_member(m, share, msg, hops);
        true
    }

    /// Messages an ended session held through shared groups: each goes to
    /// another member of its group (the session has already left them).
    pub(super) fn redistribute(&mut self, leftovers: Vec<(Arc<str>, Arc<Message>)>) {
        for (share, msg) in leftovers {
            if self.choose_again(&msg, share, 0) {
                self.metrics.shared_redistributed += 1;
            }
        }
    }
}
