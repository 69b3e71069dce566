//! The PROXY protocol (v1 text, v2 binary) header a load balancer puts in
//! front of a connection to say who the client really is.
//!
//! [`parse`] is a pure function over the first bytes of a connection (unit
//! tested and fuzzed: `fuzz/fuzz_targets/proxy.rs`, `tests/fuzz_proxy.rs`);
//! [`read_header`] peeks the socket until a whole header is there and then
//! consumes exactly its bytes, so what follows (a TLS ClientHello, the
//! CONNECT) stays in the kernel for the next layer. Called by the accept path
//! of a `proxy_protocol = true` listener ([`crate::listener`]) before TLS;
//! the caller bounds it in time.

use glommio::net::TcpStream;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The longest header accepted (v1 is at most 107 bytes; v2 carries TLVs).
pub const MAX_HEADER: usize = 1024;
/// v2's fixed 12-byte signature.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// v1's longest line, CRLF included.
const V1_MAX: usize = 107;

/// A whole header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Its length in bytes (what to consume).
    pub len: usize,
    /// The client's address, or None to keep the socket's (v1 UNKNOWN, v2
    /// LOCAL, or an address family other than IPv4/IPv6).
    pub source: Option<SocketAddr>,
}

/// Why the bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// They start like neither version.
    NotProxy,
    /// A header, but broken; says where.
    Malformed(&'static str),
    /// Longer than [`MAX_HEADER`].
    TooLong,
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::NotProxy => f.write_str("no PROXY protocol header"),
            ProxyError::Malformed(why) => write!(f, "malformed PROXY header: {why}"),
            ProxyError::TooLong => write!(f, "PROXY header over {MAX_HEADER} bytes"),
        }
    }
}

/// Parse the start of a connection: `Ok(None)` while more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if starts_like(buf, V2_SIG) {
        if buf.len() < V2_SIG.len() {
            return Ok(None);
        }
        return parse_v2(buf);
    }
    if starts_like(buf, b"PROXY ") {
        if buf.len() < 6 {
            return Ok(None);
        }
        return parse_v1(buf);
    }
    Err(ProxyError::NotProxy)
}

/// Whether `buf` and `prefix` agree on their common length.
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::Malformed("v1 line without CRLF in 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| ProxyError::Malformed("v1 text"))?;
    let len = end + 2;
    let mut parts = line.split(' ');
    let family = parts.next().unwrap_or_default();
    if family == "UNKNOWN" {
        return Ok(Some(Header { len, source: None }));
    }
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::Malformed("v1 needs 4 fields after the family"));
    };
    let ip = match family {
        "TCP4" => v1_ip::<Ipv4Addr>(src, dst, "v1 IPv4 address")?,
        "TCP6" => v1_ip::<Ipv6Addr>(src, dst, "v1 IPv6 address")?,
        _ => return Err(ProxyError::Malformed("v1 family")),
    };
    let port = v1_port(sport)?;
    v1_port(dport)?;
    Ok(Some(Header {
        len,
        source: Some(SocketAddr::new(ip, port)),
    }))
}

/// A v1 line's source address, its destination checked to be one too.
fn v1_ip<A: std::str::FromStr + Into<IpAddr>>(
    src: &str,
    dst: &str,
    what: &'static str,
) -> Result<IpAddr, ProxyError> {
    dst.parse::<A>().map_err(|_| ProxyError::Malformed(what))?;
    Ok(src
        .parse::<A>()
        .map_err(|_| ProxyError::Malformed(what))?
        .into())
}

/// A v1 port: decimal digits, no sign, no leading zero.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok())
        .flatten()
        .ok_or(ProxyError::Malformed("v1 port"))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version"));
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > MAX_HEADER {
        return Err(ProxyError::TooLong);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let addr = &buf[16..len];
    let source = match ver_cmd & 0x0f {
        0 => None, // LOCAL: the proxy's own connection (a health check)
        1 => v2_source(buf[13], addr)?,
        _ => return Err(ProxyError::Malformed("v2 command")),
    };
    Ok(Some(Header { len, source }))
}

/// The source address of a v2 PROXY command, by family and protocol byte.
fn v2_source(fam: u8, addr: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let short = ProxyError::Malformed("v2 address block too short");
    match fam >> 4 {
        1 => {
            let a: &[u8; 12] = addr
                .get(..12)
                .and_then(|a| a.try_into().ok())
                .ok_or(short)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Ok(Some(SocketAddr::new(ip.into(), port)))
        }
        2 => {
            let a: &[u8; 36] = addr
                .get(..36)
                .and_then(|a| a.try_into().ok())
                .ok_or(short)?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Ok(Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port)))
        }
        0 | 3 => Ok(None), // UNSPEC, UNIX: no IP to speak of
        _ => Err(ProxyError::Malformed("v2 address family")),
    }
}

