//! The fapiao service: gRPC services, the issuance workflow, the store, the tax-platform client and
//! the built-in sandbox platform, configuration, authentication and wiring.
//!
//! Handlers convert proto to domain and delegate; no business rule lives here that belongs in
//! `fapiao-invoice`.
