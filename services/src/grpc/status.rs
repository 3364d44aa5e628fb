//! Turning domain errors into gRPC statuses.
//!
//! Every non-OK status message starts with a stable code and `: ` (`SELLER_NOT_CONFIGURED: …`) so
//! callers can branch without parsing prose. Validation failures are `INVALID_ARGUMENT` with one
//! `google.rpc.BadRequest` field violation per problem: `field` is the path, `reason` the code, and
//! `description` the code followed by the Chinese message.

use fapiao_invoice::violation::Violation;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, LocalizedMessage, StatusExt};

/// `INVALID_ARGUMENT` carrying every violation.
pub fn invalid_argument(violations: &[Violation]) -> Status {
    let fields: Vec<FieldViolation> = violations.iter().map(bad_request_field).collect();
    let summary = match violations {
        [only] => format!("INVALID_ARGUMENT: {}: {}", only.field, only.code),
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

/// An RPC of the contract whose implementation has not landed yet.
pub fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "NOT_IMPLEMENTED: {rpc} is not available in this version"
    ))
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
