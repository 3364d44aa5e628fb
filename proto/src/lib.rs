//! The wire contract of fapiao: the gRPC package `fapiao.v1` and its generated Rust code.
//!
//! This crate owns the `.proto` files under `fapiao/v1/` (the source of truth for every field,
//! its format, its limits and the status codes a caller can get), the prost messages and tonic
//! clients and servers generated from them at build time, and the encoded descriptor set used for
//! server reflection.
//!
//! It must not hold logic: no validation, no conversion to domain types, no defaults beyond what
//! protobuf gives. Converting to and from `fapiao-invoice` types is the job of `fapiao-services`.
//!
//! - [`v1`]: messages and enums (`v1::InvoiceInput`, `v1::Invoice`, `v1::InvoiceState`, ...),
//!   servers (`v1::issuance_service_server`, `v1::audit_service_server`, `v1::ops_service_server`)
//!   and clients (`v1::issuance_service_client`, ...).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded `google.protobuf.FileDescriptorSet` of `fapiao.v1` with
//!   its imports, for `tonic-reflection` (v1 and v1alpha).

/// Generated code of the package `fapiao.v1`. Documentation comes from the `.proto` comments.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    missing_docs,
    rustdoc::all
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/fapiao.v1.rs"));
}

/// The encoded `google.protobuf.FileDescriptorSet` of `fapiao.v1`, including the imported
/// `google/protobuf/timestamp.proto` and `duration.proto`, without source info. Register it with
/// `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fapiao_v1_descriptor_set.bin"));
