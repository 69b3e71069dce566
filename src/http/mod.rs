//! The management HTTP listener: metrics, health, the JSON API, the dashboard.
//!
//! One listener on `[http] bind`, served by shard 0's executor with hyper's
//! HTTP/1.1 server over glommio sockets (`io.rs`). Each request is checked
//! for credentials (`auth.rs`), routed (`routes.rs`) and answered by asking
//! the shards over the mesh (`crate::control`); nothing here touches another
//! shard's state. A request body is read up to `max_body_bytes` (413 past
//! it); a connection lives at most [`CONN_LIFETIME`] and at most
//! `max_connections` are served at once, so a slow or hostile HTTP client
//! costs a bounded share of shard 0 and never reaches MQTT traffic.
//! Started by `crate::broker` (`shard_main` of shard 0).

mod api;
mod auth;
mod io;
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
pub const CONN_LIFETIME: Duration = Duration::from_secs(30);

/// The dashboard page, inside the binary.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// Accept management connections until the broker stops.
pub async fn serve(shard: ShardRef, ops: OpsRef, listener: TcpListener) {
    let max = shard.borrow().cfg.http.max_connections;
    let slots = Rc::new(glommio::sync::Semaphore::new(max as u64));
    loop {
        let Ok(permit) = slots.acquire_static_permit(1).await else {
            return;
        };
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
        let (shard, ops) = (shard.clone(), ops.clone());
        glommio::spawn_local(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let (shard, ops) = (shard.clone(), ops.clone());
                async move { Ok::<_, std::convert::Infallible>(routes::handle(&shard, &ops, req).await) }
            });
            let conn = http1::Builder::new()
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
