//! The fapiao service: gRPC services, the issuance workflow, the store, the tax-platform client and
//! the built-in sandbox platform, configuration, authentication and wiring.
//!
//! Handlers convert proto to domain, delegate, and convert back; no business rule lives here that
//! belongs in `fapiao-invoice`. Everything that touches the outside world (files, sockets, databases,
//! later object stores) is done here, never in the domain crate.
//!
//! - [`auth`]: bearer tokens, roles and the sellers a caller may act for.
//! - [`config`]: what `fapiao serve` reads (defaults, a TOML file, flags).
//! - [`sellers`]: seller profiles, the details printed on a seller's invoices.
//! - [`grpc`]: the gRPC services and the conversion between wire and domain types.
//! - [`issuance`]: the workflow: the group-commit writer, number and quota supply, the upload worker.
//! - [`store`]: invoices, events, upload work, number ranges and quota in SQLite or PostgreSQL.
//! - [`platform`]: the `TaxPlatform` trait, its protocol, its HTTP client and the sandbox platform.
//! - [`clock`]: injected time.
//! - [`instance`]: the identity a replica holds its claims and leases under.
//! - [`reconciling`]: reconciliation passes against the store and the platform, on a schedule or on demand.
//! - [`alerting`]: the success-rate objective, alert evaluation and the alert sinks.
//! - [`metrics`]: the Prometheus `/metrics` endpoint.
//! - [`server`]: starting everything from the configuration and serving gRPC, health and reflection.

pub mod alerting;
pub mod archiving;
pub mod auth;
pub mod clock;
pub mod config;
pub mod grpc;
pub mod instance;
pub mod issuance;
pub mod metrics;
pub mod platform;
pub mod reconciling;
pub mod redletter;
pub mod sellers;
pub mod server;
pub mod store;
