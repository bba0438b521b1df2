//! `--snapshot PATH`: the file the served state is saved to, and that a restarted server
//! serves at once, before its source has listed anything (a warm start: kubeadm#2152).
//!
//! Written by a thread of its own, from the states the controller hands over at most once
//! per `--snapshot-interval` and when it stops (`controller::persist`), atomically: the
//! bytes go to a temporary file in the same folder, are synced to disk, and the file is
//! renamed over the old one (then the folder is synced), so a crash at any point leaves
//! the old snapshot or the new one, never half of one. Read once at start: a missing file
//! means a cold start; one that does not read (truncated, corrupt, another version) is
//! logged and ignored, and the server starts cold.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::metrics::Metrics;
use crate::model::persist::Snapshot;

/// Reads the snapshot at `path`; `None` (logged) when there is none that reads.
pub fn load(path: &Path) -> Option<Snapshot> {
    let started = std::time::Instant::now();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "no snapshot yet; starting cold");
            return None;
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), error = &error as &dyn std::error::Error,
                "snapshot unreadable; starting cold");
            return None;
        }
    };
    match Snapshot::decode(&bytes) {
        Ok(snapshot) => {
            tracing::info!(
                path = %path.display(),
                objects = snapshot.objects.len(),
                serial = snapshot.serial,
                written_at = snapshot.written_at,
                bytes = bytes.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "serving the snapshot until the source has listed"
            );
            Some(snapshot)
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), error = &error as &dyn std::error::Error,
                "snapshot ignored; starting cold");
            None
        }
    }
}

/// Starts the writer thread for `path`: the controller's end of its queue, and the thread,
/// which ends once that end is dropped and the last state is written.
pub fn spawn_writer(
    path: PathBuf,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SyncSender<Snapshot>, std::thread::JoinHandle<()>)> {
    let (sender, states) = sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || write_each(&path, states, &metrics))?;
    Ok((sender, thread))
}

fn write_each(path: &Path, states: Receiver<Snapshot>, metrics: &Metrics) {
    let _span = tracing::info_span!("snapshot", path = %path.display()).entered();
    for snapshot in states {
        let started = std::time::Instant::now();
        let bytes = snapshot.encode();
        match write_atomically(path, &bytes) {
            Ok(()) => {
                metrics
                    .snapshot_writes
                    .get_or_create(&[("result", "ok")])
                    .inc();
                tracing::debug!(
                    bytes = bytes.len(),
                    objects = snapshot.objects.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
            }
            Err(error) => {
                metrics
                    .snapshot_writes
                    .get_or_create(&[("result", "error")])
                    .inc();
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "cannot write the snapshot; the previous one stays"
                );
            }
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    let temporary = folder.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename itself is durable once the folder is synced.
    std::fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let snapshot = |serial| Snapshot {
            serial,
            written_at: 1,
            objects: Vec::new(),
        };
        write_atomically(&path, &snapshot(7).encode()).unwrap();
        assert_eq!(load(&path).map(|s| s.serial), Some(7));
        write_atomically(&path, &snapshot(8).encode()).unwrap();
        assert_eq!(load(&path).map(|s| s.serial), Some(8));
        // Nothing left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert!(load(&dir.path().join("missing")).is_none());
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load(&path).is_none());
    }
}
