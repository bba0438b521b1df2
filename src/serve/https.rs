//! DNS over HTTPS (RFC 8484): HTTP/2 over TLS, `/dns-query` by GET with `?dns=` (base64url)
//! or by POST of an `application/dns-message` body. The message goes to the responder as
//! over TCP (no size limit but the message's own) and its response is the body, byte for
//! byte. What is not a DNS request gets an HTTP error and the connection stays: 404 for
//! another path, 405 for another method, 400 for a bad `dns` parameter or a message the
//! server does not answer, 413 for a message over 64 KiB, 415 for another content type.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::dns::wire;
use crate::metrics::QueryStats;
use crate::serve::TcpSettings;
use crate::serve::answer::{Responder, Transport};
use crate::serve::connections::Connection;
use crate::serve::response_records::ResponseRecords;
use crate::serve::tls::serve_tls;

/// The one path DNS requests go to (RFC 8484 4.1's example, and every client's default).
pub const PATH: &str = "/dns-query";
/// The media type of a DNS message (RFC 8484 6).
const DNS_MESSAGE: &str = "application/dns-message";
/// Largest DNS message.
const MAX_MESSAGE: usize = 65535;
/// Bytes of a refused body read before its error is sent; past this the stream is reset.
const MAX_DRAIN: usize = 1 << 20;
/// Requests in flight on one connection at most (SETTINGS_MAX_CONCURRENT_STREAMS).
const MAX_STREAMS: u32 = 100;
/// How long a stopping server waits for a connection's requests in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// base64url as RFC 8484 4.1 writes it: without padding; padding tolerated.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// DNS over HTTPS on `listener` until shutdown.
pub(super) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    responder: Responder,
    settings: TcpSettings,
    shutdown: watch::Receiver<bool>,
    stats: Arc<QueryStats>,
) {
    let idle_timeout = settings.idle_timeout;
    serve_tls(
        listener,
        acceptor,
        settings,
        shutdown,
        "https",
        move |tls, _peer, shutdown, connection| {
            // Each response in TLS records of its own, the records of a flush in one system
            // call (see `response_records`).
            let io = TokioIo::new(ResponseRecords::new(tls));
            serve_http2(
                io,
                responder.clone(),
                idle_timeout,
                shutdown,
                stats.clone(),
                connection,
            )
        },
    )
    .await;
}

