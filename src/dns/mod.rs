//! The DNS vocabulary every stage shares: the wire codec and the protocol's numbers
//! ([`wire`]), names in wire form and the naming rules of the Kubernetes DNS specification
//! ([`name`]), records as values before they are encoded ([`rdata`]), and address ranges
//! with the reverse zones that cover them ([`cidr`]), transaction signatures ([`tsig`]),
//! and the padding of encrypted responses ([`padding`]).
//!
//! A leaf of the crate: it imports nothing from the other stages, and nothing in it knows
//! of Kubernetes objects, the store or sockets.

pub mod cidr;
pub mod name;
pub mod padding;
pub mod rdata;
pub mod tsig;
pub mod wire;
