//! The HTTP side: `/healthz` (the process serves), `/readyz` (records are complete and the
//! server is not draining), `/metrics` (Prometheus). Plain HTTP/1.1 through hyper, one task
//! per connection; nothing here touches the DNS path.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::serve::tcp::accept_next;
use crate::store::Store;

/// A client that sends no complete request in this long is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; a probe or a scrape needs one.
const MAX_CONNECTIONS: usize = 64;

/// What the endpoints report on.
#[derive(Clone)]
pub struct HttpState {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// Set on shutdown with a grace period: `/readyz` fails so no new traffic is routed
    /// while the server still answers (lameduck).
    pub draining: Arc<AtomicBool>,
}

/// Serves until shutdown.
pub async fn serve(listener: TcpListener, state: HttpState, mut shutdown: watch::Receiver<bool>) {
    let mut open = JoinSet::new();
    while let Some((stream, _)) = accept_next(&listener, &mut shutdown, &mut open, "HTTP").await {
        if open.len() >= MAX_CONNECTIONS {
            continue; // dropped: closes the connection
        }
        let state = state.clone();
        open.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&request, &state)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    open.abort_all();
}

fn route(request: &Request<Incoming>, state: &HttpState) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.draining.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else if !state.store.is_ready() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "waiting for the first complete set of records\n",
                )
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            if let Ok(value) = "application/openmetrics-text; version=1.0.0; charset=utf-8".parse()
            {
                response
                    .headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, value);
            }
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /healthz, /readyz, /metrics\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
