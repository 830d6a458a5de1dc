//! The accept loop: every connection, plain TCP or TLS, served by hyper-util's HTTP/1.1 +
//! HTTP/2 server with the axum router, under the bounds a slow or abusive client meets.
//!
//! - At most [`ConnectionLimits::max_connections`] connections are open at once; past that the
//!   loop stops accepting (the kernel's backlog holds the next ones) until one closes.
//! - A connection on which bytes have arrived but no request has started within
//!   `header_timeout` is closed (a request head sent a byte at a time; a TLS handshake that
//!   never ends is bounded by the same time).
//! - A connection with no request in flight and nothing arriving for `idle_timeout` is shut
//!   down gracefully (idle keep-alive connections, HTTP/1.1 and HTTP/2).
//! - The body deadline (`body_timeout`) is the edge's: `edge::read_body` answers 408.
//!
//! Each request carries the peer address (`ConnectInfo`, which the SMS webhooks' rate limit
//! reads) and, on the TLS listener, [`crate::tls::ServedOverTls`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// How many connections may be open and how long a connection may stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// From the first byte of a request head (or of a TLS handshake) to the request.
    pub header_timeout: Duration,
    /// From the head to the last byte of the body (the edge's deadline).
    pub body_timeout: Duration,
    /// No request in flight and nothing received: the connection is closed.
    pub idle_timeout: Duration,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 120;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is set) until `shutdown` completes, then
/// lets open connections finish their in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max = limits.max_connections.max(1);
    let open = Arc::new(Semaphore::new(max));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Responses are written whole; Nagle's algorithm would only delay them.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let activity = Arc::new(Activity::new());
            let io = Tracked {
                inner: tcp,
                activity: Arc::clone(&activity),
            };
            match tls {
                None => serve_connection(io, peer, false, router, limits, activity, stopping).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, true, router, limits, activity, stopping)
                                .await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends: having them all back means all ended.
    let _ = open.acquire_many(max as u32).await;
    Ok(())
}

/// Serves one connection's requests, closing it when it breaks the limits or the server stops.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    over_tls: bool,
    router: axum::Router,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let counted = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if over_tls {
            request.extensions_mut().insert(crate::tls::ServedOverTls);
        }
        let in_flight = InFlight::start(Arc::clone(&counted));
        let response = router.clone().call(request);
        async move {
            let response = response.await;
            drop(in_flight);
            response
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    // One timer for the connection's life: a `sleep` inside the `select!` would be registered
    // and cancelled again on every wake-up of the connection, that is several times a request.
    let mut watchdog = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            _ = stopping.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = watchdog.tick() => match activity.verdict(&limits) {
                Verdict::Fine => {}
                Verdict::SlowHead => {
                    tracing::debug!(%peer, "request head not received in time: connection closed");
                    return;
                }
                Verdict::Idle if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                Verdict::Idle => {}
            },
        }
    }
}

const NOTHING_PENDING: u64 = u64::MAX;

/// What a connection has been doing, in milliseconds since it was accepted.
struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection was accepted).
    last_done_ms: AtomicU64,
    /// When bytes arrived while no request was in flight; [`NOTHING_PENDING`] when none did.
    pending_since_ms: AtomicU64,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Fine,
    SlowHead,
    Idle,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            pending_since_ms: AtomicU64::new(NOTHING_PENDING),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn received(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.pending_since_ms.compare_exchange(
                NOTHING_PENDING,
                self.now_ms(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn verdict_at(&self, now_ms: u64, limits: &ConnectionLimits) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::Fine;
        }
        let since = |ms: u64| Duration::from_millis(now_ms.saturating_sub(ms));
        match self.pending_since_ms.load(Ordering::Acquire) {
            NOTHING_PENDING => {
                if since(self.last_done_ms.load(Ordering::Acquire)) >= limits.idle_timeout {
                    Verdict::Idle
                } else {
                    Verdict::Fine
                }
            }
            pending if since(pending) >= limits.header_timeout => Verdict::SlowHead,
            _ => Verdict::Fine,
        }
    }

    fn verdict(&self, limits: &ConnectionLimits) -> Verdict {
        self.verdict_at(self.now_ms(), limits)
    }
}

/// A request in flight on a connection; dropping it (the response is ready, or the request
/// was abandoned) marks the connection active as of now.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity
            .pending_since_ms
            .store(NOTHING_PENDING, Ordering::Release);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .last_done_ms
            .store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting when bytes arrive.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 4,
            header_timeout: Duration::from_millis(100),
            body_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn a_quiet_new_connection_is_idle_only_after_the_idle_timeout() {
        let activity = Activity::new();
        assert_eq!(activity.verdict_at(499, &limits()), Verdict::Fine);
        assert_eq!(activity.verdict_at(500, &limits()), Verdict::Idle);
    }

    #[test]
    fn bytes_without_a_request_are_a_slow_head_after_the_header_timeout() {
        let activity = Activity::new();
        activity.pending_since_ms.store(50, Ordering::Release);
        assert_eq!(activity.verdict_at(149, &limits()), Verdict::Fine);
        assert_eq!(activity.verdict_at(150, &limits()), Verdict::SlowHead);
    }

    #[test]
    fn a_request_in_flight_is_never_timed_out_here_and_resets_the_clock_when_done() {
        let activity = Arc::new(Activity::new());
        activity.pending_since_ms.store(0, Ordering::Release);
        let in_flight = InFlight::start(Arc::clone(&activity));
        assert_eq!(activity.verdict_at(10_000, &limits()), Verdict::Fine);
        drop(in_flight);
        let done = activity.last_done_ms.load(Ordering::Acquire);
        assert_eq!(
            activity.pending_since_ms.load(Ordering::Acquire),
            NOTHING_PENDING
        );
        assert_eq!(activity.verdict_at(done + 499, &limits()), Verdict::Fine);
        assert_eq!(activity.verdict_at(done + 500, &limits()), Verdict::Idle);
    }
}