/// One HTTP/2 connection: its requests, until the client closes it, it has no request for
/// `idle_timeout` (hyper has no idle timeout of its own), or the server stops; either way
/// with a GOAWAY that lets the requests in flight finish.
async fn serve_http2<I>(
    io: I,
    responder: Responder,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<QueryStats>,
    connection: Arc<Connection>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let opened = Instant::now();
    // Milliseconds since `opened` of the last request.
    let last_request = Arc::new(AtomicU64::new(0));
    let service = {
        let last_request = last_request.clone();
        hyper::service::service_fn(move |request| {
            let millis = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            last_request.store(millis, Ordering::Relaxed);
            let (responder, stats) = (responder.clone(), stats.clone());
            // Busy while a request is answered: not closed for a newcomer meanwhile.
            let in_flight = connection.request();
            async move {
                let response = answer(request, &responder, &stats).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .serve_connection(io, service);
    tokio::pin!(connection);
    loop {
        let since_last = Duration::from_millis(last_request.load(Ordering::Relaxed));
        let idle_at = tokio::time::Instant::from_std(opened + since_last + idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP/2 connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep_until(idle_at) => {
                let now = Duration::from_millis(last_request.load(Ordering::Relaxed));
                if now == since_last {
                    break;
                }
            }
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN, connection).await;
}

/// The response to one HTTP request.
async fn answer(
    request: Request<Incoming>,
    responder: &Responder,
    stats: &QueryStats,
) -> Response<Full<Bytes>> {
    if request.uri().path() != PATH {
        return error(
            StatusCode::NOT_FOUND,
            "not found: DNS queries go to /dns-query\n",
        );
    }
    let query = match *request.method() {
        Method::GET => match dns_parameter(request.uri().query()) {
            Ok(query) => query,
            Err(response) => return response,
        },
        Method::POST => match body(request).await {
            Ok(query) => query,
            Err(response) => return response,
        },
        _ => {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            return response;
        }
    };
    dns_response(&query, responder, stats)
}

/// The HTTP response to the DNS message `query`: the responder's answer as the body, with
/// its content type and the answer's TTL as `max-age`; 400 when the message gets no answer
/// (a response, or shorter than a header).
pub fn dns_response(
    query: &[u8],
    responder: &Responder,
    stats: &QueryStats,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(512);
    match responder.respond(query, Transport::Https, &mut out) {
        Some(outcome) => stats.answered(outcome.qtype, outcome.rcode),
        None => {
            stats.dropped();
            return error(StatusCode::BAD_REQUEST, "not a DNS query\n");
        }
    }
    stats.timed(started.elapsed(), 1);
    let max_age = wire::min_ttl(&out);
    let mut response = Response::new(Full::new(Bytes::from(out)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    // RFC 8484 5.1: an HTTP cache keeps the answer no longer than its records' TTL.
    if let Some(age) = max_age
        && let Ok(value) = HeaderValue::from_str(&format!("max-age={age}"))
    {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

/// The message in a GET's `dns` parameter (`query` is the URI's query string).
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub fn dns_parameter(query: Option<&str>) -> Result<Vec<u8>, Response<Full<Bytes>>> {
    let bad = || {
        error(
            StatusCode::BAD_REQUEST,
            "GET needs ?dns= with a base64url DNS message\n",
        )
    };
    let encoded = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("dns="))
        .filter(|value| !value.is_empty())
        .ok_or_else(bad)?;
    if encoded.len() > MAX_MESSAGE.div_ceil(3) * 4 {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a DNS message is at most 65535 octets\n",
        ));
    }
    BASE64URL.decode(encoded).map_err(|_| bad())
}

/// The message a POST carries. A body refused (another content type, over 64 KiB) is
/// still read, up to [`MAX_DRAIN`], before the error is sent: a client still sending when
/// the response comes would see its stream reset instead of the status.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
async fn body(request: Request<Incoming>) -> Result<Vec<u8>, Response<Full<Bytes>>> {
    let content_type = request.headers().get(header::CONTENT_TYPE);
    let acceptable = content_type.and_then(|v| v.to_str().ok()) == Some(DNS_MESSAGE);
    let mut body = request.into_body();
    let mut message = Vec::new();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "the body could not be read\n",
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        read = read.saturating_add(data.len());
        if read > MAX_DRAIN {
            break;
        }
        if acceptable && read <= MAX_MESSAGE {
            message.extend_from_slice(&data);
        }
    }
    if !acceptable {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST a body of type application/dns-message\n",
        ));
    }
    if read > MAX_MESSAGE {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a DNS message is at most 65535 octets\n",
        ));
    }
    Ok(message)
}

fn error(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_parameter_is_base64url_with_or_without_padding() {
        // RFC 8484 4.1.1's example query for www.example.com A.
        let example = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let decoded = dns_parameter(Some(&format!("dns={example}"))).unwrap();
        assert_eq!(&decoded[12..17], b"\x03www\x07");
        // 34 octets: base64url of it ends in padding, which clients should leave out and
        // some send.
        let message = [decoded.as_slice(), &[0]].concat();
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&message);
        assert!(padded.ends_with("=="));
        for form in [padded.as_str(), padded.trim_end_matches('=')] {
            let query = format!("ct=x&dns={form}");
            assert_eq!(dns_parameter(Some(&query)).unwrap(), message, "{form}");
        }
        for bad in [
            None,
            Some(""),
            Some("dns="),
            Some("dns=***"),
            Some("other=AAAA"),
        ] {
            let status = dns_parameter(bad).unwrap_err().status();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let huge = format!("dns={}", "A".repeat(90_000));
        assert_eq!(
            dns_parameter(Some(&huge)).unwrap_err().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
