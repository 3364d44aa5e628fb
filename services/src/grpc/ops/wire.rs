//! Runs and drifts as the store keeps them and as the contract names them.

use super::super::convert;
use crate::store::{StoredDrift, StoredRun};
use fapiao_proto::v1;

fn run_status(status: &str) -> v1::RunStatus {
    match status {
        "queued" => v1::RunStatus::Queued,
        "running" => v1::RunStatus::Running,
        "succeeded" => v1::RunStatus::Succeeded,
        "failed" => v1::RunStatus::Failed,
        _ => v1::RunStatus::Unspecified,
    }
}

pub(super) fn run_status_name(status: v1::RunStatus) -> Option<&'static str> {
    match status {
        v1::RunStatus::Unspecified => None,
        v1::RunStatus::Queued => Some("queued"),
        v1::RunStatus::Running => Some("running"),
        v1::RunStatus::Succeeded => Some("succeeded"),
        v1::RunStatus::Failed => Some("failed"),
    }
}

/// The wire kind of a stored drift class.
pub fn drift_kind(class: &str) -> v1::DriftKind {
    match class {
        "missing_on_platform" => v1::DriftKind::MissingOnPlatform,
        "stuck" => v1::DriftKind::Stuck,
        "status_mismatch" => v1::DriftKind::StatusMismatch,
        "remote_only" => v1::DriftKind::RemoteOnly,
        "content_mismatch" => v1::DriftKind::ContentMismatch,
        _ => v1::DriftKind::Unspecified,
    }
}

pub(super) fn drift_class(kind: v1::DriftKind) -> Option<&'static str> {
    match kind {
        v1::DriftKind::Unspecified => None,
        v1::DriftKind::MissingOnPlatform => Some("missing_on_platform"),
        v1::DriftKind::Stuck => Some("stuck"),
        v1::DriftKind::StatusMismatch => Some("status_mismatch"),
        v1::DriftKind::RemoteOnly => Some("remote_only"),
        v1::DriftKind::ContentMismatch => Some("content_mismatch"),
    }
}

fn drift_status(status: &str) -> v1::DriftStatus {
    match status {
        "open" => v1::DriftStatus::Open,
        "repaired" => v1::DriftStatus::Repaired,
        "resolved" => v1::DriftStatus::Resolved,
        _ => v1::DriftStatus::Unspecified,
    }
}

/// A stored run on the wire.
pub fn run(run: &StoredRun) -> v1::ReconciliationRun {
    let status = run_status(&run.status);
    let by_class: std::collections::BTreeMap<String, u64> = run
        .drifts_by_class
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    let manual = run.kind == "manual";
    v1::ReconciliationRun {
        run_id: run.id.to_string(),
        trigger: if manual {
            v1::RunTrigger::Manual
        } else {
            v1::RunTrigger::Scheduled
        } as i32,
        status: status as i32,
        window: Some(v1::TimeRange {
            from: Some(convert::timestamp(run.window_from)),
            to: Some(convert::timestamp(run.window_to)),
        }),
        started_at: (status != v1::RunStatus::Queued).then(|| convert::timestamp(run.started_at)),
        finished_at: run.finished_at.map(convert::timestamp),
        invoices_compared: u64::try_from(run.local).unwrap_or(0),
        drifts_found: by_class
            .iter()
            .map(|(class, count)| v1::DriftCount {
                kind: drift_kind(class) as i32,
                count: *count,
            })
            .collect(),
        repairs_attempted: u64::try_from(run.repairs_attempted).unwrap_or(0),
        repairs_succeeded: u64::try_from(run.repairs_succeeded).unwrap_or(0),
        error: run.error.clone().unwrap_or_default(),
        triggered_by: run.triggered_by.clone().unwrap_or_default(),
        reason: run.reason.clone().unwrap_or_default(),
    }
}

/// A stored drift on the wire.
pub fn drift(drift: &StoredDrift) -> v1::Drift {
    v1::Drift {
        drift_id: drift.id.to_string(),
        kind: drift_kind(&drift.class) as i32,
        status: drift_status(&drift.status) as i32,
        run_id: drift.first_run_id.to_string(),
        invoice_number: drift.invoice_number.clone(),
        seller_tax_id: drift.seller_tax_id.clone(),
        local_state: drift
            .local_state
            .map_or(v1::InvoiceState::Unspecified, convert::state) as i32,
        platform_status: drift.platform_state.clone().unwrap_or_default(),
        detail: drift.detail.clone(),
        detected_at: Some(convert::timestamp(drift.first_seen_at)),
        repair_attempts: u32::try_from(drift.repair_attempts).unwrap_or(u32::MAX),
        last_repair_at: drift.last_repair_at.map(convert::timestamp),
        closed_at: drift.closed_at.map(convert::timestamp),
        closed_by: drift.resolved_by.clone().unwrap_or_default(),
        resolution: drift.resolution.clone().unwrap_or_default(),
    }
}
