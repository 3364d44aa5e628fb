//! The gRPC surface: service implementations and the conversions between `fapiao.v1` messages and
//! domain types.
//!
//! - [`convert`]: proto → domain drafts and domain → proto messages. No rules, only mapping.
//! - [`status`]: domain errors → `tonic::Status`, with `google.rpc.BadRequest` details.
//! - [`issuance`]: the `IssuanceService` implementation.
//! - [`redletter`]: the red-letter RPCs of `IssuanceService`, and the form conversion.
//! - [`watch`]: following an event table as a server stream (invoices, red-letter forms).
//! - [`paging`]: page sizes, page tokens and the filters listings share.
//! - [`audit`]: the `AuditService` implementation (auditors; every call recorded).
//! - [`ops`]: the `OpsService` implementation (operators: reconciliation runs, drifts, passes).

pub mod audit;
pub mod convert;
pub mod issuance;
pub mod ops;
pub mod paging;
pub mod redletter;
pub mod status;
pub mod watch;
