//! [`TlsSession`]: one connection's TLS state on rustls's unbuffered API,
//! so that the buffers are the shard's, not the connection's.
//!
//! rustls's buffered `ServerConnection` keeps a 4 KB read buffer per
//! connection for as long as it lives, idle or not. Here the caller lends
//! the bytes: ciphertext is read into the thread's [`INPUT`] buffer and
//! decrypted from there, output is encrypted into the thread's [`OUTPUT`]
//! buffer and written from there. A connection keeps bytes of its own only
//! while it must — a record cut across reads (`partial_in`), ciphertext the
//! socket did not take (`unsent`), plaintext the reader had no room for
//! (`plain`) — and frees them as soon as they are used up, so an idle
//! session is the rustls connection state and three empty `Vec`s.
//!
//! Sans-I/O: [`TlsSession::absorb`] takes ciphertext and gives plaintext,
//! [`TlsSession::encrypt`] and [`TlsSession::close_notify`] make
//! ciphertext. The socket side is [`super::stream`] (after the handshake)
//! and [`super::handshake`].

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls::ServerConfig;
use std::cell::RefCell;
use std::io;
use std::sync::Arc;

/// Room for one more full TLS record (16 KB of payload plus its overhead).
pub(super) const RECORD_ROOM: usize = 16 * 1024 + 2048;

