//! Layout files and the archive.
//!
//! This crate will own the renderers of the three layout files of an issued invoice (the 数电
//! `EInvoice` XML, the OFD package and the PDF), the write-once object-store archive they are
//! kept in (keys `{seller_tax_id}/{yyyy}/{mm}/{dd}/{number}/{number}.{xml|ofd|pdf}`), the SM3
//! digests recorded for every file, and the integrity verification (四性检测) that auditors run.
//!
//! It must never know about gRPC or SQL: callers hand it domain invoices and get bytes, keys and
//! digests back.
