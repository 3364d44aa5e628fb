//! The 数电 (fully digitalized e-invoice) domain: everything about an invoice that can be decided
//! without I/O.
//!
//! It owns money and rounding ([`money`]), rates ([`rate`]) and the tax classification catalog
//! ([`catalog`]), taxpayer ids ([`taxpayer`]), the 20-digit invoice number ([`number`]), amounts in
//! Chinese capitals ([`capitals`]), the invoice model ([`model`]), line computation ([`compute`]),
//! validation that reports every violation at once ([`validate`], [`violation`]) and red-letter
//! arithmetic ([`redletter`]).
//!
//! It must never do I/O or depend on tonic, sqlx, object_store or reqwest: the catalog is parsed from
//! text that the caller loads, and time comes in as values.

pub mod capitals;
pub mod catalog;
pub mod compute;
pub mod limits;
pub mod model;
pub mod money;
pub mod number;
pub mod rate;
pub mod redletter;
pub mod taxpayer;
pub mod validate;
pub mod violation;
