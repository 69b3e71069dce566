//! Test tools for the WebSocket transport: client frames built by hand (so
//! tests can cut, mis-mask or oversize them), a parser for the server's
//! frames, and an in-memory [`Mock`] transport that takes a set number of
//! bytes per write.

use crate::transport::{Detached, Transport};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::{Context, Poll};

pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `op` (1 text, 2 binary, 0 continuation, 8 close, 9
/// ping), FIN, payload, masked with `mask` when given.
pub fn frame(op: u8, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![op | if fin { 0x80 } else { 0 }];
    let m = if mask.is_some() { 0x80 } else { 0 };
    frame_len(&mut out, m, payload.len() as u64);
    if let Some(k) = mask {
        out.extend_from_slice(&k);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// The length field of a frame header (7, 16 or 64 bits).
pub fn frame_len(out: &mut Vec<u8>, mask_bit: u8, len: u64) {
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A masked binary frame, final.
pub fn binary(payload: &[u8]) -> Vec<u8> {
    frame(2, true, payload, Some(MASK))
}

/// Server frames in `bytes`: (opcode, FIN, payload). Panics on a masked
/// or cut frame: the server must send neither.
pub fn server_frames(mut bytes: &[u8]) -> Vec<(u8, bool, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (op, fin) = (bytes[0] & 0x0f, bytes[0] & 0x80 != 0);
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (len, at) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        out.push((op, fin, bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    out
}

/// What a [`Mock`] received and will deliver.
#[derive(Default)]
pub struct MockIo {
    /// Chunks each read returns (one per read, cut to the buffer).
    pub inbound: VecDeque<Vec<u8>>,
    /// End of stream once `inbound` is empty (else reads are Pending).
    pub eof: bool,
    /// Everything written, through poll_write and write_now.
    pub written: Vec<u8>,
    /// Bytes a poll_write takes at most; 0: Pending.
    pub write_limit: usize,
}

/// An in-memory transport shared with the test through `Rc`.
#[derive(Clone)]
pub struct Mock(pub Rc<RefCell<MockIo>>);

impl Mock {
    pub fn new() -> Mock {
        Mock(Rc::new(RefCell::new(MockIo {
            write_limit: usize::MAX,
            ..MockIo::default()
        })))
    }

    pub fn push(&self, bytes: &[u8]) {
        self.0.borrow_mut().inbound.push_back(bytes.to_vec());
    }

    pub fn take_written(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut().written)
    }
}

impl Transport for Mock {
    fn poll_read(&mut self, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut io = self.0.borrow_mut();
        let Some(mut chunk) = io.inbound.pop_front() else {
            return if io.eof {
                Poll::Ready(Ok(0))
            } else {
                Poll::Pending
            };
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            io.inbound.push_front(chunk.split_off(n));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut io = self.0.borrow_mut();
        let n = buf.len().min(io.write_limit);
        if n == 0 {
            return Poll::Pending;
        }
        io.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn write_now(&mut self, buf: &[u8]) {
        self.0.borrow_mut().written.extend_from_slice(buf);
    }

    fn detach(&mut self) -> io::Result<Detached> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn socket_fd(&self) -> RawFd {
        -1
    }
}
