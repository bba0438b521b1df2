//! The certificate of the encrypted transports, and its rotation.
//!
//! cert-manager and a Kubernetes Secret volume replace the files in place (a symlink swap
//! of the folder's `..data`): new handshakes must use the new certificate without a
//! restart, and a file caught half-written, or replaced with something that is not a
//! certificate and its key, must not take the server down. So the certificate is held
//! behind an `ArcSwap` that rustls asks on every handshake ([`Certificate`]), and a task
//! re-reads the files on file events and on a periodic check ([`follow`]), swapping in
//! only a chain and key that parse and match.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::{mpsc, watch};

/// Where the certificate comes from: a PEM chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate could not be used: the flag, the file, and the parser's error.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("--tls-cert {}: cannot read a PEM certificate chain", .path.display())]
    Chain {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("--tls-cert {}: the file holds no certificate", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("--tls-key {}: cannot read a PEM private key", .path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("--tls-cert {} and --tls-key {}: the key does not fit the certificate", .chain.display(), .key.display())]
    Mismatch {
        chain: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider of every TLS connection: ring, the one the Kubernetes client uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the chain and key of `files`.
pub fn load(
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let chain = CertificateDer::pem_file_iter(&files.chain)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| CertificateError::Chain {
            path: files.chain.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate {
            path: files.chain.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| CertificateError::Key {
        path: files.key.clone(),
        source,
    })?;
    // Checks that the key is the leaf's.
    CertifiedKey::from_der(chain, key, provider).map_err(|source| CertificateError::Mismatch {
        chain: files.chain.clone(),
        key: files.key.clone(),
        source,
    })
}

/// The certificate every handshake gets, whatever name the client asks for: clients of a
/// DNS server often send none (dnsperf, kdig to an address).
#[derive(Debug)]
pub struct Certificate(ArcSwap<CertifiedKey>);

impl Certificate {
    pub fn new(key: CertifiedKey) -> Self {
        Self(ArcSwap::from_pointee(key))
    }

    fn replace(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The bytes last read from the files, to tell a change from a tick.
type Contents = (Vec<u8>, Vec<u8>);

fn read(files: &CertificateFiles) -> Option<Contents> {
    Some((
        std::fs::read(&files.chain).ok()?,
        std::fs::read(&files.key).ok()?,
    ))
}

/// Events arriving this close together are one change: a Secret update is several.
const SETTLE: Duration = Duration::from_millis(50);

/// Keeps `certificate` current until shutdown: re-reads the files on file events and every
/// `interval`, and swaps in what changed when it loads; what does not load is logged and
/// the last good certificate stays.
pub async fn follow(
    files: CertificateFiles,
    certificate: Arc<Certificate>,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (event_tx, mut events) = mpsc::unbounded_channel::<()>();
    // The watchers live as long as this task.
    let _watchers: Vec<_> = folders(&files)
        .into_iter()
        .filter_map(|folder| watch_folder(&folder, event_tx.clone()))
        .collect();
    let mut last = read(&files);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            Some(()) = events.recv() => {
                tokio::time::sleep(SETTLE).await;
                while events.try_recv().is_ok() {}
            }
            _ = ticker.tick() => {}
        }
        let now = read(&files);
        if now.is_none() || now == last {
            if now.is_none() {
                tracing::debug!(
                    "certificate files unreadable right now; keeping the last good one"
                );
            }
            continue;
        }
        match load(&files, &provider) {
            Ok(key) => {
                certificate.replace(key);
                tracing::info!("certificate reloaded: new handshakes use it");
            }
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "certificate files changed but do not load; keeping the last good certificate"
            ),
        }
        last = now;
    }
}

/// The folders holding the files: a Secret volume swaps the folder's `..data` link, which a
/// watch on the file itself would not see.
fn folders(files: &CertificateFiles) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = [&files.chain, &files.key]
        .iter()
        .map(|p| {
            p.parent()
                .filter(|f| !f.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned()
        })
        .collect();
    folders.dedup();
    folders
}

fn watch_folder(
    folder: &Path,
    events: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only changes: reading the files raises access events.
        let is_change = event.is_ok_and(|e| {
            matches!(
                e.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
            )
        });
        if is_change {
            let _ = events.send(());
        }
    })
    .map_err(
        |error| tracing::warn!(%error, "file events unavailable; relying on the periodic check"),
    )
    .ok()?;
    if let Err(error) = watcher.watch(folder, RecursiveMode::NonRecursive) {
        tracing::warn!(folder = %folder.display(), %error, "cannot watch; relying on the periodic check");
        return None;
    }
    Some(watcher)
}
