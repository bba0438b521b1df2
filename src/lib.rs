//! headless-dns: authoritative DNS for Kubernetes headless Services and StatefulSet pods.
//!
//! # Layout
//!
//! One folder per stage of the pipeline, and one bridge between the two halves:
//!
//! ```text
//!  source/ (manifests | Kubernetes API | Feed)        serve/ (UDP, TCP)
//!         │ model/ objects, Changes                          ▲ reads only
//!         ▼                                                  │
//!  controller/ ── records ── store::compile ──▶ store/ ──────┘
//! ```
//!
//! - [`dns`]: the DNS vocabulary every stage shares (wire codec, names, record data);
//!   [`hash`]: the hasher of the maps. Both import nothing from the crate.
//! - [`model`]: the few fields of each Kubernetes object DNS needs, and the
//!   [`Change`](model::Change)s a source sends.
//! - [`source`]: where objects come from: a manifests folder, the Kubernetes API, an
//!   embedding program's [`Feed`]; each converts what it reads into the model.
//! - [`controller`]: the store's single writer; joins Services with their endpoints,
//!   computes their records (the specification, [`controller::records`]) and publishes each
//!   Service whole.
//! - [`store`]: the name index and per-Service snapshots the controller writes and the query
//!   path reads, and the compiled answer formats.
//! - [`serve`]: the query path: the sockets and the function from query bytes to response
//!   bytes; and the HTTP endpoints for probes and scrapes.
//! - [`metrics`]: counters every stage writes to (per thread on the query path).
//! - [`config`] and [`cli`]: one configuration type and the flags that fill it; [`embed`]:
//!   the embedding API ([`start`], [`Feed`], [`ServerHandle`]) that wires the stages;
//!   [`error`]: the error [`start`] returns.
//!
//! Imports point down that list's pipeline: a source never imports the controller, the
//! store or the query path; the query path never imports a source, the controller or the
//! model; `store` imports only `dns` and `hash`. docs/ARCHITECTURE.md lists the allowed
//! directions and a test keeps them.
//!
//! # Embedding
//!
//! An operator written in Rust runs the server in-process and feeds it objects; see
//! [`start`] for a complete example.

pub mod cli;
pub mod config;
pub mod controller;
pub mod dns;
pub mod embed;
pub mod error;
pub mod hash;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod persist;
pub mod serve;
pub mod source;
pub mod store;

pub use config::Config;
pub use embed::{ServerHandle, Source, start};
pub use error::Error;
pub use source::feed::{Feed, FeedError};
pub use source::kubernetes::{EndpointsApi, KubernetesSource};
pub use source::manifest::{InvalidObject, Manifest};
