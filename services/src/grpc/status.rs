//! Turning domain errors into gRPC statuses.
//!
//! Every non-OK status message starts with a stable code and `: ` (`SELLER_NOT_CONFIGURED: …`) so
//! callers can branch without parsing prose. Validation failures are `INVALID_ARGUMENT` with one
//! `google.rpc.BadRequest` field violation per problem: `field` is the path, `reason` the code, and
//! `description` the code followed by the Chinese message.
//!
//! A status travels in HTTP/2 headers, which clients cap (16 KiB is common), so what a status
//! carries is bounded here: at most [`MAX_VIOLATIONS`] field violations (the last one saying how
//! many more there were; `ValidateInvoice` lists them all in its body), and text the caller sent
//! is cut short before it is echoed.

use crate::issuance::IssueError;
use fapiao_invoice::violation::Violation;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, LocalizedMessage, StatusExt};

/// Most field violations one status carries.
pub const MAX_VIOLATIONS: usize = 50;
/// Most characters of caller-sent text echoed in a message or a field path.
const MAX_ECHO: usize = 64;

/// Most characters of a message that quotes caller-sent text among its own words.
const MAX_MESSAGE: usize = 200;

/// `text` as it may be echoed back: at most [`MAX_ECHO`] characters, control characters shown
/// as `�`, and `…` where it was cut.
pub fn echo(text: &str) -> String {
    cut(text, MAX_ECHO)
}

/// A message that quotes caller-sent text, bounded like [`echo`] but longer.
pub fn clipped(text: &str) -> String {
    cut(text, MAX_MESSAGE)
}

fn cut(text: &str, most: usize) -> String {
    let mut out: String = text
        .chars()
        .take(most)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(most).is_some() {
        out.push('…');
    }
    out
}

/// At most [`MAX_VIOLATIONS`] of `fields`, the last saying how many were left out.
fn bounded(mut fields: Vec<FieldViolation>) -> Vec<FieldViolation> {
    if fields.len() > MAX_VIOLATIONS {
        let left_out = fields.len() - (MAX_VIOLATIONS - 1);
        fields.truncate(MAX_VIOLATIONS - 1);
        fields.push(FieldViolation {
            field: String::new(),
            description: format!("TOO_MANY_PROBLEMS: {left_out} more problems not listed"),
            reason: "TOO_MANY_PROBLEMS".to_owned(),
            localized_message: Some(LocalizedMessage::new(
                "zh-CN",
                format!("另有{left_out}个问题未列出"),
            )),
        });
    }
    for field in &mut fields {
        field.field = echo(&field.field);
    }
    fields
}

/// `INVALID_ARGUMENT` carrying every violation (up to [`MAX_VIOLATIONS`]).
pub fn invalid_argument(violations: &[Violation]) -> Status {
    let fields = bounded(violations.iter().map(bad_request_field).collect());
    let summary = match violations {
        [only] => format!("INVALID_ARGUMENT: {}: {}", echo(&only.field), only.code),
        _ => format!(
            "INVALID_ARGUMENT: {} problems in the request",
            violations.len()
        ),
    };
    Status::with_error_details(
        Code::InvalidArgument,
        summary,
        ErrorDetails::with_bad_request(fields),
    )
}

fn bad_request_field(v: &Violation) -> FieldViolation {
    FieldViolation {
        field: v.field.clone(),
        description: format!("{}: {}", v.code, v.message),
        reason: v.code.as_str().to_owned(),
        localized_message: Some(LocalizedMessage::new("zh-CN", v.message.clone())),
    }
}

/// The request's seller has no profile in this deployment.
pub fn seller_not_configured(tax_id: &str) -> Status {
    Status::failed_precondition(format!(
        "SELLER_NOT_CONFIGURED: seller {tax_id} has no profile in this deployment"
    ))
}

/// Why an invoice was not issued, as the contract says it.
pub fn issue_error(e: &IssueError) -> Status {
    let message = format!("{}: {e}", e.code());
    match e {
        IssueError::Conflict { .. } | IssueError::HeldByRedLetter { .. } => {
            Status::already_exists(message)
        }
        IssueError::NumbersExhausted { .. } | IssueError::QuotaExhausted { .. } => {
            Status::resource_exhausted(message)
        }
        IssueError::QuotaInsufficient { .. } => Status::failed_precondition(message),
        IssueError::Unavailable => Status::unavailable(message),
    }
}

/// A failure inside the service: logged in full, reported to the caller without internals.
pub fn internal(context: &str, error: &anyhow::Error) -> Status {
    tracing::error!(error = format!("{error:#}"), "{context}");
    Status::internal(format!("INTERNAL: {context}; see the service log"))
}

/// A request field that is malformed (not an invoice validation problem).
pub fn bad_field(field: &str, code: &str, message: &str) -> Status {
    bad_fields(&[(field.to_owned(), code, message)])
}

/// Several malformed request fields, all reported at once: `(field path, code, message)`.
pub fn bad_fields(problems: &[(String, &str, &str)]) -> Status {
    let violations = bounded(
        problems
            .iter()
            .map(|(field, code, message)| FieldViolation {
                field: field.clone(),
                description: format!("{code}: {message}"),
                reason: (*code).to_owned(),
                localized_message: None,
            })
            .collect(),
    );
    let summary = match problems {
        [(field, code, _)] => format!("INVALID_ARGUMENT: {}: {code}", echo(field)),
        _ => format!(
            "INVALID_ARGUMENT: {} problems in the request",
            problems.len()
        ),
    };
    Status::with_error_details(
        Code::InvalidArgument,
        summary,
        ErrorDetails::with_bad_request(violations),
    )
}

/// `status` as an item error of a batch response.
pub fn item_error(status: &Status) -> fapiao_proto::v1::ItemError {
    let violations = status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|f| fapiao_proto::v1::FieldViolation {
                    field: f.field,
                    code: f.reason,
                    message: f
                        .localized_message
                        .map(|m| m.message)
                        .unwrap_or(f.description),
                })
                .collect()
        })
        .unwrap_or_default();
    fapiao_proto::v1::ItemError {
        code: code_name(status.code()).to_owned(),
        message: status.message().to_owned(),
        violations,
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapiao_invoice::violation::Code as V;

    #[test]
    fn every_violation_becomes_a_field_violation() {
        let status = invalid_argument(&[
            Violation::new("buyer.tax_id", V::BUYER_TAX_ID_CHECK_DIGIT, "校验位错误"),
            Violation::new("lines[2].tax_rate", V::LINE_TAX_RATE_UNKNOWN, "税率无效"),
        ]);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status
            .get_details_bad_request()
            .expect("BadRequest details");
        assert_eq!(bad.field_violations.len(), 2);
        let first = &bad.field_violations[0];
        assert_eq!(first.field, "buyer.tax_id");
        assert_eq!(first.reason, "BUYER_TAX_ID_CHECK_DIGIT");
        assert_eq!(first.description, "BUYER_TAX_ID_CHECK_DIGIT: 校验位错误");
        assert_eq!(bad.field_violations[1].field, "lines[2].tax_rate");
    }
}
