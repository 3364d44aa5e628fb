//! Running one pass against the store and the platform, and recording it: shared by the command
//! line ([`once`]) and the passes `fapiao serve` runs ([`super::schedule`]).
//!
//! A pass runs only while its process holds the `reconcile` lease ([`Passes::take_lease`]), so two
//! replicas never repair the same invoice at once. Its run row says what happened: `succeeded` when
//! every seller-day was compared and the result recorded, `failed` (with the reason) otherwise.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use fapiao_reconciler::pass::{Progress, RepairOutcome, Report, Window, day_start};

use super::{
    DryRun, LEASE, LeaseHeld, PlatformListing, ReconcileConfig, StoreLedger, StoreRepairs, urgency,
};
use crate::clock::SharedClock;
use crate::platform::TaxPlatform;
use crate::store::{DriftWrite, RunTotals, Store};

/// What a pass needs, held by whoever runs passes in this process.
#[derive(Debug, Clone)]
pub struct Passes {
    pub store: Store,
    pub platform: Arc<dyn TaxPlatform>,
    pub clock: SharedClock,
    pub config: ReconcileConfig,
    /// Every configured seller, compared when a run names none.
    pub sellers: Vec<String>,
    /// Who this process is, for the lease and the run rows (`serve:<host>:<pid>`, `cli:…`).
    pub holder: String,
    /// Where pass outcomes and drift counts are exported, when they are.
    pub metrics: Option<crate::metrics::Metrics>,
}

impl Passes {
    /// The injected clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Take (or extend) the lease for one pass; `Err` names the process holding it.
    pub async fn take_lease(&self) -> anyhow::Result<Result<(), LeaseHeld>> {
        let now = self.now();
        let until = self.config.lease_until(now);
        Ok(self
            .store
            .take_lease(LEASE, &self.holder, now, until)
            .await?
            .map_err(|(holder, until)| LeaseHeld { holder, until }))
    }

    /// Give the lease back.
    pub async fn release_lease(&self) -> anyhow::Result<()> {
        self.store.release_lease(LEASE, &self.holder).await
    }

    /// Compare the window for `sellers`, repair what the plan allows unless `dry_run`, and record
    /// the run `run` (already started) with its drifts. The caller holds the lease.
    pub async fn execute(
        &self,
        run: i64,
        window: Window,
        sellers: &[String],
        dry_run: bool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<Report> {
        let ledger = StoreLedger {
            store: self.store.clone(),
            sellers: sellers.to_vec(),
        };
        let listing = PlatformListing {
            platform: self.platform.clone(),
        };
        let settings = self.config.settings();
        let started = self.now();
        let report = if dry_run {
            fapiao_reconciler::pass::reconcile(
                window, &ledger, &listing, &DryRun, &settings, started, progress,
            )
            .await
        } else {
            let repairs = StoreRepairs {
                store: self.store.clone(),
                clock: self.clock.clone(),
                platform: Some(self.platform.clone()),
            };
            fapiao_reconciler::pass::reconcile(
                window, &ledger, &listing, &repairs, &settings, started, progress,
            )
            .await
        };
        let finished = self.now();
        if let Err(error) = record(&self.store, run, &report, sellers, dry_run, finished).await {
            let why = format!("recording the pass failed: {error:#}");
            if let Err(also) = self.store.fail_run(run, &why, finished).await {
                tracing::error!(
                    run,
                    error = format!("{also:#}"),
                    "cannot mark the run failed"
                );
            }
            self.exported(&report, false, started, finished).await;
            return Err(error);
        }
        self.exported(&report, report.complete(), started, finished)
            .await;
        Ok(report)
    }

    /// Hand the pass's outcome to the metrics, when they are exported.
    async fn exported(
        &self,
        report: &Report,
        succeeded: bool,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        for (class, count) in report.by_class() {
            metrics.drifts_found(class, count);
        }
        let took = finished
            .signed_duration_since(started)
            .to_std()
            .unwrap_or_default();
        metrics.pass_finished(succeeded, took, finished);
        match self.store.open_drift_counts().await {
            Ok(counts) => {
                let open: Vec<(&str, &str, u64)> = counts
                    .iter()
                    .map(|(class, urgency, n)| (class.as_str(), urgency.as_str(), *n))
                    .collect();
                metrics.set_open_drifts(&open);
            }
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "cannot count open drifts for the metrics"
            ),
        }
    }
}

