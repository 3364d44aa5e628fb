//! Counters of what the sandbox saw, for the admin API and for tests, and the forms it holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the sandbox has seen since it started (not persisted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Business requests by service code (`fwbm`); unknown codes count as `other`.
    pub requests: BTreeMap<String, u64>,
    /// Refusals by code: envelope refusals, `SYSTEM_BUSY`, and business return codes other than
    /// `00`.
    pub refusals: BTreeMap<String, u64>,
    /// Rejected uploaded invoices by code.
    pub rejections: BTreeMap<String, u64>,
    /// Invoices received in uploads (including lost ones and re-uploads).
    pub uploads_received: u64,
    /// Invoices newly recorded.
    pub invoices_recorded: u64,
    /// Uploads of an already recorded number with the same content (recorded again, idempotently).
    pub duplicate_uploads: u64,
    /// Faults injected, by kind: `latency`, `busy`, `timeout_processed`, `timeout_unprocessed`,
    /// `lost_upload`, `dropped_record`, `duplicate_result`, `self_issued_red`.
    pub faults: BTreeMap<String, u64>,
    /// Confirmation forms held now, by status code (`01`–`13`); from the state, so persisted with
    /// it.
    #[serde(default)]
    pub forms: BTreeMap<String, u64>,
}

impl Stats {
    pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str, by: u64) {
        match map.get_mut(key) {
            Some(count) => *count += by,
            None => {
                map.insert(key.to_owned(), by);
            }
        }
    }
}
