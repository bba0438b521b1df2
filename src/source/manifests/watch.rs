//! Keeps the manifests source current: reloads on file events (inotify, through `notify`)
//! and on a periodic check, the fallback for file systems that send no events (network
//! mounts, some ConfigMap volume updates).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::model::{Change, Timed};
use crate::source::manifests::ManifestSet;

/// Events arriving this close together are one reload: an editor's save is several events.
const SETTLE: Duration = Duration::from_millis(50);

/// File events under a manifests path, from the moment this is made: made before the
/// folder's first load, so that an edit during the load is not missed until the periodic
/// check.
pub struct FileEvents {
    /// Dropping it stops the events; `None` when the file system gives none.
    _watcher: Option<notify::RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<()>,
}

impl FileEvents {
    /// Starts watching `root` (a folder, or a file's folder).
    pub fn watch(root: &Path) -> Self {
        let (event_tx, events) = mpsc::unbounded_channel::<()>();
        Self {
            _watcher: start_watcher(root, event_tx),
            events,
        }
    }
}

/// Runs until shutdown, sending the controller what changed in the files whenever they do.
/// The caller runs it in a span that names the folder (`embed`).
pub async fn run(
    mut manifests: ManifestSet,
    files: FileEvents,
    changes: mpsc::UnboundedSender<Timed>,
    interval: Duration,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let FileEvents {
        _watcher,
        mut events,
    } = files;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; the initial load is done already
    loop {
        let received = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            Some(()) = events.recv() => {
                let received = Instant::now();
                tokio::time::sleep(SETTLE).await;
                while events.try_recv().is_ok() {}
                received
            }
            _ = ticker.tick() => Instant::now(),
        };
        // Parsing a large folder is blocking work: keep it off the query workers.
        let reloaded = tokio::task::spawn_blocking(move || {
            let result = manifests.reload();
            (manifests, result)
        })
        .await;
        let Ok((returned, result)) = reloaded else {
            tracing::error!("manifest reload panicked; the watch stops, records stay as they are");
            return;
        };
        manifests = returned;
        match result {
            Ok(changed) if changed.is_empty() => metrics.synced("manifests"),
            Ok(changed) => {
                metrics.synced("manifests");
                tracing::info!(changes = changed.len(), "manifests changed; publishing");
                // One batch: an object moving between files is never missing in between.
                let change = Timed {
                    change: Change::Batch(changed),
                    received,
                };
                if changes.send(change).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "manifests unreadable; serving the last good records"
                );
            }
        }
    }
}

fn start_watcher(
    root: &Path,
    events: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    // Watch the folder (or the file's folder): editors and ConfigMap volumes replace files
    // by renaming, which a watch on the file itself would lose.
    let folder = if root.is_file() {
        root.parent()
    } else {
        Some(root)
    };
    let target = folder
        .filter(|f| !f.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_owned();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Only changes: reading the files (which a reload does) raises access events,
            // and reloading on those would loop.
            let is_change = event.is_ok_and(|e| {
                matches!(
                    e.kind,
                    EventKind::Create(_)
                        | EventKind::Modify(_)
                        | EventKind::Remove(_)
                        | EventKind::Any
                )
            });
            if is_change {
                let _ = events.send(());
            }
        }) {
            Ok(w) => w,
            Err(error) => {
                tracing::warn!(%error, "file events unavailable; relying on the periodic check");
                return None;
            }
        };
    if let Err(error) = watcher.watch(&target, RecursiveMode::Recursive) {
        tracing::warn!(path = %target.display(), %error, "cannot watch; relying on the periodic check");
        return None;
    }
    Some(watcher)
}
