//! One log line per request, and `OData-Version: 4.0` on every response.
//!
//! A tower layer of its own rather than `axum::middleware::from_fn`, which clones the inner
//! service and boxes a future for every request (about 1,300 instructions of a retrieve,
//! callgrind, BENCHMARKS.md). With the line filtered out (`RUST_LOG=warn`), nothing is copied
//! or formatted for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::response::Response;

/// The layer: wraps each route's service in [`Stamp`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StampLayer;

impl<S> tower_layer::Layer<S> for StampLayer {
    type Service = Stamp<S>;

    fn layer(&self, inner: S) -> Stamp<S> {
        Stamp { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Stamp<S> {
    inner: S,
}

/// What the log line needs of the request, taken before it is handed on.
type Line = (Instant, Method, String);

impl<S> tower_service::Service<Request> for Stamp<S>
where
    S: tower_service::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Stamped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let line = tracing::enabled!(target: "smsctx::http", tracing::Level::INFO).then(|| {
            (
                Instant::now(),
                request.method().clone(),
                request.uri().path().to_string(),
            )
        });
        Stamped {
            inner: self.inner.call(request),
            line,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future; its response gets the header and the line.
    pub struct Stamped<F> {
        #[pin]
        inner: F,
        line: Option<Line>,
    }
}

impl<F, E> Future for Stamped<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        response
            .headers_mut()
            .insert("OData-Version", HeaderValue::from_static("4.0"));
        if let Some((started, method, path)) = this.line.take() {
            tracing::info!(
                target: "smsctx::http",
                %method,
                %path,
                status = response.status().as_u16(),
                duration_us = started.elapsed().as_micros() as u64,
            );
        }
        Poll::Ready(Ok(response))
    }
}
