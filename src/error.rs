//! The error [`crate::start`] returns. Each variant says what failed and on what (which
//! address, which flag, which path) and keeps the error that caused it as its source, so
//! that the message and its chain tell the operator what to change. The message never
//! repeats its source: print the chain (`{:#}` with anyhow, or walk `source()`).

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::serve::certs::CertificateError;
use crate::source::kubernetes::KubernetesError;
use crate::source::manifests::ManifestError;
use crate::source::selector::SelectorError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    #[error("--label-selector")]
    LabelSelector(#[source] SelectorError),
    #[error("cannot listen on {addr} (is another server using it? pick another {flag})")]
    Bind {
        addr: SocketAddr,
        /// The flag that gave the address.
        flag: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
    #[error(
        "cannot serve HTTP on {addr} (is another server using it? pick another --http, or --http off)"
    )]
    HttpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    #[error("cannot start a thread")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Kubernetes(#[from] KubernetesError),
}
