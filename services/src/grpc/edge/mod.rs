//! The gRPC edge: what every connection and every call passes before a handler sees it.
//!
//! - [`config`]: the `[server]` limits and timeouts.
//! - [`connection`]: accepted connections, closed when they never complete the handshake or sit
//!   idle.
//! - [`admission`]: calls and streams in flight per caller and in total.
//! - [`layer`]: authentication, admission and the last line against panics, as a tower layer
//!   around the routed services.

pub mod admission;
pub mod config;
pub mod connection;
pub mod layer;

pub use admission::Admission;
pub use config::ServerConfig;
pub use layer::EdgeLayer;
