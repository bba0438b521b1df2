//! Integration tests: the real server on loopback, asked by real clients (hickory's client,
//! `dig`, busybox `nslookup`, unbound as a forwarding resolver). One test binary, so the
//! crate links once.

mod support;

mod api_double;
mod api_double_selftest;
mod architecture;
mod cli;
mod clients;
mod clusterset;
mod deploy;
mod differential;
mod embed;
mod encrypted;
mod endpoint_pod_names;
mod hostile;
mod kubernetes;
mod protocol;
mod records;
mod reload;
mod secondaries;
mod slots;
mod snapshot;
mod stub_domain;
mod transfer_churn;
mod transfer_lease;
mod transfers;
mod truncation;
mod zones;
