//! The reconciliation engine.
//!
//! This crate owns one pass of reconciliation: the two-way comparison of local invoices with the
//! tax platform's listing and the classification of drift with its repair plan ([`diff`]), the
//! success-rate objective and its multi-window burn-rate evaluation ([`slo`]), and alerts, their
//! fire–repeat–resolve lifecycle and the payloads of the generic webhook and Alertmanager sinks
//! ([`alert`]), and the pass that ties them together over a window ([`pass`]).
//!
//! It must never talk to SQL or HTTP directly: it works through traits and plain data that
//! `fapiao-services` provides, so every rule here is testable with an injected clock and in-memory
//! fakes.

pub mod alert;
pub mod diff;
pub mod pass;
pub mod slo;
