//! The service's side of reconciliation: the store and the tax platform behind the reconciler's
//! `Ledger` and `Listing` traits, repairs written to the store, and passes run from the command
//! line ([`runner::once`]), on a schedule inside `fapiao serve` or on an operator's request
//! ([`schedule`]).
//!
//! Content is compared like with like: the platform lists the SM3 of the canonical JSON of the
//! content it *received*, so the local side is the SM3 of exactly what was sent, recorded at issue
//! (`invoices.platform_sm3`, the same as [`platform_digest`] of the stored content), not the
//! idempotency digest (which normalises decimals first). A pass reads only the columns it
//! compares, never the content itself.
//!
//! This module converts and delegates; the rules (what is drift, what repair is safe) are the
//! reconciler's. Repairs are written to the store ([`StoreRepairs`]); a dry run ([`DryRun`])
//! only reports them.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::NaiveDate;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_reconciler::diff::{
    Drift, LocalInvoice, LocalState, PlatformInvoice, PlatformState, Settings,
};
use fapiao_reconciler::pass::{
    Ledger, ListedPage, Listing, PageError, Pause, RepairOutcome, Repairs, Retry, Rules,
    SourceError, Window,
};

use crate::platform::{RemoteState, RemoteSummary, TaxPlatform};
use crate::store::{
    AdoptedInvoice, InvoiceState, LedgerRow, RepairWrite, Scope, Store, UploadPhase,
};

pub mod progress;
pub mod runner;
pub mod schedule;

pub use runner::{IfIncomplete, Passes, once};

/// How drift is judged.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// An invoice issued or changed less than this long ago is still in flight, never drift.
    #[serde(with = "humantime_serde")]
    pub grace: std::time::Duration,
    /// An upload whose result is unknown for this long is stuck.
    #[serde(with = "humantime_serde")]
    pub stuck_after: std::time::Duration,
    /// Re-uploads of one invoice before its drift is alerted instead of repaired again.
    pub max_reuploads: u32,
    /// How long the lease that keeps other replicas from running a pass lasts; a running pass
    /// renews it every third of this, so it bounds how long a stopped process keeps others
    /// waiting.
    #[serde(with = "humantime_serde")]
    pub lease: std::time::Duration,
    /// Run scheduled passes inside `fapiao serve` (`recent` and `daily` below). Passes an
    /// operator asks for with `TriggerReconciliation` run either way.
    pub schedule: bool,
    /// When the pass over the recent window starts: a cron expression with seconds
    /// (`sec min hour day-of-month month day-of-week`), read in China time.
    pub recent: String,
    /// How far back from now the recent pass looks.
    #[serde(with = "humantime_serde")]
    pub recent_window: std::time::Duration,
    /// When the full pass over the previous China day starts (cron with seconds, China time).
    pub daily: String,
    /// How often a pass waiting for the lease another replica holds asks again.
    #[serde(with = "humantime_serde")]
    pub lease_retry: std::time::Duration,
    /// Reads of one page of the platform's listing, the first included, when it times out, is
    /// busy or the connection fails. A day with a page still unread after them is a gap.
    pub page_attempts: u32,
    /// Waits before the 1st, 2nd, … re-read of a failed listing page; the last repeats.
    #[serde(with = "crate::config::durations")]
    pub page_backoff: Vec<std::time::Duration>,
    /// Attempts of one run inside `fapiao serve`: a run that left seller-days uncompared (gaps, or
    /// a process that stopped part way) is taken up again, for the days not done, until then.
    pub run_attempts: u32,
    /// How long after an attempt that left gaps the run's next attempt starts.
    #[serde(with = "humantime_serde")]
    pub resume_after: std::time::Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        let rules = Settings::default();
        let retry = Retry::default();
        Self {
            grace: rules.grace.to_std().unwrap_or_default(),
            stuck_after: rules.stuck_after.to_std().unwrap_or_default(),
            max_reuploads: rules.max_reuploads,
            lease: std::time::Duration::from_secs(600),
            schedule: true,
            recent: "0 */5 * * * *".to_owned(),
            recent_window: std::time::Duration::from_secs(2 * 3600),
            daily: "0 0 2 * * *".to_owned(),
            lease_retry: std::time::Duration::from_secs(5),
            page_attempts: retry.attempts,
            page_backoff: retry
                .backoff
                .iter()
                .map(|wait| wait.to_std().unwrap_or_default())
                .collect(),
            run_attempts: 3,
            resume_after: std::time::Duration::from_secs(60),
        }
    }
}

