//! The tax platform, seen from the issuance core.
//!
//! This module will own the `TaxPlatform` trait (reserve numbers, quota, upload, upload result,
//! queries, red-letter forms, usage status), its HTTP client of our 乐企-modelled protocol and the
//! sandbox server that speaks the same protocol. For now it holds only the transport-free protocol
//! layer: sealing bodies, signing and verifying requests, and the response envelope.
//!
//! It must not leak secrets (keys never reach `Debug`, errors or logs) and must not read the wall
//! clock in the protocol layer: time is passed in, so the sandbox can advance it and tests never sleep.

pub mod protocol;
