//! RFC 6455 framing, server side, with no buffer of its own: [`Inbound`]
//! turns the raw bytes of a read into MQTT bytes in place (frame headers
//! removed, payload unmasked and moved to the front), and the `*_frame`
//! functions build what the server sends. Pure code over byte slices; the
//! [`Ws`](super::Ws) transport owns one `Inbound` and does the I/O.
//!
//! A data frame's payload streams through: only its remaining length and
//! mask position are kept between reads, so a frame's declared size never
//! becomes an allocation. Headers come from tungstenite's
//! [`FrameHeader`], which parses and formats them.

use std::fmt;
use std::io::Cursor;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The largest control-frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Why the peer's frames are refused; each maps to the close code sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A text frame: MQTT travels in binary frames only (close 1003).
    Text,
    /// A client frame without a mask (§5.1, close 1002).
    Unmasked,
    /// RSV bits set, a reserved opcode, a fragmented or over-long control
    /// frame, a continuation with no message, or a new message inside one
    /// (close 1002).
    Protocol(&'static str),
    /// A data frame larger than the limit (close 1009), refused from its header.
    TooLarge(u64),
    /// A close frame whose reason is not UTF-8 (close 1007).
    BadCloseReason,
}

impl Violation {
    /// The close code to send for it.
    pub fn close_code(self) -> u16 {
        match self {
            Violation::Text => 1003,
            Violation::Unmasked | Violation::Protocol(_) => 1002,
            Violation::TooLarge(_) => 1009,
            Violation::BadCloseReason => 1007,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Text => write!(f, "websocket text frame"),
            Violation::Unmasked => write!(f, "unmasked websocket frame from a client"),
            Violation::Protocol(why) => write!(f, "websocket protocol error: {why}"),
            Violation::TooLarge(n) => write!(f, "websocket frame of {n} bytes is over the limit"),
            Violation::BadCloseReason => write!(f, "websocket close reason is not UTF-8"),
        }
    }
}

/// What one [`Inbound::decode`] call found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// MQTT bytes now at the front of the buffer.
    pub data: usize,
    /// Bytes of the buffer consumed; the rest is an incomplete header or
    /// control frame, to be decoded again with the bytes that follow.
    pub used: usize,
    /// The peer's close frame, with the code to echo: decoding stopped there.
    pub close: Option<u16>,
}

/// The inbound framing state between reads. Small and `Send`: it moves with
/// a detached connection.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Payload bytes of the current data frame still to come.
    left: u64,
    /// That frame's mask.
    mask: [u8; 4],
    /// Offset into the mask of the next payload byte.
    mask_pos: u8,
    /// A fragmented message is open: only continuation frames may follow.
    in_message: bool,
}