/// A configured length as chrono's, saturating: no setting is long enough to overflow it in use.
pub(crate) fn delta(d: std::time::Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

impl ReconcileConfig {
    /// Until when a pass taking the lease at `now` holds it.
    pub fn lease_until(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now.checked_add_signed(delta(self.lease))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// The comparison's settings.
    pub fn settings(&self) -> Settings {
        Settings {
            grace: delta(self.grace),
            stuck_after: delta(self.stuck_after),
            max_reuploads: self.max_reuploads,
        }
    }

    /// The rules of a pass: the comparison's settings and the listing's retries.
    pub fn rules(&self) -> Rules {
        Rules {
            diff: self.settings(),
            retry: Retry {
                attempts: self.page_attempts,
                backoff: self.page_backoff.iter().copied().map(delta).collect(),
            },
        }
    }
}

/// Rows asked for per listing page.
const PAGE_SIZE: u32 = 1000;

pub use crate::platform::protocol::platform_digest;

/// The store as the reconciler's ledger, over the given sellers.
#[derive(Debug, Clone)]
pub struct StoreLedger {
    pub store: Store,
    pub sellers: Vec<String>,
}

fn local_state(state: InvoiceState) -> LocalState {
    match state {
        InvoiceState::Issued => LocalState::Issued,
        InvoiceState::Uploading => LocalState::Uploading,
        InvoiceState::Recorded => LocalState::Recorded,
        InvoiceState::Rejected => LocalState::Rejected,
        InvoiceState::PartiallyReversed => LocalState::PartiallyReversed,
        InvoiceState::FullyReversed => LocalState::FullyReversed,
    }
}

/// One stored invoice as the comparison sees it.
pub fn local_invoice(seller: &str, row: LedgerRow) -> LocalInvoice {
    LocalInvoice {
        number: row.number,
        seller: seller.to_owned(),
        request_id: row.request_id,
        issued_at: row.issued_at,
        colour: row.colour,
        state: local_state(row.state),
        state_since: row.state_changed_at,
        buyer_name: row.buyer_name,
        buyer_tax_id: row.buyer_tax_id,
        amount: row.amount,
        tax: row.tax,
        content_sm3: row.platform_sm3,
        reconcile_attempts: row.reconcile_attempts,
    }
}

impl Ledger for StoreLedger {
    async fn sellers(&self) -> Result<Vec<String>, SourceError> {
        Ok(self.sellers.clone())
    }

    async fn local_invoices(
        &self,
        seller: &str,
        window: &Window,
    ) -> Result<Vec<LocalInvoice>, SourceError> {
        let rows = self
            .store
            .ledger_rows(seller, window.from, window.to)
            .await
            .map_err(|e| SourceError(format!("{e:#}")))?;
        Ok(rows
            .into_iter()
            .map(|row| local_invoice(seller, row))
            .collect())
    }

    async fn known_requests(
        &self,
        seller: &str,
        request_ids: &[&str],
    ) -> Result<HashSet<String>, SourceError> {
        self.store
            .known_request_ids(seller, request_ids)
            .await
            .map_err(|e| SourceError(format!("{e:#}")))
    }
}

/// The platform's day listings, a page at a time.
#[derive(Debug, Clone)]
pub struct PlatformListing {
    pub platform: Arc<dyn TaxPlatform>,
}

/// One listed row as the comparison sees it.
pub fn platform_invoice(seller: &str, row: RemoteSummary) -> PlatformInvoice {
    PlatformInvoice {
        number: row.number,
        seller: seller.to_owned(),
        request_id: row.request_id,
        issued_at: row.issued_at,
        colour: row.colour,
        state: match row.state {
            RemoteState::Normal => PlatformState::Normal,
            RemoteState::PartiallyReversed => PlatformState::PartiallyReversed,
            RemoteState::FullyReversed => PlatformState::FullyReversed,
        },
        buyer_name: row.buyer_name,
        buyer_tax_id: row.buyer_tax_id.map(|id| id.as_str().to_owned()),
        amount: row.amount,
        tax: row.tax,
        content_sm3: row.content_sm3,
    }
}

impl Listing for PlatformListing {
    async fn list_page(
        &self,
        seller: &str,
        day: NaiveDate,
        page: u32,
    ) -> Result<ListedPage, PageError> {
        let id = TaxpayerId::parse(seller)
            .map_err(|e| PageError::Refused(format!("seller {seller}: {e}")))?;
        match self.platform.list_invoices(&id, day, page, PAGE_SIZE).await {
            Ok(listed) => Ok(ListedPage {
                rows: listed
                    .items
                    .into_iter()
                    .map(|r| platform_invoice(seller, r))
                    .collect(),
                next_page: listed.next_page,
            }),
            Err(error) => Err(page_error(&error)),
        }
    }
}

/// A failed listing call as the pass sees it: read again when the platform may answer later.
fn page_error(error: &crate::platform::CallError) -> PageError {
    if error.is_retryable() {
        PageError::Passing(error.to_string())
    } else {
        PageError::Refused(error.to_string())
    }
}

/// Waits between reads of a listing page on tokio's timer (which tests can pause).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimerPause;

impl Pause for TimerPause {
    async fn pause(&self, wait: chrono::TimeDelta) {
        tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    }
}

pub(crate) fn stored_state(state: LocalState) -> InvoiceState {
    match state {
        LocalState::Issued => InvoiceState::Issued,
        LocalState::Uploading => InvoiceState::Uploading,
        LocalState::Recorded => InvoiceState::Recorded,
        LocalState::Rejected => InvoiceState::Rejected,
        LocalState::PartiallyReversed => InvoiceState::PartiallyReversed,
        LocalState::FullyReversed => InvoiceState::FullyReversed,
    }
}

/// Repairs made in the store: re-uploads and queries are queued for the upload worker (which
/// sends them the next time it looks, in this process or a running server), adopted states are
/// written with an event. Each is applied only if the invoice is still as compared.
#[derive(Debug, Clone)]
pub struct StoreRepairs {
    pub store: Store,
    pub clock: crate::clock::SharedClock,
    /// Where an invoice to adopt is fetched from; without it, adoption fails (and is retried
    /// by the next pass that has one).
    pub platform: Option<Arc<dyn TaxPlatform>>,
}

/// Who the events of repairs name.
pub const ACTOR: &str = "reconciler";

impl StoreRepairs {
    async fn write_for(&self, drift: &Drift) -> anyhow::Result<Result<String, String>> {
        use fapiao_reconciler::diff::Repair;
        if matches!(drift.repair, Repair::AdoptRemote) {
            return self.adopt(drift).await;
        }
        let Some(seen) = drift.local_state else {
            return Ok(Err("only the platform holds this invoice".to_owned()));
        };
        let Some(stored) = self
            .store
            .get_invoice(&Scope::unrestricted(), &drift.number)
            .await?
        else {
            return Ok(Err("the invoice is no longer in the store".to_owned()));
        };
        let expected = stored_state(seen);
        // A parked invoice (the upload worker spent its attempt budget) is sent at once: the
        // listing has just shown the platform holds no record of it, the platform is idempotent
        // by number, and a query first would find the budget spent and park it again unsent.
        let (state, phase, counts, reason) = match drift.repair {
            Repair::Reupload => (
                (expected == InvoiceState::Recorded).then_some(InvoiceState::Issued),
                Some(UploadPhase::Send),
                true,
                "the platform has no record of it: uploading it again".to_owned(),
            ),
            Repair::QueryThenReupload => (
                None,
                Some(UploadPhase::Query),
                true,
                "its upload is stuck: asking the platform (sending it at once if the upload \
                 worker gave up on it), then uploading again"
                    .to_owned(),
            ),
            Repair::AdoptState(state) => (
                Some(stored_state(state)),
                None,
                false,
                format!("the platform has it as {state}: adopted"),
            ),
            Repair::AdoptRemote | Repair::Alert { .. } => {
                return Ok(Err("not a repair the store makes".to_owned()));
            }
        };
        let write = RepairWrite {
            number: drift.number,
            seller_tax_id: stored.seller_tax_id.clone(),
            request_id: stored.request_id.clone(),
            colour: stored.content.colour(),
            expected,
            state,
            phase,
            phase_if_parked: phase.map(|_| UploadPhase::Send),
            counts_as_reupload: counts,
            reason: format!("reconciler: {reason}"),
        };
        let now = crate::clock::Clock::now(self.clock.as_ref());
        Ok(if self.store.apply_repair(&write, now, ACTOR).await? {
            Ok(reason)
        } else {
            Err("the invoice changed since it was compared; the next pass looks again".to_owned())
        })
    }
}

impl StoreRepairs {
    /// Fetch an invoice the platform issued for a request of ours and store it as it is there.
    async fn adopt(&self, drift: &Drift) -> anyhow::Result<Result<String, String>> {
        let Some(platform) = &self.platform else {
            return Ok(Err("no platform to fetch the invoice from".to_owned()));
        };
        let seller = TaxpayerId::parse(&drift.seller)
            .map_err(|e| anyhow::anyhow!("seller {}: {e}", drift.seller))?;
        let remote = match platform.query_invoice(&seller, &drift.number).await {
            Ok(Some(remote)) => remote,
            Ok(None) => return Ok(Err("the platform no longer has it".to_owned())),
            Err(error) => return Ok(Err(format!("fetching it from the platform: {error}"))),
        };
        let state = match remote.state {
            RemoteState::Normal => InvoiceState::Recorded,
            RemoteState::PartiallyReversed => InvoiceState::PartiallyReversed,
            RemoteState::FullyReversed => InvoiceState::FullyReversed,
        };
        let reason = "issued by the platform for a request of ours: adopted".to_owned();
        let adopted = AdoptedInvoice {
            number: remote.number,
            seller_tax_id: drift.seller.clone(),
            issued_at: remote.issued_at,
            state,
            content_sm3: crate::issuance::content_digest(&remote.content),
            content: remote.content,
            reason: format!("reconciler: {reason}"),
        };
        let now = crate::clock::Clock::now(self.clock.as_ref());
        Ok(if self.store.adopt_invoice(&adopted, now, ACTOR).await? {
            Ok(reason)
        } else {
            Err("its number or request id is already in the store".to_owned())
        })
    }
}

impl Repairs for StoreRepairs {
    async fn repair(&self, drift: &Drift) -> RepairOutcome {
        match self.write_for(drift).await {
            Ok(Ok(done)) => RepairOutcome::Done(done),
            Ok(Err(why)) => RepairOutcome::Failed(why),
            Err(error) => RepairOutcome::Failed(format!("{error:#}")),
        }
    }
}

/// Repairs that are only reported: what a pass would do, without doing it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRun;

impl Repairs for DryRun {
    async fn repair(&self, drift: &Drift) -> RepairOutcome {
        RepairOutcome::Failed(format!(
            "dry run: {} not carried out",
            serde_json::to_string(&drift.repair).unwrap_or_default()
        ))
    }
}

/// The lease a pass holds.
pub const LEASE: &str = "reconcile";

/// Another replica (or command) is running a pass.
#[derive(Debug, thiserror::Error)]
#[error("another reconciliation pass is running: {holder} holds the lease until {until}")]
pub struct LeaseHeld {
    pub holder: String,
    pub until: chrono::DateTime<chrono::Utc>,
}

/// How a stored drift is filed: `critical`, `warning`, or `none` when it is repaired.
pub fn urgency(drift: &Drift) -> &'static str {
    use fapiao_reconciler::diff::{Repair, Urgency};
    match drift.repair {
        Repair::Alert {
            severity: Urgency::Critical,
        } => "critical",
        Repair::Alert {
            severity: Urgency::Warning,
        } => "warning",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::CallError;

    #[test]
    fn only_timeouts_busy_and_broken_connections_are_read_again() {
        let busy = CallError::Busy {
            code: "SYSTEM_BUSY".into(),
            message: "系统繁忙".into(),
        };
        for passing in [
            CallError::Timeout,
            busy,
            CallError::Transport("reset".into()),
        ] {
            assert!(
                matches!(page_error(&passing), PageError::Passing(_)),
                "{passing}"
            );
        }
        let refused = CallError::Refused {
            code: "E001".into(),
            message: "unknown seller".into(),
        };
        for definitive in [
            refused,
            CallError::Protocol {
                code: "SIGN".into(),
            },
        ] {
            assert!(
                matches!(page_error(&definitive), PageError::Refused(_)),
                "{definitive}"
            );
        }
    }

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let example = crate::config::Config::from_toml_str(include_str!(
            "../../../deploy/fapiao.example.toml"
        ))
        .unwrap_or_else(|e| panic!("the example configuration: {e:#}"));
        let documented = example.reconcile;
        let default = ReconcileConfig::default();
        assert_eq!(documented.rules(), default.rules());
        assert_eq!(default.rules().retry, Retry::default());
        assert_eq!(documented.run_attempts, default.run_attempts);
        assert_eq!(documented.resume_after, default.resume_after);
        assert_eq!(documented.lease, default.lease);
    }
}
