//! DNS over TLS (RFC 7858): the TCP loop (`tcp::serve_stream`) over a TLS stream, so the
//! answer is the responder's, byte for byte, as over TCP. The handshake must complete
//! within `--tls-handshake-timeout`, and the connection is in the listener's connection
//! table from the moment it is accepted, as a handshake: when the table is full, the
//! connection longest in its handshake is the first closed for a newcomer, so sockets that
//! never send a ClientHello cannot lock clients out (`connections`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::metrics::QueryStats;
use crate::serve::TcpSettings;
use crate::serve::answer::{Responder, Transport};
use crate::serve::certs::Certificate;
use crate::serve::connections::{Connection, Phase};
use crate::serve::tcp::{serve_connections, serve_stream};

/// The TLS settings of one transport: the certificate resolver, ring, TLS 1.2 and 1.3, no
/// client certificates, and `alpn` (`dot` for DNS over TLS, `h2` for DNS over HTTPS). A
/// client that offers no ALPN (dnsperf, unbound) is served all the same.
pub fn acceptor(
    certificate: Arc<Certificate>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    alpn: &[u8],
) -> Result<TlsAcceptor, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS handshake of an accepted connection, within `limit`; `None` (logged at debug)
/// when it fails or stalls: a port scanner or a client speaking plain DNS.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// DNS over TLS on `listener` until shutdown.
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
        "tls",
        move |tls, peer, shutdown, connection| {
            serve_stream(
                tls,
                Transport::Tls,
                peer,
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

/// Accepts connections on `listener` until shutdown (the connection table as over TCP),
/// completes each one's handshake within the handshake timeout, then hands the TLS stream
/// to `serve`. `transport` names the server in logs.
pub(super) async fn serve_tls<F, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    settings: TcpSettings,
    shutdown: watch::Receiver<bool>,
    transport: &'static str,
    serve: F,
) where
    F: Fn(TlsStream<TcpStream>, IpAddr, watch::Receiver<bool>, Arc<Connection>) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    serve_connections(
        listener,
        settings,
        Phase::Handshake,
        shutdown,
        transport,
        move |stream, peer, shutdown, connection| {
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            async move {
                if let Some(tls) = handshake(&acceptor, stream, settings.handshake_timeout).await {
                    connection.handshake_done();
                    serve(tls, peer, shutdown, connection).await;
                }
            }
        },
    )
    .await;
}
