//! The listener: accepts client connections (plain or TLS) and serves each with hyper, bounded
//! in number and in time.
//!
//! * At most `max_connections` connections are open at once (TLS handshakes included). Over the
//!   cap a new plain connection gets a minimal Hub-shaped `503` with `Retry-After` and is closed
//!   (a TLS one is closed), so the accept loop never holds more sockets than the cap allows.
//! * A client has `header_timeout` to complete the TLS handshake and to send its first request,
//!   and (HTTP/1.1) to send each request's headers: slowloris sockets are closed.
//! * A connection with no request in progress (response bodies included) for `idle_timeout` is
//!   closed, whatever the protocol.
//!
//! * Each request carries the connection's peer address as a [`PeerAddr`] extension (the admin
//!   routes answer loopback peers; behind a reverse proxy on the same host every peer is
//!   loopback).
//!
//! On shutdown the listener stops accepting, asks every connection to finish its requests and
//! close, and waits for them (bounded).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{HeaderValue, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use olah_service::{ErrorKind, HubCode, Origin, ServiceError};

use crate::error::HttpError;

/// The address of the client at the other end of a request's connection, as the listener saw
/// it (a request extension). In-process requests (tests) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl PeerAddr {
    /// Whether the peer is on this host's loopback (127.0.0.0/8, `::1`, or an IPv4-mapped
    /// loopback address).
    pub fn is_loopback(&self) -> bool {
        match self.0.ip() {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }
}

/// Limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time to complete the TLS handshake, to send the first request, and (HTTP/1.1) to send
    /// each request's headers.
    pub header_timeout: Duration,
    /// Time a connection may stay open with no request in progress.
    pub idle_timeout: Duration,
}

/// Most refusals (over the cap) being written at once; beyond, sockets are simply closed.
const MAX_REFUSALS: usize = 64;
/// How long a refusal may take to be written and its request drained.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` on `tcp` (through `tls` when given) until `shutdown` resolves.
pub async fn serve(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max = opts.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let refusal = refusal_bytes().await;
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            r = tcp.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%addr, max, "connection refused: too many open connections");
            if tls.is_none()
                && let Ok(permit) = refusals.clone().try_acquire_owned()
            {
                let refusal = refusal.clone();
                tokio::spawn(async move {
                    refuse(stream, &refusal).await;
                    drop(permit);
                });
            }
            continue;
        };
        let (tls, app, closing) = (tls.clone(), app.clone(), closing_rx.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => connection(stream, addr, app, opts, closing).await,
                Some(acceptor) => {
                    match tokio::time::timeout(opts.header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection(s, addr, app, opts, closing).await,
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
    drop(tcp);
    let _ = closing_tx.send(true);
    // Every slot back = every connection closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// The answer over the cap, as raw HTTP/1.1: the Hub-shaped error of `error.rs`, plus
/// `Retry-After` and `Connection: close`.
async fn refusal_bytes() -> Bytes {
    let error = HttpError(ServiceError::new(
        ErrorKind::Busy,
        Origin::Internal,
        HubCode::TooManyConnections,
        "the mirror has too many open connections; retry shortly",
    ));
    // Rendered once at start-up: not a failed request, so not logged as one.
    let none = tracing::Dispatch::none();
    let mut r = tracing::dispatcher::with_default(&none, || error.into_response());
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let (parts, body) = r.into_parts();
    let body = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (k, v) in &parts.headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// Writes the refusal, then reads (and drops) what the client sent until it closes, so that
/// closing does not reset the connection before the client read the answer; bounded in time.
async fn refuse(mut stream: TcpStream, refusal: &[u8]) {
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(refusal).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Requests in progress on one connection and when the last one ended.
struct Activity {
    start: Instant,
    in_progress: AtomicUsize,
    started: AtomicU64,
    /// Milliseconds after `start` when the last request (and its response body) ended.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        RequestGuard(self.clone())
    }

    /// When the connection becomes idle enough to close, if nothing happens until then; `None`
    /// while a request is in progress.
    fn deadline(&self, opts: &ServeOptions) -> Option<Instant> {
        if self.in_progress.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if self.started.load(Ordering::SeqCst) == 0 {
            return Some(self.start + opts.header_timeout);
        }
        let end = Duration::from_millis(self.last_end_ms.load(Ordering::SeqCst));
        Some(self.start + end + opts.idle_timeout)
    }
}

/// Held by a request until its response body is finished or dropped.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = u64::try_from(a.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.last_end_ms.store(ms, Ordering::SeqCst);
        a.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in progress until it ends.
struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one connection until the client closes it, it stays idle too long, or shutdown.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    opts: ServeOptions,
    mut closing: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        start: Instant::now(),
        in_progress: AtomicUsize::new(0),
        started: AtomicU64::new(0),
        last_end_ms: AtomicU64::new(0),
    });
    let a = activity.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let guard = a.begin();
        let app = app.clone();
        async move {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(PeerAddr(peer));
            let resp = app.oneshot(req).await?;
            Ok::<_, std::convert::Infallible>(resp.map(|inner| {
                Body::new(GuardedBody {
                    inner,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let mut draining = *closing.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        // While a request is in progress, look again after a full idle period.
        let wake = activity
            .deadline(&opts)
            .unwrap_or_else(|| Instant::now() + opts.idle_timeout);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if activity.deadline(&opts).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// The file-descriptor budget: connections are capped at about half the open-file limit (each
/// may need an upstream connection and a cache file too), between 32 and 65,536.
pub fn default_max_connections(nofile_limit: u64) -> usize {
    let half = nofile_limit.saturating_sub(128) / 2;
    usize::try_from(half.clamp(32, 65_536)).unwrap_or(65_536)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request served by the listener carries its connection's peer address.
    #[tokio::test]
    async fn requests_carry_the_peer_address() {
        let app = Router::new().fallback(|req: axum::extract::Request| async move {
            match req.extensions().get::<PeerAddr>() {
                Some(p) => format!("peer={} loopback={}", p.0.ip(), p.is_loopback()),
                None => "no peer".to_string(),
            }
        });
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let opts = ServeOptions {
            max_connections: 4,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(tcp, None, app, opts, async {
            let _ = stopped.await;
        }));
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        let text = String::from_utf8_lossy(&out);
        assert!(text.ends_with("peer=127.0.0.1 loopback=true"), "{text}");
        let _ = stop.send(());
        server.await.expect("join").expect("serve");
    }
}
