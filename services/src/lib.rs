//! The fapiao service: gRPC services, the issuance workflow, the store, the tax-platform client and
//! the built-in sandbox platform, configuration, authentication and wiring.
//!
//! Handlers convert proto to domain, delegate, and convert back; no business rule lives here that
//! belongs in `fapiao-invoice`. Everything that touches the outside world (files, sockets, later
//! databases and object stores) is done here, never in the domain crate.
//!
//! - [`auth`]: bearer tokens, roles and the sellers a caller may act for.
//! - [`config`]: what `fapiao serve` reads (defaults, a TOML file, flags).
//! - [`sellers`]: seller profiles, the details printed on a seller's invoices.
//! - [`grpc`]: the gRPC services and the conversion between wire and domain types.
//! - [`platform`]: the tax platform: for now the transport-free protocol (sealing, signing, verifying).
//! - [`server`]: assembling the services, health and reflection into one running server.

pub mod auth;
pub mod clock;
pub mod config;
pub mod grpc;
pub mod issuance;
pub mod platform;
pub mod sellers;
pub mod server;
pub mod store;
