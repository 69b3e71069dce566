//! A peer's socket address in 20 bytes (`SocketAddr` takes 32): every
//! connection keeps one in the shard's connections part
//! ([`crate::shard::conns`]) and one in its [`ClientInfo`](crate::hooks::ClientInfo).
//! An IPv6 flow label and scope id are not kept.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IPv4 or IPv6 address and port.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// IPv4 in the first four bytes, or IPv6.
    ip: [u8; 16],
    port: u16,
    v6: bool,
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        let mut ip = [0; 16];
        let v6 = match a.ip() {
            IpAddr::V4(v4) => {
                ip[..4].copy_from_slice(&v4.octets());
                false
            }
            IpAddr::V6(v6) => {
                ip = v6.octets();
                true
            }
        };
        PeerAddr {
            ip,
            port: a.port(),
            v6,
        }
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(p: PeerAddr) -> Self {
        SocketAddr::new(p.ip(), p.port)
    }
}

impl PeerAddr {
    pub fn ip(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            ))
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketAddr::from(*self).fmt(f)
    }
}

impl fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_address_and_port_in_20_bytes() {
        assert_eq!(std::mem::size_of::<PeerAddr>(), 20);
        for s in [
            "127.0.0.9:1883",
            "[::1]:8883",
            "[2001:db8::7]:65535",
            "0.0.0.0:0",
        ] {
            let a: SocketAddr = s.parse().expect("address");
            let p = PeerAddr::from(a);
            assert_eq!(SocketAddr::from(p), a);
            assert_eq!((p.ip(), p.port()), (a.ip(), a.port()));
            assert_eq!(p.to_string(), s);
            assert_eq!(format!("{p:?}"), s);
        }
        let v4: SocketAddr = "10.0.0.1:5".parse().expect("v4");
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5".parse().expect("v6");
        assert_ne!(
            PeerAddr::from(v4),
            PeerAddr::from(mapped),
            "families stay apart"
        );
    }
}
