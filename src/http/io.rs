//! hyper's I/O traits over a glommio socket.
//!
//! hyper 1.x reads and writes through `hyper::rt::Read`/`Write`; glommio's
//! `TcpStream` offers `futures_lite`'s `AsyncRead`/`AsyncWrite`. [`HyperIo`]
//! adapts one to the other, on the shard's own executor (no tokio, no other
//! thread). Used by `http::serve` for every management connection.

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A glommio TCP stream as hyper's I/O.
pub struct HyperIo(pub TcpStream);

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the bytes are initialized (zeroed) before they are seen
        // as `u8`, and only the `n` bytes the read filled are advanced over.
        unsafe {
            let spare = buf.as_mut();
            spare.fill(MaybeUninit::new(0));
            let bytes =
                std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), spare.len());
            match Pin::new(&mut self.0).poll_read(cx, bytes) {
                Poll::Ready(Ok(n)) => {
                    buf.advance(n);
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
