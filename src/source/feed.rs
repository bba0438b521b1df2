//! The embedding source: an operator pushes k8s-openapi objects through a [`Feed`] and the
//! server publishes them, as it would a watch's events.

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use crate::model::{Change, Timed};
use crate::source::convert::ConvertOptions;
use crate::source::manifest::{InvalidObject, Manifest};

/// Why a [`Feed`] refused something.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The object does not convert (its kind, name and the field at fault are in it); the
    /// server keeps what it had.
    #[error("object refused")]
    Invalid(#[from] InvalidObject),
    #[error("the server has stopped; nothing more can be fed to it")]
    Stopped,
}

/// The receiving end of a [`Feed`]; hand it to `start` as `Source::Feed`.
pub struct FeedSource {
    pub(crate) changes: mpsc::UnboundedReceiver<Timed>,
    /// The conversion options its feeds use, set once by `start` from the configuration.
    pub(crate) options: Arc<OnceLock<ConvertOptions>>,
}

/// Pushes Kubernetes objects into a running server. Cheap to clone.
///
/// Answers are SERVFAIL until the first [`Feed::replace_all`] or [`Feed::synced`], so that
/// a half-fed server never claims a name does not exist.
#[derive(Clone)]
pub struct Feed {
    changes: mpsc::UnboundedSender<Timed>,
    /// How objects are converted: the server's options once it has started (objects fed
    /// before that are converted with the defaults).
    options: Arc<OnceLock<ConvertOptions>>,
}

impl Feed {
    /// A feed and the receiving end to start a server with (`Source::Feed`).
    pub fn channel() -> (Feed, FeedSource) {
        let (tx, rx) = mpsc::unbounded_channel();
        let options = Arc::new(OnceLock::new());
        (
            Feed {
                changes: tx,
                options: options.clone(),
            },
            FeedSource {
                changes: rx,
                options,
            },
        )
    }

    fn options(&self) -> ConvertOptions {
        self.options.get().copied().unwrap_or_default()
    }

    fn send(&self, change: Change) -> Result<(), FeedError> {
        self.changes
            .send(change.into())
            .map_err(|_| FeedError::Stopped)
    }

    /// Creates or updates one object. Invalid objects are refused with the reason.
    pub fn apply(&self, manifest: impl Into<Manifest>) -> Result<(), FeedError> {
        match manifest.into().convert_with(&self.options())? {
            Some(object) => self.send(Change::Apply(object)),
            None => Ok(()),
        }
    }

    /// Deletes one object (only its kind, namespace and name are read).
    pub fn delete(&self, manifest: impl Into<Manifest>) -> Result<(), FeedError> {
        let manifest = manifest.into();
        self.send(Change::Delete(manifest.kind(), manifest.key()?))
    }

    /// Replaces everything with `manifests` and marks the server ready. Refuses the whole
    /// set if any object is invalid.
    pub fn replace_all(
        &self,
        manifests: impl IntoIterator<Item = Manifest>,
    ) -> Result<(), FeedError> {
        let mut objects = Vec::new();
        for manifest in manifests {
            objects.extend(manifest.convert_with(&self.options())?);
        }
        self.send(Change::ReplaceAll(objects))
    }

    /// Marks the initial state as delivered: the server starts answering.
    pub fn synced(&self) -> Result<(), FeedError> {
        self.send(Change::Synced)
    }
}
