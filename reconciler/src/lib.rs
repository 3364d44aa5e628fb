//! The reconciliation engine.
//!
//! This crate will own one pass of reconciliation (`reconcile(window) -> Report`): the two-way
//! comparison of local invoices with the tax platform's listing, the classification of drift
//! (missing on platform, stuck, status mismatch, remote only, content mismatch), the repair plan,
//! the success-rate SLO and its multi-window burn-rate alerts, the alert sinks and the schedule.
//!
//! It must never talk to SQL or HTTP directly: it works through traits that `fapiao-services`
//! implements, so every rule here is testable with an injected clock and in-memory fakes.