impl Inbound {
    /// Decode the raw bytes in `buf` in place. MQTT bytes are moved to the
    /// front; each ping's (unmasked) payload goes to `on_ping`. Frames with
    /// more than `max_frame` payload bytes are refused from their header.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        max_frame: u64,
        on_ping: &mut dyn FnMut(&[u8]),
    ) -> Result<Decoded, Violation> {
        let (mut r, mut w) = (0, 0);
        while r < buf.len() {
            if self.left > 0 {
                let n = usize::try_from(self.left).map_or(buf.len() - r, |l| l.min(buf.len() - r));
                self.mask_pos = unmask(&mut buf[r..r + n], self.mask, self.mask_pos);
                buf.copy_within(r..r + n, w);
                (r, w) = (r + n, w + n);
                self.left -= n as u64;
                continue;
            }
            let mut cursor = Cursor::new(&buf[r..]);
            let (head, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => return Err(Violation::Protocol("reserved opcode")),
            };
            let head_len = cursor.position() as usize;
            let mask = self.check(&head, len, max_frame)?;
            match head.opcode {
                OpCode::Data(_) => {
                    (self.left, self.mask, self.mask_pos) = (len, mask, 0);
                    self.in_message = !head.is_final;
                    r += head_len;
                }
                OpCode::Control(c) => {
                    // check() bounded len to 125.
                    let end = r + head_len + len as usize;
                    if end > buf.len() {
                        break; // decoded again once whole
                    }
                    let payload = &mut buf[r + head_len..end];
                    unmask(payload, mask, 0);
                    r = end;
                    match c {
                        Control::Ping => on_ping(payload),
                        Control::Close => {
                            let code = close_code(payload)?;
                            return Ok(Decoded {
                                data: w,
                                used: r,
                                close: Some(code),
                            });
                        }
                        _ => {} // pong: nothing to do
                    }
                }
            }
        }
        Ok(Decoded {
            data: w,
            used: r,
            close: None,
        })
    }

    /// Whether a data frame's payload is partly received.
    #[cfg(test)]
    pub fn mid_frame(&self) -> bool {
        self.left > 0
    }

    /// The frame's mask, once the header passes the server-side rules.
    fn check(&self, head: &FrameHeader, len: u64, max_frame: u64) -> Result<[u8; 4], Violation> {
        if head.rsv1 || head.rsv2 || head.rsv3 {
            return Err(Violation::Protocol("RSV bit set with no extension"));
        }
        let Some(mask) = head.mask else {
            return Err(Violation::Unmasked);
        };
        match head.opcode {
            OpCode::Data(Data::Text) => Err(Violation::Text),
            OpCode::Data(Data::Binary) if self.in_message => {
                Err(Violation::Protocol("new message inside a fragmented one"))
            }
            OpCode::Data(Data::Continue) if !self.in_message => {
                Err(Violation::Protocol("continuation frame with no message"))
            }
            OpCode::Data(_) if len > max_frame => Err(Violation::TooLarge(len)),
            OpCode::Control(_) if !head.is_final || len > MAX_CONTROL_PAYLOAD as u64 => {
                Err(Violation::Protocol("fragmented or over-long control frame"))
            }
            _ => Ok(mask),
        }
    }
}

/// The code to echo for a close frame's payload (§5.5.1, §7.4).
fn close_code(payload: &[u8]) -> Result<u16, Violation> {
    match payload {
        [] => Ok(1000),
        [_] => Err(Violation::Protocol("one-byte close payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return Err(Violation::Protocol("close code not allowed on the wire"));
            }
            std::str::from_utf8(reason).map_err(|_| Violation::BadCloseReason)?;
            Ok(code)
        }
    }
}

/// XOR `data` with `mask` starting at mask offset `pos`; the offset after it.
fn unmask(data: &mut [u8], mask: [u8; 4], pos: u8) -> u8 {
    let p = usize::from(pos & 3);
    let m = [
        mask[p],
        mask[(p + 1) & 3],
        mask[(p + 2) & 3],
        mask[(p + 3) & 3],
    ];
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
    ((p + data.len()) & 3) as u8
}

/// Bytes of the largest unmasked header the server writes.
pub const MAX_HEAD: usize = 10;

/// The header of a final, unmasked binary frame of `len` payload bytes:
/// the buffer and how many of its bytes are the header.
pub fn binary_head(len: usize) -> ([u8; MAX_HEAD], usize) {
    head(OpCode::Data(Data::Binary), len)
}

fn head(opcode: OpCode, len: usize) -> ([u8; MAX_HEAD], usize) {
    let h = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    let mut out = [0u8; MAX_HEAD];
    let mut cursor = Cursor::new(&mut out[..]);
    // Ten bytes always hold an unmasked header: it cannot fail.
    let _ = h.format(len as u64, &mut cursor);
    let n = cursor.position() as usize;
    (out, n)
}

/// A whole control frame (`Control::Pong` with the ping's payload, say);
/// `payload` is at most 125 bytes (longer is cut).
pub fn control_frame(c: Control, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let (h, n) = head(OpCode::Control(c), payload.len());
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    out
}

/// A close frame with `code` and no reason.
pub fn close_frame(code: u16) -> Vec<u8> {
    control_frame(Control::Close, &code.to_be_bytes())
}

#[cfg(test)]
mod tests;
