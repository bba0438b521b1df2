//! `--transfer-lease NAMESPACE/NAME`: the replicas elect one zone-transfer primary through a
//! coordination.k8s.io/v1 Lease, as kube-controller-manager elects its leader (client-go's
//! `leaderelection`, written here against the Lease API directly: kube has no election of
//! its own, and the crates that add one bring a second backoff policy and their own idea of
//! the identity for a hundred lines of logic).
//!
//! Every `retry` (a fifth of the lease's duration) each replica reads the Lease. The holder
//! renews it (`renewTime`, by an optimistic-concurrency replace, so two writers cannot both
//! win); another replica takes it over when it is empty, or when its record has not changed
//! for a whole lease duration by the local clock (client-go's rule: renewal times of
//! another machine's clock are never compared with ours). A holder that cannot renew for a
//! lease duration steps down on its own, before anyone may take over. On SIGTERM the
//! holder empties the Lease, so the next replica takes it at its next try.
//!
//! The serial never goes back across holders: the holder writes the last serial it served
//! into the Lease's annotation [`SERIAL_ANNOTATION`] as it renews, and a new holder raises
//! its own serial above that before it serves a transfer (`Change::RaiseSerial`).
//!
//! With the pod's name and namespace (`POD_NAME`, `POD_NAMESPACE`, from the downward API),
//! the holder labels its own pod [`PRIMARY_LABEL`]`=true` and a non-holder removes the
//! label, so a Service selecting that label reaches the holder alone (RBAC: `patch` on
//! `pods` in its namespace).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::sync::{mpsc, watch};

use crate::dns::wire::serial_after;
use crate::model::{Change, Timed};

/// The Lease annotation that carries the last serial a holder served.
pub const SERIAL_ANNOTATION: &str = "headless-dns.io/serial";
/// The label the holder puts on its own pod.
pub const PRIMARY_LABEL: &str = "headless-dns.io/transfer-primary";

/// Which Lease, who this replica is, and the timing.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's `holderIdentity` (its pod's name).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a holder that stopped renewing keeps the role.
    pub duration: Duration,
    /// This replica's pod (namespace, name), to label; `None` labels nothing.
    pub pod: Option<(String, String)>,
}

impl LeaseSettings {
    /// How often the Lease is read and renewed.
    fn retry(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(100))
    }
}

/// What the election needs of the rest of the server.
pub struct Election {
    pub client: kube::Client,
    pub settings: LeaseSettings,
    /// Set while this replica is the transfer primary.
    pub role: watch::Sender<bool>,
    /// The serial served now.
    pub serial: Box<dyn Fn() -> u32 + Send + Sync>,
    /// The controller's input: a new holder raises the serial through it.
    pub changes: mpsc::UnboundedSender<Timed>,
}

/// What the election last saw of the Lease, by the local clock.
struct Observed {
    /// The record: holder and renew time (as the holder wrote it) and resourceVersion.
    record: (Option<String>, Option<Timestamp>, Option<String>),
    /// When it last changed here.
    at: Instant,
}

