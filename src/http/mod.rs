//! The management HTTP listener: metrics, health, the JSON API, the dashboard.
//!
//! One listener on `[http] bind`, served by shard 0's executor with hyper's
//! HTTP/1.1 server over glommio sockets (`io.rs`). Each request is checked
//! for credentials (`auth.rs`), routed (`routes.rs`) and answered by asking
//! the shards over the mesh (`crate::control`); nothing here touches another
//! shard's state. A request body is read up to `max_body_bytes` (413 past
//! it); a connection serves one request and lives at most
//! [`CONN_LIFETIME`]; at most `max_connections` are served at once (one
//! more is answered at once: 503, or 200 to `/health/live`), so a slow or
//! hostile HTTP client costs a
//! bounded share of shard 0 and never reaches MQTT traffic.
//! Started by `crate::broker` (`shard_main` of shard 0).

mod api;
mod auth;
mod io;
pub mod parse;
mod prom;
mod reply;
mod routes;

use crate::control::sys::OpsRef;
use crate::shard::ShardRef;
use glommio::net::TcpListener;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The most a management connection stays open (keep-alive included).
pub const CONN_LIFETIME: Duration = Duration::from_secs(10);

/// The dashboard page, inside the binary.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// Accept management connections until the broker stops.
pub async fn serve(shard: ShardRef, ops: OpsRef, listener: TcpListener) {
    let max = shard.borrow().cfg.http.max_connections;
    let slots = Rc::new(glommio::sync::Semaphore::new(max as u64));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                if shard.borrow().stop.load(Ordering::Relaxed) {
                    return;
                }
                log::warn!("http: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.try_acquire_static_permit(1) else {
            glommio::spawn_local(busy(stream)).detach();
            continue;
        };
        let (shard, ops) = (shard.clone(), ops.clone());
        glommio::spawn_local(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let (shard, ops) = (shard.clone(), ops.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(routes::handle(&shard, &ops, req).await)
                }
            });
            // One request per connection: an idle keep-alive connection
            // would hold one of the max_connections slots.
            let conn = http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(64 << 10)
                .serve_connection(io::HyperIo(stream), svc);
            match glommio::timer::timeout(CONN_LIFETIME, async { Ok(conn.await) }).await {
                Ok(Err(e)) => log::debug!("http: connection ended: {e}"),
                Err(_) => log::debug!("http: connection closed after {CONN_LIFETIME:?}"),
                Ok(Ok(())) => {}
            }
        })
        .detach();
    }
}

/// Every slot is taken: answer at once and close, rather than leave the
/// client (a health probe) waiting in the backlog — `GET /health/live`
/// with 200 (the broker is alive), anything else with 503.
async fn busy(mut stream: glommio::net::TcpStream) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let answer = async {
        let mut head = [0u8; 512];
        let n = stream.read(&mut head).await.unwrap_or(0);
        let live = head[..n].starts_with(b"GET /health/live ");
        let (status, body) = if live {
            ("200 OK", r#"{"status":"live"}"#)
        } else {
            (
                "503 Service Unavailable",
                r#"{"error":"unavailable","message":"too many management connections"}"#,
            )
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        // Close the sending side and read what is left, so the answer is
        // not lost to a reset for unread bytes.
        let _ = stream.shutdown(std::net::Shutdown::Write).await;
        let mut rest = [0u8; 512];
        while stream.read(&mut rest).await.is_ok_and(|n| n > 0) {}
        Ok(())
    };
    let _ = glommio::timer::timeout(Duration::from_secs(1), answer).await;
    log::debug!("http: every max_connections slot is taken: answered at once");
}