/// Record a finished pass with its drifts: `failed` when a seller-day could not be compared.
pub async fn record(
    store: &Store,
    run: i64,
    report: &Report,
    sellers: &[String],
    dry_run: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let attempted = |outcome: &RepairOutcome| {
        !dry_run && matches!(outcome, RepairOutcome::Done(_) | RepairOutcome::Failed(_))
    };
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
            repair_attempted: attempted(&handled.outcome),
            local_state: handled.drift.local_state.map(super::stored_state),
            platform_state: handled
                .drift
                .platform_state
                .map(|state| state.as_str().to_owned()),
        })
        .collect();
    let error = report.gaps.first().map(|first| {
        format!(
            "{} seller-day(s) could not be compared; the first, seller {} {}: {}",
            report.gaps.len(),
            first.seller,
            first.day.map(|d| d.to_string()).unwrap_or_default(),
            first.error
        )
    });
    let totals = RunTotals {
        complete: report.complete(),
        error,
        repairs_attempted: u64::try_from(found.iter().filter(|d| d.repair_attempted).count())
            .unwrap_or(u64::MAX),
        repairs_succeeded: report
            .drifts
            .iter()
            .filter(|h| !dry_run && matches!(h.outcome, RepairOutcome::Done(_)))
            .count()
            .try_into()
            .unwrap_or(u64::MAX),
        drifts_by_class: serde_json::to_string(&report.by_class()).unwrap_or_default(),
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
    pub finished_at: DateTime<Utc>,
    pub complete: bool,
    pub drifts_by_class: std::collections::BTreeMap<&'static str, u64>,
    #[serde(flatten)]
    pub report: &'a Report,
}

/// Run one pass over `[from, to]` (China-time days, inclusive) against the configured store and
/// platform, repairing what the plan allows unless `dry_run`, and write the JSON report to `out`.
/// Re-uploads are queued for the upload worker of a running (or the next) `fapiao serve`. With the
/// embedded sandbox, the platform's state is read from its journal: run it while `fapiao serve` is
/// stopped, or ask the running server with `TriggerReconciliation`.
pub async fn once(
    config: &crate::config::Config,
    from: NaiveDate,
    to: NaiveDate,
    dry_run: bool,
    progress: bool,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<Report> {
    if to < from {
        anyhow::bail!("--to is before --from");
    }
    let window = Window {
        from: day_start(from),
        to: day_start(to.succ_opt().context("--to is too late")?),
    };
    let store = config.open_store(4).await?;
    let clock: SharedClock = Arc::new(crate::clock::SystemClock);
    let holder = format!(
        "cli:{}:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        std::process::id()
    );
    let started = clock.now();
    let until = config.reconcile.lease_until(started);
    if let Err((holder, until)) = store.take_lease(LEASE, &holder, started, until).await? {
        store.close().await;
        return Err(LeaseHeld { holder, until }.into());
    }
    let connected = async {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        crate::server::connect_platform(config, &clock).await
    };
    let (platform, _, sandbox) = match connected.await {
        Ok(connected) => connected,
        Err(error) => {
            store.release_lease(LEASE, &holder).await?;
            return Err(error);
        }
    };
    let passes = Passes {
        store: store.clone(),
        platform,
        clock: clock.clone(),
        config: config.reconcile.clone(),
        sellers: config.sellers.iter().map(|s| s.tax_id.clone()).collect(),
        holder,
        metrics: None,
    };
    let run = store
        .start_run(
            "manual",
            &passes.holder,
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
    let show = |p: Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("{} invoices compared", p.compared));
    };
    let result = passes
        .execute(run, window, &passes.sellers, dry_run, &show)
        .await;
    bar.finish_and_clear();
    passes.release_lease().await?;
    let report = result?;
    if let Some((stop, task)) = sandbox {
        let _ = stop.send(());
        let _ = task.await;
    }
    store.close().await;
    let printed = PrintedReport {
        run_id: run,
        dry_run,
        finished_at: passes.now(),
        complete: report.complete(),
        drifts_by_class: report.by_class(),
        report: &report,
    };
    serde_json::to_writer_pretty(&mut *out, &printed).context("writing the report")?;
    writeln!(out).context("writing the report")?;
    Ok(report)
}
