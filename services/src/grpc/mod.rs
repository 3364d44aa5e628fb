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
//! - [`edge`]: what every connection and call passes first: authentication, limits, timeouts.

pub mod audit;
pub mod convert;
pub mod edge;
pub mod issuance;
pub mod ops;
pub mod paging;
pub mod redletter;
pub mod status;
pub mod watch;

/// Longest batch of `IssueInvoices` and of `RequestRedLetters`.
pub const MAX_BATCH: usize = 100;

#[cfg(test)]
mod tests {
    /// Handlers read and write only within the caller's scope (`auth::Caller::scope`); the
    /// unrestricted scope is for background work, so no handler may name it.
    #[test]
    fn no_handler_reaches_past_the_callers_scope() {
        let mut folders = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/grpc"
        ))];
        let mut read = 0;
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).expect("a source folder") {
                let path = entry.expect("a file").path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("a source file");
                read += 1;
                assert!(
                    !text.contains(&["Scope::", "unrestricted"].concat()),
                    "{} uses the unrestricted scope",
                    path.display()
                );
            }
        }
        assert!(read >= 8, "the handlers were not found");
    }
}
