//! The library's error type. Each variant says what failed and on what (which address,
//! which path, which object), so that a message alone tells the operator what to change.

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::manifests::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(
        "cannot listen on {addr}: {source} (is another server using it? pick another --listen)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot serve HTTP on {addr}: {source} (is another server using it? pick another --http, or --http off)"
    )]
    HttpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    #[error("{kind} {name}: {reason}")]
    InvalidObject {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("Kubernetes: {0}")]
    Kubernetes(String),
    #[error("the server has stopped; nothing more can be fed to it")]
    Stopped,
}
