//! WebSocket test support: a blocking client (tungstenite's, the same
//! crate coremq uses for frame headers, but its client side) whose
//! [`WsStream`] is a byte stream — each write one binary frame, reads the
//! payload bytes of the frames that arrive — so [`super::Client`] speaks
//! MQTT over it unchanged; and raw frames for tests that cut packets across
//! frames or send what a client must not.

use super::WAIT;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// A WebSocket client connection over `S` (TCP, or TLS for `wss`).
pub struct WsStream<S: Read + Write> {
    ws: WebSocket<S>,
    /// Payload bytes received and not read yet.
    inbound: Vec<u8>,
    /// Control frames and non-binary messages seen, oldest first.
    pub seen: Vec<Message>,
}

/// Upgrade `stream` on `path` offering `protocols` (comma-separated, empty
/// for none); the server's 101 response, or the HTTP status it refused with
/// (0: a signal interrupted the read, try again).
pub fn upgrade<S: Read + Write>(
    stream: S,
    host: SocketAddr,
    path: &str,
    protocols: &str,
) -> Result<(WsStream<S>, Response), u16> {
    let mut req = format!("ws://{host}{path}").into_client_request().unwrap();
    if !protocols.is_empty() {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    }
    let mut attempt = tungstenite::client(req, stream);
    let end = Instant::now() + WAIT;
    loop {
        match attempt {
            Ok((ws, resp)) => {
                let s = WsStream {
                    ws,
                    inbound: Vec::new(),
                    seen: Vec::new(),
                };
                return Ok((s, resp));
            }
            Err(HandshakeError::Interrupted(mid)) if Instant::now() < end => {
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                return Err(resp.status().as_u16())
            }
            Err(HandshakeError::Failure(tungstenite::Error::Io(e)))
                if e.kind() == ErrorKind::Interrupted =>
            {
                return Err(0)
            }
            Err(e) => panic!("websocket upgrade failed: {e}"),
        }
    }
}

/// A `ws://` connection to `addr` on `path` offering `mqtt`, with the read
/// timeout [`super::Client`] expects.
/// A read with a timeout is not restarted after a signal (EINTR, see
/// signal(7)), and tungstenite's handshake cannot resume after an error:
/// an upgrade cut that way is tried again on a new connection.
pub fn connect(addr: SocketAddr, path: &str) -> WsStream<TcpStream> {
    let (ws, resp) = (0..3)
        .find_map(|_| {
            let tcp = TcpStream::connect(addr).expect("tcp connect");
            tcp.set_nodelay(true).unwrap();
            tcp.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            upgrade(tcp, addr, path, "mqtt").ok()
        })
        .expect("upgrade");
    let chosen = resp.headers().get("Sec-WebSocket-Protocol");
    // [MQTT-6.0.0-4]: the subprotocol the server selects is "mqtt".
    assert_eq!(chosen.map(|v| v.to_str().unwrap()), Some("mqtt"));
    ws
}

impl<S: Read + Write> WsStream<S> {
    /// Send one frame as it is: `fin` false leaves the message open for
    /// continuation frames ([`OpCode::Data(Data::Continue)`]).
    pub fn send_frame(&mut self, op: OpCode, payload: &[u8], fin: bool) -> io::Result<()> {
        let frame = Frame::message(payload.to_vec(), op, fin);
        self.ws.send(Message::Frame(frame)).map_err(to_io)
    }

    /// Send an MQTT byte sequence cut into binary frames at `cuts` (offsets),
    /// each frame its own message.
    pub fn send_cut(&mut self, bytes: &[u8], cuts: &[usize]) -> io::Result<()> {
        let mut at = 0;
        for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
            self.send_frame(OpCode::Data(Data::Binary), &bytes[at..end], true)?;
            at = end;
        }
        Ok(())
    }

    /// Send a control message (ping, close) or a text message.
    pub fn send_message(&mut self, m: Message) -> io::Result<()> {
        self.ws.send(m).map_err(to_io)
    }

    /// Read until a message arrives that is not binary data, or until
    /// `within`; binary payloads are kept for [`Read`]. None on timeout;
    /// a close frame from the server is returned as such.
    pub fn next_control(&mut self, within: Duration) -> Option<Message> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(m) = self.pop_seen() {
                return Some(m);
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return self.pop_seen(),
                Err(e) if is_timeout(&e) => {}
                Err(_) => return self.pop_seen(),
            }
        }
        self.pop_seen()
    }

    /// The close frame the server sent, its code, within WAIT.
    pub fn close_code(&mut self) -> Option<u16> {
        match self.next_control(WAIT)? {
            Message::Close(Some(CloseFrame { code, .. })) => Some(code.into()),
            Message::Close(None) => Some(1005),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    fn pop_seen(&mut self) -> Option<Message> {
        (!self.seen.is_empty()).then(|| self.seen.remove(0))
    }

    /// Read one message: Ok(false) once the connection has ended.
    fn fill(&mut self) -> io::Result<bool> {
        match self.ws.read() {
            Ok(Message::Binary(b)) => self.inbound.extend_from_slice(&b),
            Ok(m) => self.seen.push(m),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(false)
            }
            Err(e) => return Err(to_io(e)),
        }
        Ok(true)
    }

    /// The stream under the WebSocket.
    pub fn get_ref(&self) -> &S {
        self.ws.get_ref()
    }
}

impl<S: Read + Write> Read for WsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.inbound.is_empty() {
            if !self.fill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.inbound.len());
        buf[..n].copy_from_slice(&self.inbound[..n]);
        self.inbound.drain(..n);
        Ok(n)
    }
}

impl<S: Read + Write> Write for WsStream<S> {
    /// One binary frame per write.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ws.send(Message::binary(buf.to_vec())).map_err(to_io)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ws.flush().map_err(to_io)
    }
}

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ErrorKind::ConnectionAborted.into()
        }
        other => io::Error::other(other.to_string()),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