impl Election {
    /// Runs until shutdown, then releases the Lease if it holds it.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let mut observed: Option<Observed> = None;
        // When this replica last renewed (or took) the Lease.
        let mut renewed: Option<Instant> = None;
        let mut labelled = None;
        tracing::info!(
            lease = %format!("{}/{}", self.settings.namespace, self.settings.name),
            identity = %self.settings.identity,
            duration_s = self.settings.duration.as_secs_f64(),
            "electing the zone-transfer primary"
        );
        loop {
            match self.try_once(&api, &mut observed).await {
                Ok(true) => renewed = Some(Instant::now()),
                Ok(false) => renewed = None,
                Err(error) => tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "cannot read or renew the transfer lease"
                ),
            }
            // A holder that could not renew for a whole duration steps down before another
            // replica may take over.
            let holding = renewed.is_some_and(|at| at.elapsed() < self.settings.duration);
            if holding != *self.role.borrow() {
                tracing::info!(primary = holding, "zone-transfer role changed");
                self.role.send_replace(holding);
            }
            if labelled != Some(holding) && self.label(holding).await {
                labelled = Some(holding);
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(self.settings.retry()) => {}
            }
        }
        if *self.role.borrow() {
            self.role.send_replace(false);
            self.release(&api).await;
            self.label(false).await;
        }
    }

    /// One read of the Lease, then a renewal or a takeover when due. Whether this replica
    /// holds it now.
    async fn try_once(
        &self,
        api: &Api<Lease>,
        observed: &mut Option<Observed>,
    ) -> Result<bool, kube::Error> {
        let me = &self.settings.identity;
        let Some(lease) = api.get_opt(&self.settings.name).await? else {
            let created = api
                .create(&PostParams::default(), &self.lease(None, 0))
                .await;
            return match created {
                Ok(_) => {
                    tracing::info!("transfer lease created: this replica is the primary");
                    Ok(true)
                }
                // Another replica created it first.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = (
            spec.holder_identity.clone().filter(|h| !h.is_empty()),
            spec.renew_time.as_ref().map(|t| t.0),
            lease.metadata.resource_version.clone(),
        );
        let now = Instant::now();
        let changed = observed.as_ref().is_none_or(|o| o.record != record);
        if changed {
            *observed = Some(Observed {
                record: record.clone(),
                at: now,
            });
        }
        let duration = spec
            .lease_duration_seconds
            .map_or(self.settings.duration, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            });
        let since = observed.as_ref().map_or(now, |o| o.at);
        let expired = now.duration_since(since) >= duration;
        let floor = serial_of(&lease);
        let transitions = spec.lease_transitions.unwrap_or(0);
        match &record.0 {
            Some(holder) if holder == me => {
                let renewed = self.lease(Some(&lease), transitions);
                api.replace(&self.settings.name, &PostParams::default(), &renewed)
                    .await?;
                Ok(true)
            }
            Some(_) if !expired => Ok(false),
            _ => {
                // Empty, or its holder stopped renewing: take it. The serial first moves
                // above what the last holder served, then the Lease says who holds it.
                if let Some(floor) = floor {
                    self.raise_serial_above(floor).await;
                }
                let taken = self.lease(Some(&lease), transitions + 1);
                match api
                    .replace(&self.settings.name, &PostParams::default(), &taken)
                    .await
                {
                    Ok(_) => {
                        tracing::info!(
                            previous = record.0.as_deref().unwrap_or(""),
                            serial_floor = floor,
                            "transfer lease taken: this replica is the primary"
                        );
                        Ok(true)
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(error) => Err(error),
                }
            }
        }
    }

    /// The Lease as this replica holds it now: holder, times, the serial it serves.
    fn lease(&self, current: Option<&Lease>, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        let mut metadata = current
            .map(|l| l.metadata.clone())
            .unwrap_or_else(|| ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            });
        let served = (self.serial)();
        // Never below what the Lease says already.
        let serial = current
            .and_then(serial_of)
            .filter(|&recorded| serial_after(recorded, served))
            .unwrap_or(served);
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SERIAL_ANNOTATION.into(), serial.to_string());
        let held = current
            .and_then(|l| l.spec.as_ref())
            .is_some_and(|s| s.holder_identity.as_deref() == Some(&self.settings.identity));
        let acquire = if held {
            current
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.acquire_time.clone())
        } else {
            None
        };
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.settings.duration.as_secs().max(1)).unwrap_or(i32::MAX),
                ),
                acquire_time: Some(acquire.unwrap_or_else(|| now.clone())),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Moves the controller's serial above `floor` and waits (a second at most) until it
    /// serves it.
    async fn raise_serial_above(&self, floor: u32) {
        let target = floor.wrapping_add(1);
        if !serial_after(target, (self.serial)()) {
            return;
        }
        let _ = self.changes.send(Change::RaiseSerial(target).into());
        let deadline = Instant::now() + Duration::from_secs(1);
        while serial_after(target, (self.serial)()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Empties the Lease on the way out (client-go's ReleaseOnCancel): the next replica
    /// takes it at its next try instead of after a lease duration.
    async fn release(&self, api: &Api<Lease>) {
        let release = async {
            let lease = api.get(&self.settings.name).await?;
            let mine = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(&self.settings.identity);
            if !mine {
                return Ok::<_, kube::Error>(());
            }
            let mut released = self.lease(
                Some(&lease),
                lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0),
            );
            if let Some(spec) = &mut released.spec {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            api.replace(&self.settings.name, &PostParams::default(), &released)
                .await?;
            Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(2), release).await {
            Ok(Ok(())) => tracing::info!("transfer lease released"),
            Ok(Err(error)) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot release the transfer lease; it expires on its own"
            ),
            Err(_) => {
                tracing::warn!("releasing the transfer lease timed out; it expires on its own")
            }
        }
    }

    /// Sets (or removes) the primary label on this replica's pod; whether it is done.
    async fn label(&self, primary: bool) -> bool {
        let Some((namespace, name)) = &self.settings.pod else {
            return true;
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let value = if primary {
            serde_json::Value::from("true")
        } else {
            serde_json::Value::Null
        };
        let patch = serde_json::json!({"metadata": {"labels": {PRIMARY_LABEL: value}}});
        match pods
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    pod = %name,
                    "cannot label this pod as the transfer primary (RBAC: patch pods)"
                );
                false
            }
        }
    }
}

/// The serial a Lease records, when it does.
fn serial_of(lease: &Lease) -> Option<u32> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(SERIAL_ANNOTATION)?
        .parse()
        .ok()
}
