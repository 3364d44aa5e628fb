//! Running one pass against the store and the platform, and recording it: shared by the command
//! line ([`once`]) and the passes `fapiao serve` runs ([`super::schedule`]).
//!
//! A pass runs only while its process holds the `reconcile` lease ([`Passes::take_lease`], renewed
//! while the pass runs), so two replicas never repair the same invoice at once. Each compared
//! seller-day is kept as it is done ([`super::progress`]); its run row says what happened:
//! `succeeded` when every seller-day was compared and the result recorded, `queued` again when
//! seller-days are left and the run may try again (its next attempt skips the days done), `failed`
//! (with the reason) otherwise.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use fapiao_reconciler::pass::{Progress, Report, Sources, Window, day_start, reconcile};

use super::progress::{LeaseKeeper, StoreCheckpoints};
use super::{
    DryRun, LEASE, LeaseHeld, PlatformListing, ReconcileConfig, StoreLedger, StoreRepairs,
    TimerPause,
};
use crate::clock::SharedClock;
use crate::platform::TaxPlatform;
use crate::store::{AttemptEnd, RunOutcome, Store};

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
    /// the attempt of run `run` (already started): each compared seller-day as it is done, then
    /// the run's totals and what it became (`if_incomplete` says whether a run with seller-days
    /// left may be queued for another attempt). The caller holds the lease.
    pub async fn execute(
        &self,
        run: i64,
        window: Window,
        sellers: &[String],
        dry_run: bool,
        if_incomplete: IfIncomplete,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<Report> {
        let ledger = StoreLedger {
            store: self.store.clone(),
            sellers: sellers.to_vec(),
        };
        let listing = PlatformListing {
            platform: self.platform.clone(),
        };
        let lease = LeaseKeeper::start(self);
        let checkpoints = StoreCheckpoints {
            passes: self,
            run,
            dry_run,
            lease: &lease,
        };
        let rules = self.config.rules();
        let started = self.now();
        let report = if dry_run {
            let sources = Sources {
                ledger: &ledger,
                listing: &listing,
                repairs: &DryRun,
                checkpoints: &checkpoints,
                pause: &TimerPause,
            };
            reconcile(window, &sources, &rules, started, progress).await
        } else {
            let repairs = StoreRepairs {
                store: self.store.clone(),
                clock: self.clock.clone(),
                platform: Some(self.platform.clone()),
            };
            let sources = Sources {
                ledger: &ledger,
                listing: &listing,
                repairs: &repairs,
                checkpoints: &checkpoints,
                pause: &TimerPause,
            };
            reconcile(window, &sources, &rules, started, progress).await
        };
        drop(lease);
        let finished = self.now();
        let attempts_allowed = match if_incomplete {
            IfIncomplete::Fail => 0,
            IfIncomplete::TryAgain => self.config.run_attempts,
        };
        let ended = end_attempt(
            &self.store,
            run,
            &report,
            sellers,
            attempts_allowed,
            finished,
        )
        .await;
        match ended {
            Ok(outcome) => {
                self.exported(&report, outcome == RunOutcome::Succeeded, started, finished)
                    .await;
                Ok(report)
            }
            Err(error) => {
                let why = format!("recording the pass failed: {error:#}");
                if let Err(also) = self.store.fail_run(run, &why, finished).await {
                    tracing::error!(
                        run,
                        error = format!("{also:#}"),
                        "cannot mark the run failed"
                    );
                }
                self.exported(&report, false, started, finished).await;
                Err(error)
            }
        }
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

/// Whether a run that left seller-days uncompared is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfIncomplete {
    /// It fails (the command line, which reports and exits).
    Fail,
    /// It is queued for another attempt while `reconcile.run_attempts` allows (`fapiao serve`).
    TryAgain,
}

/// End an attempt of `run` with `report`: succeeded when every seller-day is done, otherwise
/// queued again while fewer than `attempts_allowed` attempts were made, otherwise failed.
pub async fn end_attempt(
    store: &Store,
    run: i64,
    report: &Report,
    sellers: &[String],
    attempts_allowed: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<RunOutcome> {
    let gaps = report.gaps.first().map(|first| {
        format!(
            "{} seller-day(s) could not be compared; the first, seller {} {}: {}",
            report.gaps.len(),
            first.seller,
            first.day.map(|d| d.to_string()).unwrap_or_default(),
            first.error
        )
    });
    let error = match (&report.stopped, gaps) {
        (Some(stopped), Some(gaps)) => Some(format!("{stopped}; {gaps}")),
        (Some(stopped), None) => Some(stopped.clone()),
        (None, gaps) => gaps,
    };
    let end = AttemptEnd {
        complete: report.complete(),
        error,
        gaps_json: serde_json::to_string(&report.gaps).unwrap_or_default(),
        attempts_allowed,
    };
    store
        .end_attempt(
            run,
            &end,
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
        crate::platform::connect::connect(config, &clock).await
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
        .execute(
            run,
            window,
            &passes.sellers,
            dry_run,
            IfIncomplete::Fail,
            &show,
        )
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
