//! The options of one subscription, packed in a `u32`.
//!
//! [`SubOpts`] is what the router's index keeps per (filter, session): the
//! granted QoS, MQTT 5's No Local and Retain As Published, and the
//! subscription identifier, in the four bytes the granted QoS's slot took
//! with its padding, so a subscription costs no more memory than before.
//! Retain Handling acts only when the SUBSCRIBE is handled and is not kept.
//! A 3.1.1 subscription is its QoS alone (the other bits 0).
//!
//! ```text
//! |<------------- 28 bits ------------->| 1 | 1 |<- 2 ->|
//! |  subscription identifier (0: none)  |RAP|NL |  QoS  |
//! ```
//! Built by the SUBSCRIBE handler (`protocol/subscribe.rs`), stored by the
//! router and in the session's `Subscribed` event, read on the publish path.

use crate::codec::QoS;

/// The largest subscription identifier (§3.8.2.1.2): 28 bits.
pub const MAX_SUB_ID: u32 = (1 << 28) - 1;

const QOS_MASK: u32 = 0b11;
const NO_LOCAL: u32 = 1 << 2;
const RETAIN_AS_PUBLISHED: u32 = 1 << 3;
const ID_SHIFT: u32 = 4;

/// A subscription's options. See the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubOpts(u32);

impl SubOpts {
    /// A subscription at `qos` with no other option (what 3.1.1 gets).
    #[cfg(test)]
    pub fn qos_only(qos: QoS) -> SubOpts {
        SubOpts(qos as u32)
    }

    /// Every option; an identifier over [`MAX_SUB_ID`] is kept as none (the
    /// codec never decodes one).
    pub fn new(qos: QoS, no_local: bool, retain_as_published: bool, id: u32) -> SubOpts {
        let id = if id > MAX_SUB_ID { 0 } else { id };
        let mut bits = qos as u32 | id << ID_SHIFT;
        if no_local {
            bits |= NO_LOCAL;
        }
        if retain_as_published {
            bits |= RETAIN_AS_PUBLISHED;
        }
        SubOpts(bits)
    }

    /// The options as one number (the storage log keeps them so).
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Options read back from [`bits`](Self::bits); None if the QoS is over 2.
    pub fn from_bits(bits: u32) -> Option<SubOpts> {
        (bits & QOS_MASK <= 2).then_some(SubOpts(bits))
    }

    /// The granted QoS.
    pub fn qos(self) -> QoS {
        match self.0 & QOS_MASK {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }

    /// Messages the subscriber published itself are not sent to it [MQTT-3.8.3-3].
    pub fn no_local(self) -> bool {
        self.0 & NO_LOCAL != 0
    }

    /// Deliveries keep the RETAIN flag they were published with [MQTT-3.3.1-12].
    pub fn retain_as_published(self) -> bool {
        self.0 & RETAIN_AS_PUBLISHED != 0
    }

    /// The subscription identifier, if it has one.
    pub fn id(self) -> Option<u32> {
        let id = self.0 >> ID_SHIFT;
        (id != 0).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_in_four_bytes() {
        assert_eq!(std::mem::size_of::<SubOpts>(), 4);
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for (nl, rap) in [(false, false), (true, false), (false, true), (true, true)] {
                for id in [0, 1, 42, MAX_SUB_ID] {
                    let o = SubOpts::new(qos, nl, rap, id);
                    assert_eq!(o.qos(), qos);
                    assert_eq!(o.no_local(), nl);
                    assert_eq!(o.retain_as_published(), rap);
                    assert_eq!(o.id(), (id != 0).then_some(id));
                }
            }
        }
        assert_eq!(
            SubOpts::new(QoS::AtLeastOnce, false, false, MAX_SUB_ID + 1).id(),
            None
        );
        assert_eq!(
            SubOpts::qos_only(QoS::ExactlyOnce),
            SubOpts::new(QoS::ExactlyOnce, false, false, 0)
        );
    }
}
