//! What the cells share: partial reversals, draining a stream, reading a batch item's error,
//! verification reports, and requesting a pass checked to concern the caller's seller only.

use super::cells::{Answer, Target, sellers_named};
use super::world::{A, OPERATOR_B, World};
use fapiao_proto::v1;
use fapiao_tests::Bearer;
use std::time::Duration;
use tonic::Status;
use tonic::codec::Streaming;

/// The same request reversing 10.00 of the first line only, so the caller's own blue invoice
/// stays reversible for every cell that reverses it.
pub fn part_of(mut input: v1::RedLetterInput) -> v1::RedLetterInput {
    input.scope = Some(v1::red_letter_input::Scope::Partial(v1::PartialReversal {
        lines: vec![v1::LineReversal {
            line_number: 1,
            amount: "10.00".into(),
            ..Default::default()
        }],
    }));
    input
}

/// Every message of a stream until it has been quiet for a moment (the watches keep streams
/// open; what they have is sent at once).
pub async fn drain<T>(mut stream: Streaming<T>) -> Result<Vec<T>, Status> {
    let mut all = Vec::new();
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(800), stream.message()).await {
        match next? {
            Some(message) => all.push(message),
            None => break,
        }
    }
    Ok(all)
}

pub fn item_answer(result: Option<&v1::ItemError>, seller: &str) -> Answer {
    match result {
        None => Ok(vec![seller.to_owned()]),
        Some(e) => {
            let code = match e.code.as_str() {
                "PERMISSION_DENIED" => tonic::Code::PermissionDenied,
                "NOT_FOUND" => tonic::Code::NotFound,
                "INVALID_ARGUMENT" => tonic::Code::InvalidArgument,
                "FAILED_PRECONDITION" => tonic::Code::FailedPrecondition,
                _ => tonic::Code::Unknown,
            };
            Err(Status::new(code, e.message.clone()))
        }
    }
}

pub fn stamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

pub fn verified(messages: Vec<v1::VerifyInvoicesResponse>) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|m| match m.item {
            Some(v1::verify_invoices_response::Item::Report(r)) => Some(r.seller_tax_id),
            _ => None,
        })
        .collect()
}

/// A requested pass; one the caller may start is checked to concern only its sellers: an
/// operator of another seller cannot see it.
pub async fn trigger(w: &World, token: &str, target: Target) -> Answer {
    let now = chrono::Utc::now();
    let run = w
        .app
        .ops_as(token)
        .trigger_reconciliation(v1::TriggerReconciliationRequest {
            window: Some(v1::TimeRange {
                from: Some(stamp(now - chrono::TimeDelta::hours(1))),
                to: Some(stamp(now)),
            }),
            seller_tax_ids: sellers_named(target),
            reason: "scope table".into(),
        })
        .await?
        .into_inner()
        .run
        .unwrap_or_default();
    let seen_by_b = w
        .app
        .ops_as(OPERATOR_B)
        .get_reconciliation_run(v1::GetReconciliationRunRequest {
            run_id: run.run_id.clone(),
        })
        .await;
    Ok(vec![match seen_by_b {
        Err(status) if status.code() == tonic::Code::NotFound => A.to_owned(),
        _ => format!("run {} is visible to another seller's operator", run.run_id),
    }])
}

/// A client of the channel with `token` (for checks outside the table).
pub fn ops(w: &World, token: &str) -> fapiao_tests::OpsClient {
    fapiao_proto::v1::ops_service_client::OpsServiceClient::with_interceptor(
        w.app.channel.clone(),
        Bearer(token.to_owned()),
    )
}
