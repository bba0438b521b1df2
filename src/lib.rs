//! headless-dns: authoritative DNS for Kubernetes headless Services and StatefulSet pods.
//!
//! # Layout
//!
//! Three parts with one bridge between them:
//!
//! ```text
//!  sources (manifests | Kubernetes API | Feed)   query path (UDP/TCP)
//!         │ model structs                               ▲ reads only
//!         ▼                                             │
//!  controller ── records ── compile ──▶ store ──────────┘
//! ```
//!
//! - [`model`]: the few fields of each Kubernetes object DNS needs; [`convert`] turns
//!   k8s-openapi objects into them (sharing repeated strings through [`intern`]),
//!   [`manifests`] reads them from files and [`manifest_watch`] follows the files;
//!   [`kube_source`] watches the Kubernetes API.
//! - [`controller`]: the store's single writer; joins Services with their endpoints and
//!   publishes each Service whole.
//! - [`records`]: the Kubernetes DNS specification as pure functions (ordinal order lives
//!   here); [`compile`] encodes records into wire-format answers once, when they change.
//! - [`store`]: the name index shared by the controller and the query path.
//! - [`wire`] reads queries; [`answer`] turns one query into one response; [`zones`] knows
//!   the zones and their SOA; [`server`] runs the sockets, [`udp`] the batched UDP workers,
//!   [`affinity`] pins them to CPUs when asked.
//! - [`metrics`] counts (per thread on the query path) and [`http`] serves `/healthz`,
//!   `/readyz`, `/metrics`.
//! - [`config`] and [`cli`]: one configuration type and the flags that fill it; [`embed`]:
//!   the embedding API ([`start`], [`Feed`], [`ServerHandle`]).
//!
//! # Embedding
//!
//! An operator written in Rust runs the server in-process and feeds it objects; see
//! [`start`] for a complete example.

pub mod affinity;
pub mod answer;
pub mod cli;
pub mod compile;
pub mod config;
pub mod controller;
pub mod convert;
pub mod embed;
pub mod error;
pub mod http;
pub mod intern;
pub mod keyed;
pub mod kube_source;
pub mod manifest_index;
pub mod manifest_watch;
pub mod manifests;
pub mod metrics;
pub mod model;
pub mod name;
pub mod pod_table;
pub mod records;
pub mod server;
pub mod srv;
pub mod store;
pub mod udp;
pub mod wire;
pub mod zones;

pub use config::Config;
pub use embed::{Feed, Manifest, ServerHandle, Source, start};
pub use error::Error;
pub use kube_source::{EndpointsApi, KubernetesSource};
