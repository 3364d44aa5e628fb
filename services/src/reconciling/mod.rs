//! The service's side of reconciliation: the store and the tax platform behind the reconciler's
//! `Ledger` and `Listing` traits, and a pass run from the command line.
//!
//! Content is compared like with like: the platform lists the SM3 of the canonical JSON of the
//! content it *received*, so the local side hashes the stored content the same way
//! ([`platform_digest`]), not with the idempotency digest (which normalises decimals first).
//!
//! This module converts and delegates; the rules (what is drift, what repair is safe) are the
//! reconciler's. Repairs are written to the store ([`StoreRepairs`]); a dry run ([`DryRun`])
//! only reports them.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::NaiveDate;
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_reconciler::diff::{
    Drift, LocalInvoice, LocalState, PlatformInvoice, PlatformState, Settings,
};
use fapiao_reconciler::pass::{
    Ledger, Listing, RepairOutcome, Repairs, Report, SourceError, Window, day_start,
};

use crate::platform::{RemoteState, RemoteSummary, TaxPlatform};
use crate::store::{
    DriftWrite, InvoiceState, RepairWrite, RunTotals, Store, StoredInvoice, UploadPhase,
};

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
    /// How long a pass holds the lease that keeps other replicas from running one; longer than
    /// the longest pass.
    #[serde(with = "humantime_serde")]
    pub lease: std::time::Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        let rules = Settings::default();
        Self {
            grace: rules.grace.to_std().unwrap_or_default(),
            stuck_after: rules.stuck_after.to_std().unwrap_or_default(),
            max_reuploads: rules.max_reuploads,
            lease: std::time::Duration::from_secs(600),
        }
    }
}

impl ReconcileConfig {
    /// The comparison's settings.
    pub fn settings(&self) -> Settings {
        let delta = |d: std::time::Duration| {
            chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
        };
        Settings {
            grace: delta(self.grace),
            stuck_after: delta(self.stuck_after),
            max_reuploads: self.max_reuploads,
        }
    }
}

/// Rows asked for per listing page.
const PAGE_SIZE: u32 = 1000;