/// Why [`read_header`] gave up.
#[derive(Debug)]
pub enum ReadError {
    Proxy(ProxyError),
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Proxy(e) => e.fmt(f),
            ReadError::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

/// Peek until a whole header is in, then consume exactly it. Unbounded in
/// time: the caller races it against its deadline.
pub async fn read_header(stream: &mut TcpStream) -> Result<Header, ReadError> {
    use futures_lite::AsyncReadExt;
    let mut buf = vec![0u8; MAX_HEADER];
    loop {
        let n = stream
            .peek(&mut buf)
            .await
            .map_err(|e| ReadError::Io(e.into()))?;
        if n == 0 {
            return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        match parse(&buf[..n]).map_err(ReadError::Proxy)? {
            Some(h) => {
                stream
                    .read_exact(&mut buf[..h.len])
                    .await
                    .map_err(ReadError::Io)?;
                return Ok(h);
            }
            None if n == MAX_HEADER => return Err(ReadError::Proxy(ProxyError::TooLong)),
            // Part of a header: peek returns at once while any byte is
            // there, so wait a little for the rest instead of spinning.
            None => glommio::timer::sleep(Duration::from_millis(5)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, fam: u8, addr: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        h.extend_from_slice(addr);
        h
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let line = b"PROXY TCP4 10.1.2.3 192.168.0.1 56324 1883\r\nMQTT";
        let h = parse(line).unwrap().unwrap();
        assert_eq!(h.len, line.len() - 4);
        assert_eq!(h.source, Some("10.1.2.3:56324".parse().unwrap()));
        let h = parse(b"PROXY TCP6 2001:db8::1 ::1 4000 1883\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("[2001:db8::1]:4000".parse().unwrap()));
        let h = parse(b"PROXY UNKNOWN whatever\r\n").unwrap().unwrap();
        assert_eq!((h.len, h.source), (24, None));
    }

    #[test]
    fn v1_needs_more_until_crlf() {
        let line = b"PROXY TCP4 10.1.2.3 192.168.0.1 56324 1883\r\n";
        for n in 0..line.len() {
            assert_eq!(parse(&line[..n]), Ok(None), "{n} bytes");
        }
    }

    #[test]
    fn v1_malformed() {
        for bad in [
            &b"PROXY TCP4 10.1.2.3 192.168.0.1 56324\r\n"[..],
            b"PROXY TCP4 10.1.2.3 nope 1 2\r\n",
            b"PROXY TCP6 2001:db8::1 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 10.1.2 192.168.0.1 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 10.1.2.3 1.1.1.1 65536 2\r\n",
            b"PROXY TCP4 10.1.2.3 1.1.1.1 01 2\r\n",
            b"PROXY TCP4 10.1.2.3 1.1.1.1 +1 2\r\n",
            b"PROXY UDP4 10.1.2.3 1.1.1.1 1 2\r\n",
            b"PROXY TCP4  10.1.2.3 1.1.1.1 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::Malformed(_))),
                "{bad:?}"
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert!(matches!(parse(&long), Err(ProxyError::Malformed(_))));
        assert_eq!(parse(b"\x10\x00\x04MQTT"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXZ"), Err(ProxyError::NotProxy));
    }

    #[test]
    fn v2_inet_inet6_local_unix() {
        let mut addr = vec![10, 9, 8, 7, 127, 0, 0, 1];
        addr.extend_from_slice(&4321u16.to_be_bytes());
        addr.extend_from_slice(&1883u16.to_be_bytes());
        addr.extend_from_slice(&[0x04, 0, 1, 0xff]); // a TLV after the addresses
        let mut h = v2(1, 0x11, &addr);
        let len = h.len();
        h.extend_from_slice(b"\x10rest");
        let got = parse(&h).unwrap().unwrap();
        assert_eq!(got.len, len);
        assert_eq!(got.source, Some("10.9.8.7:4321".parse().unwrap()));
        for n in 0..len {
            assert_eq!(parse(&h[..n]), Ok(None), "{n} bytes");
        }

        let mut a6 = vec![0u8; 36];
        a6[0] = 0x20;
        a6[1] = 0x01;
        a6[15] = 5;
        a6[32..34].copy_from_slice(&99u16.to_be_bytes());
        let got = parse(&v2(1, 0x21, &a6)).unwrap().unwrap();
        assert_eq!(got.source, Some("[2001::5]:99".parse().unwrap()));

        let local = v2(0, 0x00, &[]);
        assert_eq!(
            parse(&local),
            Ok(Some(Header {
                len: 16,
                source: None
            }))
        );
        let unix = v2(1, 0x31, &[0u8; 216]);
        assert_eq!(parse(&unix).unwrap().unwrap().source, None);
    }

    #[test]
    fn v2_malformed() {
        let mut bad_ver = v2(1, 0x11, &[0u8; 12]);
        bad_ver[12] = 0x11;
        assert!(matches!(parse(&bad_ver), Err(ProxyError::Malformed(_))));
        assert!(matches!(
            parse(&v2(2, 0x11, &[0u8; 12])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x11, &[0u8; 11])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x21, &[0u8; 12])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x41, &[0u8; 12])),
            Err(ProxyError::Malformed(_))
        ));
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(parse(&huge), Err(ProxyError::TooLong));
    }
}