thread_local! {
    /// Ciphertext being decrypted: one per shard thread.
    pub(super) static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Ciphertext being written: one per shard thread.
    pub(super) static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One connection's rustls state and the bytes it had to keep.
pub struct TlsSession {
    conn: UnbufferedServerConnection,
    /// The start of a record that has not arrived whole.
    partial_in: Vec<u8>,
    /// Ciphertext the socket has not taken yet (sent before anything else).
    unsent: Vec<u8>,
    /// Decrypted bytes the reader has not taken yet.
    plain: Vec<u8>,
    peer_closed: bool,
}

impl TlsSession {
    pub(super) fn new(config: Arc<ServerConfig>) -> Result<Box<TlsSession>, rustls::Error> {
        Ok(Box::new(TlsSession {
            conn: UnbufferedServerConnection::new(config)?,
            partial_in: Vec::new(),
            unsent: Vec::new(),
            plain: Vec::new(),
            peer_closed: false,
        }))
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    pub(super) fn peer_certificates(
        &self,
    ) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The peer sent close_notify, or (see [`end_of_stream`](Self::end_of_stream))
    /// closed the TCP stream: nothing more will be read.
    pub(super) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The TCP stream ended: an end like close_notify for the reader.
    pub(super) fn end_of_stream(&mut self) {
        self.peer_closed = true;
    }

    /// The start of an incomplete record kept from the last read.
    pub(super) fn partial_in(&self) -> &[u8] {
        &self.partial_in
    }

    /// Ciphertext still owed to the socket.
    pub(super) fn unsent(&self) -> &[u8] {
        &self.unsent
    }

    /// The socket took `n` bytes of [`unsent`](Self::unsent).
    pub(super) fn sent(&mut self, n: usize) {
        self.unsent.drain(..n.min(self.unsent.len()));
        if self.unsent.is_empty() {
            self.unsent = Vec::new();
        }
    }

    /// Keep `rest` of some output for later (the socket was full).
    pub(super) fn keep_unsent(&mut self, rest: &[u8]) {
        self.unsent.extend_from_slice(rest);
    }

    /// Move plaintext kept from an earlier read into `buf`; how much.
    pub(super) fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.plain.len());
        buf[..n].copy_from_slice(&self.plain[..n]);
        self.plain.drain(..n);
        if self.plain.is_empty() {
            self.plain = Vec::new();
        }
        n
    }

    /// Process `input` (what [`partial_in`](Self::partial_in) held, then
    /// new ciphertext): plaintext goes into `buf` (what does not fit is
    /// kept for the next read), handshake messages, alerts and tickets into
    /// `out`; an incomplete record at the end is kept (rustls bounds it: a
    /// record of at most 18 KB, a handshake message of at most 64 KB).
    /// Returns how many plaintext bytes went into `buf`; stops early at the
    /// peer's close_notify ([`peer_closed`](Self::peer_closed)).
    pub(super) fn absorb(
        &mut self,
        input: &mut [u8],
        buf: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, rustls::Error> {
        let mut filled = 0;
        let mut at = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut input[at..]);
            // Some(true): more input is needed; Some(false): the peer closed.
            let stop = match state {
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    let mut failed = None;
                    while let Some(record) = r.next_record() {
                        let payload = match record {
                            Ok(record) => record.payload,
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        };
                        let n = payload.len().min(buf.len() - filled);
                        buf[filled..filled + n].copy_from_slice(&payload[..n]);
                        filled += n;
                        self.plain.extend_from_slice(&payload[n..]);
                    }
                    failed.map_or(Ok(None), Err)
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    write_into(out, |room| e.encode(room).map_err(EncodeFail::from)).map(|()| None)
                }
                // What was encoded is in `out`, sent before anything newer.
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    Ok(None)
                }
                // Mid-handshake, or in traffic with nothing whole left.
                Ok(ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_)) => {
                    Ok(Some(true))
                }
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => Ok(Some(false)),
                Ok(_) => Err(rustls::Error::General("unexpected TLS state".into())),
                Err(e) => Err(e),
            };
            at += discard;
            match stop {
                Ok(None) => {}
                Ok(Some(more)) => {
                    self.peer_closed |= !more;
                    break;
                }
                Err(e) => {
                    self.alert_into(&mut input[at..], out);
                    return Err(e);
                }
            }
        }
        self.partial_in.clear();
        self.partial_in.extend_from_slice(&input[at..]);
        if self.partial_in.is_empty() {
            self.partial_in = Vec::new();
        }
        Ok(filled)
    }

    /// After an error: the alert rustls queued for the peer, if any. Only
    /// queued output is taken (rustls hands it out before it looks at the
    /// input again), so nothing is processed twice.
    fn alert_into(&mut self, input: &mut [u8], out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            let status = self.conn.process_tls_records(input);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    let _ = write_into(out, |room| e.encode(room).map_err(EncodeFail::from));
                }
                _ => return,
            }
        }
    }

    /// Encrypt `plain` into `out` (after any handshake output rustls still
    /// owes). Fails if the session cannot send application data.
    pub(super) fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.with_traffic(out, |w, out| {
            write_into(out, |room| w.encrypt(plain, room).map_err(EncodeFail::from))
        })
    }

    /// Encrypt a close_notify alert into `out`.
    pub(super) fn close_notify(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.with_traffic(out, |w, out| {
            write_into(out, |room| {
                w.queue_close_notify(room).map_err(EncodeFail::from)
            })
        })
    }

    /// Run `f` in the write-traffic state, first encoding what rustls owes.
    fn with_traffic(
        &mut self,
        out: &mut Vec<u8>,
        mut f: impl FnMut(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> Result<(), rustls::Error>,
    ) -> io::Result<()> {
        // Bounded: each round either encodes owed output or ends.
        for _ in 0..64 {
            let status = self.conn.process_tls_records(&mut self.partial_in);
            let discard = status.discard;
            let done = match status.state {
                Ok(ConnectionState::WriteTraffic(mut w)) => Some(f(&mut w, out).map_err(invalid)),
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    write_into(out, |room| e.encode(room).map_err(EncodeFail::from))
                        .err()
                        .map(|e| Err(invalid(e)))
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    None
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    None
                }
                Ok(_) => Some(Err(io::ErrorKind::NotConnected.into())),
                Err(e) => Some(Err(invalid(e))),
            };
            // Bytes of a record rustls finished with, if any.
            self.partial_in.drain(..discard.min(self.partial_in.len()));
            if let Some(result) = done {
                return result;
            }
        }
        Err(io::Error::other(
            "TLS session did not reach the traffic state",
        ))
    }
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("partial_in", &self.partial_in.len())
            .field("unsent", &self.unsent.len())
            .field("plain", &self.plain.len())
            .finish()
    }
}

/// Why rustls could not write into the room given.
enum EncodeFail {
    /// It needs this many bytes.
    Room(usize),
    /// Nothing left to write (an encode already done).
    Nothing,
    Failed(&'static str),
}

impl From<EncodeError> for EncodeFail {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                EncodeFail::Room(required_size)
            }
            EncodeError::AlreadyEncoded => EncodeFail::Nothing,
        }
    }
}

impl From<EncryptError> for EncodeFail {
    fn from(e: EncryptError) -> Self {
        match e {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                EncodeFail::Room(required_size)
            }
            EncryptError::EncryptExhausted => EncodeFail::Failed("TLS sequence numbers exhausted"),
        }
    }
}

/// Append what `write` produces to `out`, growing the room it is given
/// until it fits.
fn write_into(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, EncodeFail>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    let mut room = 1024;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeFail::Room(needed)) if needed > room => room = needed,
            Err(EncodeFail::Room(_)) => {
                out.truncate(start);
                return Err(rustls::Error::General("TLS output does not fit".into()));
            }
            Err(EncodeFail::Nothing) => {
                out.truncate(start);
                return Ok(());
            }
            Err(EncodeFail::Failed(why)) => {
                out.truncate(start);
                return Err(rustls::Error::General(why.into()));
            }
        }
    }
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