/// SM3 of the content as the platform hashes what it receives: its canonical JSON.
pub fn platform_digest(content: &InvoiceContent) -> String {
    let json = serde_json::to_vec(content).unwrap_or_default();
    crate::platform::protocol::sm3_hex(&json)
}

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
pub fn local_invoice(stored: &StoredInvoice, reconcile_attempts: u32) -> LocalInvoice {
    let content = &stored.content;
    LocalInvoice {
        number: stored.number,
        seller: stored.seller_tax_id.clone(),
        request_id: stored.request_id.clone(),
        issued_at: stored.issued_at,
        colour: content.colour(),
        state: local_state(stored.state),
        state_since: stored.state_changed_at,
        buyer_name: content.buyer.party.name.clone(),
        buyer_tax_id: content
            .buyer
            .party
            .tax_id
            .as_ref()
            .map(|id| id.as_str().to_owned()),
        amount: content.totals.amount,
        tax: content.totals.tax,
        content_sm3: platform_digest(content),
        reconcile_attempts,
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
            .issued_between(seller, window.from, window.to)
            .await
            .map_err(|e| SourceError(format!("{e:#}")))?;
        Ok(rows
            .iter()
            .map(|(stored, attempts)| local_invoice(stored, *attempts))
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

/// The platform's day listings, every page.
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
    async fn list_day(
        &self,
        seller: &str,
        day: NaiveDate,
    ) -> Result<Vec<PlatformInvoice>, SourceError> {
        let id =
            TaxpayerId::parse(seller).map_err(|e| SourceError(format!("seller {seller}: {e}")))?;
        let mut rows = Vec::new();
        let mut page = Some(0);
        while let Some(index) = page {
            let listed = self
                .platform
                .list_invoices(&id, day, index, PAGE_SIZE)
                .await
                .map_err(|e| SourceError(format!("listing page {index}: {e}")))?;
            rows.extend(
                listed
                    .items
                    .into_iter()
                    .map(|r| platform_invoice(seller, r)),
            );
            page = listed.next_page.filter(|next| *next > index);
        }
        Ok(rows)
    }
}

fn stored_state(state: LocalState) -> InvoiceState {
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
}

/// Who the events of repairs name.
pub const ACTOR: &str = "reconciler";

impl StoreRepairs {
    async fn write_for(&self, drift: &Drift) -> anyhow::Result<Result<String, String>> {
        use fapiao_reconciler::diff::Repair;
        let Some(seen) = drift.local_state else {
            return Ok(Err(
                "adopting an invoice only the platform holds is not supported yet".to_owned(),
            ));
        };
        let Some(stored) = self.store.get_invoice(&drift.number).await? else {
            return Ok(Err("the invoice is no longer in the store".to_owned()));
        };
        let expected = stored_state(seen);
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
                "its upload is stuck: asking the platform, then uploading again".to_owned(),
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

/// Record a finished pass with its drifts.
pub async fn record(
    store: &Store,
    run: i64,
    report: &Report,
    sellers: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let found: Vec<DriftWrite> = report
        .drifts
        .iter()
        .map(|handled| DriftWrite {
            invoice_number: handled.drift.number.to_string(),
            seller_tax_id: handled.drift.seller.clone(),
            issued_at: handled.drift.issued_at,
            class: handled.drift.class.as_str().to_owned(),
            urgency: urgency(&handled.drift).to_owned(),
            detail: handled.drift.detail.clone(),
            repair: serde_json::to_string(&handled.drift.repair).unwrap_or_default(),
            outcome: serde_json::to_string(&handled.outcome).unwrap_or_default(),
        })
        .collect();
    let totals = RunTotals {
        complete: report.complete(),
        local: report.local,
        remote: report.remote,
        in_agreement: report.in_agreement,
        gaps_json: serde_json::to_string(&report.gaps).unwrap_or_default(),
    };
    store
        .finish_run(
            run,
            &totals,
            &found,
            (report.window.from, report.window.to),
            sellers,
            now,
        )
        .await
}

/// What `fapiao reconcile` prints: the pass's report with its totals.
#[derive(Debug, serde::Serialize)]
pub struct PrintedReport<'a> {
    pub run_id: i64,
    pub dry_run: bool,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub complete: bool,
    pub drifts_by_class: std::collections::BTreeMap<&'static str, u64>,
    #[serde(flatten)]
    pub report: &'a Report,
}

/// Run one pass over `[from, to]` (China-time days, inclusive) against the configured store and
/// platform, repairing what the plan allows unless `dry_run`, and write the JSON report to `out`.
/// Re-uploads are queued for the upload worker of a running (or the next) `fapiao serve`. With the
/// embedded sandbox, the platform's state is read from its journal: run it while `fapiao serve` is
/// stopped.
pub async fn once(
    config: &crate::config::Config,
    from: NaiveDate,
    to: NaiveDate,
    dry_run: bool,
    progress: bool,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<Report> {
    use anyhow::Context as _;
    if to < from {
        anyhow::bail!("--to is before --from");
    }
    let store = config.open_store(4).await?;
    let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
    let window = Window {
        from: day_start(from),
        to: day_start(to.succ_opt().context("--to is too late")?),
    };
    let sellers: Vec<String> = config.sellers.iter().map(|s| s.tax_id.clone()).collect();
    let ledger = StoreLedger {
        store: store.clone(),
        sellers: sellers.clone(),
    };
    let holder = format!(
        "cli:{}:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        std::process::id()
    );
    let started = crate::clock::Clock::now(clock.as_ref());
    let until = started
        + chrono::TimeDelta::from_std(config.reconcile.lease).unwrap_or(chrono::TimeDelta::MAX);
    if let Err((holder, until)) = store.take_lease(LEASE, &holder, started, until).await? {
        store.close().await;
        return Err(LeaseHeld { holder, until }.into());
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let (platform, _, sandbox) = match crate::server::connect_platform(config, &clock).await {
        Ok(connected) => connected,
        Err(error) => {
            store.release_lease(LEASE, &holder).await?;
            return Err(error);
        }
    };
    let run = store
        .start_run(
            "manual",
            &holder,
            dry_run,
            (window.from, window.to),
            started,
        )
        .await?;
    let bar = if progress {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let now = crate::clock::Clock::now(clock.as_ref());
    let listing = PlatformListing { platform };
    let settings = config.reconcile.settings();
    let show = |p: fapiao_reconciler::pass::Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("{} invoices compared", p.compared));
    };
    let report = if dry_run {
        let repairs = DryRun;
        fapiao_reconciler::pass::reconcile(
            window, &ledger, &listing, &repairs, &settings, now, &show,
        )
        .await
    } else {
        let repairs = StoreRepairs {
            store: store.clone(),
            clock: clock.clone(),
        };
        fapiao_reconciler::pass::reconcile(
            window, &ledger, &listing, &repairs, &settings, now, &show,
        )
        .await
    };
    bar.finish_and_clear();
    let finished = crate::clock::Clock::now(clock.as_ref());
    let recorded = record(&store, run, &report, &sellers, finished).await;
    store.release_lease(LEASE, &holder).await?;
    recorded?;
    if let Some((stop, task)) = sandbox {
        let _ = stop.send(());
        let _ = task.await;
    }
    store.close().await;
    let printed = PrintedReport {
        run_id: run,
        dry_run,
        finished_at: finished,
        complete: report.complete(),
        drifts_by_class: report.by_class(),
        report: &report,
    };
    serde_json::to_writer_pretty(&mut *out, &printed).context("writing the report")?;
    writeln!(out).context("writing the report")?;
    Ok(report)
}
