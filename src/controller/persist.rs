//! The controller's side of `--snapshot`: the objects it holds, handed to the writer at most
//! once per interval after they change (and once more when the server stops), and a saved
//! state taken back at start.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::controller::Controller;
use crate::model::persist::Snapshot;
use crate::model::{Change, Object};
use crate::store::journal::serial_after;

/// Where snapshots go and when.
#[derive(Debug)]
pub struct SnapshotSink {
    /// The writer's queue (one slot: a snapshot taken while it writes waits its turn, a
    /// newer one replaces it next time).
    writer: SyncSender<Snapshot>,
    interval: Duration,
    /// When the last snapshot was handed over.
    last: Option<Instant>,
    /// The state changed since then.
    dirty: bool,
}

impl SnapshotSink {
    pub fn new(writer: SyncSender<Snapshot>, interval: Duration) -> Self {
        Self {
            writer,
            interval,
            last: None,
            dirty: false,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Controller {
    /// Writes snapshots through `sink` from now on.
    pub fn write_snapshots(&mut self, sink: SnapshotSink) {
        self.snapshots = Some(sink);
    }

    /// Every object the controller holds, in a fixed order.
    pub fn objects(&self) -> Vec<Object> {
        let mut out: Vec<Object> = Vec::new();
        out.extend(self.services.iter().map(|s| Object::Service(s.clone())));
        out.extend(self.slices.iter().map(|s| Object::EndpointSlice(s.clone())));
        out.extend(
            self.legacy_endpoints
                .iter()
                .map(|(service, subsets)| Object::Endpoints {
                    service: service.clone(),
                    subsets: subsets.clone(),
                }),
        );
        out.extend(
            self.stateful_sets
                .iter()
                .map(|s| Object::StatefulSet(s.clone())),
        );
        out.extend(
            self.imports
                .iter()
                .map(|i| Object::ServiceImport(i.clone())),
        );
        out.extend(
            self.cluster_property
                .iter()
                .map(|p| Object::ClusterProperty(p.clone())),
        );
        out.sort_by(|a, b| (a.kind(), a.key()).cmp(&(b.kind(), b.key())));
        out
    }

    /// Serves `snapshot` (a saved state) until the source lists: its objects as a
    /// replacement of everything, ready at once, the serial continuing above the saved one.
    pub fn load_snapshot(&mut self, snapshot: Snapshot) {
        self.raise_serial(snapshot.serial);
        self.apply([Change::ReplaceAll(snapshot.objects)]);
        self.metrics.serving_snapshot(Some(snapshot.written_at));
    }

    /// Moves the serial up to `floor` when it is below (RFC 1982): what a restarted server
    /// or a new transfer primary announces never goes back.
    pub fn raise_serial(&mut self, floor: u32) {
        // One change for transfers: the apexes and the serial move together.
        let store = self.store.clone();
        let _change = store.change();
        let serial = self.store.serial();
        if serial_after(floor, serial) {
            self.publish_apexes(floor);
            self.store.set_serial(floor);
            self.metrics.serial.set(i64::from(floor));
        }
    }

    /// Notes a change of state for the next snapshot.
    pub(super) fn snapshot_dirty(&mut self) {
        if let Some(sink) = &mut self.snapshots {
            sink.dirty = true;
        }
    }

    /// When the next snapshot is due, if one is.
    pub(super) fn snapshot_due(&self) -> Option<Instant> {
        let sink = self.snapshots.as_ref()?;
        sink.dirty.then(|| {
            sink.last
                .map_or_else(Instant::now, |last| last + sink.interval)
        })
    }

    /// Hands the current state to the writer when one is due (`force`: whenever the state
    /// changed, as at shutdown).
    pub(super) fn snapshot_if_due(&mut self, force: bool) {
        let Some(due) = self.snapshot_due() else {
            return;
        };
        if !force && Instant::now() < due {
            return;
        }
        let snapshot = Snapshot {
            serial: self.store.serial(),
            written_at: unix_now(),
            objects: self.objects(),
        };
        let Some(sink) = &mut self.snapshots else {
            return;
        };
        let sent = if force {
            sink.writer.send(snapshot).is_ok()
        } else {
            match sink.writer.try_send(snapshot) {
                Ok(()) => true,
                // The writer is on the previous one: try again next interval.
                Err(TrySendError::Full(_)) => false,
                Err(TrySendError::Disconnected(_)) => false,
            }
        };
        sink.last = Some(Instant::now());
        if sent {
            sink.dirty = false;
        }
    }
}
