//! Black-box end-to-end tests of fapiao.
//!
//! This crate will hold the tests that drive a real `fapiao` server (in-process or as a child
//! process) over gRPC, against the real sandbox tax platform, real databases (SQLite and PostgreSQL)
//! and real object stores, through a `spawn_app()` harness: fresh database, port 0, temporary archive
//! directory, typed client.
//!
//! It must never reach into private modules: only the wire contract and the binary's public surface.
