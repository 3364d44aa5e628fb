//! Passes inside `fapiao serve`: a thin cron schedule (tokio-cron-scheduler) that asks for the
//! recent pass and the nightly pass of the previous day, operators' requests
//! (`TriggerReconciliation`), and one worker that runs them one after another.
//!
//! The schedule only says *when*; the worker decides the window from the injected clock
//! ([`Scheduled::window`]), takes the lease, runs the pass and records it. Every replica runs the
//! same schedule: the lease lets one pass run at a time, and a scheduled pass that another
//! replica finished while this one waited for the lease is skipped. Requested passes are stored
//! as `queued` runs before the worker sees them, so a request survives a restart: at start the
//! worker takes up every queued run. A run that left seller-days uncompared (a day whose listing
//! could not be read, or a process that stopped part way and left it `running`) is queued again
//! and continues from the seller-days not done, up to `reconcile.run_attempts` attempts: an
//! incomplete attempt's run after `reconcile.resume_after`, a run left `running` as soon as this
//! worker holds the lease (a pass runs only under the lease, so while this process holds it no
//! other pass is running).

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Days, Utc};
use fapiao_reconciler::pass::{Window, day_start};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};

use super::runner::{IfIncomplete, Passes};
use crate::clock::china_offset;
use crate::store::{RunRequest, Scope, StoredRun};

/// Which scheduled pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// The last `recent_window` up to now.
    Recent,
    /// The whole previous China day.
    Daily,
}

impl Scheduled {
    /// The run kind stored for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduled::Recent => "recent",
            Scheduled::Daily => "daily",
        }
    }

    /// The window this pass compares when it starts at `now`.
    pub fn window(self, now: DateTime<Utc>, recent: std::time::Duration) -> Window {
        match self {
            Scheduled::Recent => Window {
                from: now
                    .checked_sub_signed(super::delta(recent))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                to: now,
            },
            Scheduled::Daily => {
                let today = now.with_timezone(&china_offset()).date_naive();
                let yesterday = today.checked_sub_days(Days::new(1)).unwrap_or(today);
                Window {
                    from: day_start(yesterday),
                    to: day_start(today),
                }
            }
        }
    }
}

/// Work for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A run stored as `queued` (an operator's request, one left from before a restart, or one
    /// taken up again for the seller-days it has not done).
    Queued(i64),
    /// The schedule fired at `at`.
    Scheduled { kind: Scheduled, at: DateTime<Utc> },
    /// Take up the runs a stopped process left `running` (asked for at start when there are any;
    /// done under the lease before every job as well).
    TakeUp,
}

/// Asks the worker for passes; held by the gRPC service.
#[derive(Debug, Clone)]
pub struct Reconciler {
    passes: Arc<Passes>,
    jobs: mpsc::Sender<Job>,
}

impl Reconciler {
    /// The sellers a pass compares when a request names none.
    pub fn sellers(&self) -> &[String] {
        &self.passes.sellers
    }

    /// Store the request as a queued run and hand it to the worker; returns the run as it was
    /// accepted (`queued`). A small window may be compared before the caller reads the answer:
    /// callers follow the run by its id.
    pub async fn request(&self, request: &RunRequest) -> anyhow::Result<StoredRun> {
        let store = &self.passes.store;
        let run = store.queue_run(request, self.passes.now()).await?;
        let queued = store
            .get_run(&Scope::unrestricted(), run)
            .await?
            .context("the queued run disappeared")?;
        self.jobs
            .send(Job::Queued(run))
            .await
            .context("the reconciliation worker has stopped")?;
        Ok(queued)
    }
}

/// Start the worker (and, when `schedule` is on, the cron schedule feeding it). The schedule's
/// expressions are checked here, so a bad one stops the service before it listens.
pub async fn start(
    passes: Passes,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Reconciler, Vec<JoinHandle<()>>)> {
    let passes = Arc::new(passes);
    let (jobs, jobs_rx) = mpsc::channel(64);
    let mut tasks = Vec::new();
    if passes.config.schedule {
        let scheduler = schedule(&passes, jobs.clone()).await?;
        let mut stopped = stop.clone();
        tasks.push(tokio::spawn(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            let mut scheduler = scheduler;
            if let Err(error) = scheduler.shutdown().await {
                tracing::warn!(%error, "stopping the reconciliation schedule");
            }
        }));
    }
    tasks.push(tokio::spawn(work(passes.clone(), jobs_rx, stop)));
    Ok((Reconciler { passes, jobs }, tasks))
}

async fn schedule(passes: &Arc<Passes>, jobs: mpsc::Sender<Job>) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new()
        .await
        .context("starting the reconciliation schedule")?;
    for (kind, expression) in [
        (Scheduled::Recent, passes.config.recent.as_str()),
        (Scheduled::Daily, passes.config.daily.as_str()),
    ] {
        let jobs = jobs.clone();
        let clock = passes.clock.clone();
        let job = CronJob::new_async_tz(expression, china_offset(), move |_, _| {
            let jobs = jobs.clone();
            let at = clock.now();
            Box::pin(async move {
                // A full queue means passes are already waiting: this one would repeat them.
                if jobs.try_send(Job::Scheduled { kind, at }).is_err() {
                    tracing::debug!(kind = kind.as_str(), "a scheduled pass is already waiting");
                }
            })
        })
        .with_context(|| {
            format!(
                "reconcile.{}: {expression:?} is not a cron expression with seconds \
                 (sec min hour day month weekday)",
                kind.as_str()
            )
        })?;
        scheduler
            .add(job)
            .await
            .context("adding a scheduled pass")?;
    }
    scheduler
        .start()
        .await
        .context("starting the reconciliation schedule")?;
    Ok(scheduler)
}

async fn work(passes: Arc<Passes>, mut jobs: mpsc::Receiver<Job>, mut stop: watch::Receiver<bool>) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    // Runs to take up again once their time comes: after an attempt that left seller-days.
    let mut later: Vec<(tokio::time::Instant, i64)> = Vec::new();
    match passes.store.any_run_running().await {
        Ok(true) => pending.push_back(Job::TakeUp),
        Ok(false) => {}
        Err(error) => tracing::warn!(error = format!("{error:#}"), "reading unfinished runs"),
    }
    match passes.store.queued_runs().await {
        Ok(runs) => pending.extend(runs.iter().map(|run| Job::Queued(run.id))),
        Err(error) => tracing::warn!(error = format!("{error:#}"), "reading queued runs"),
    }
    loop {
        let now = tokio::time::Instant::now();
        later.retain(|&(due, run)| {
            if due <= now {
                pending.push_back(Job::Queued(run));
            }
            due > now
        });
        let next_due = later.iter().map(|&(due, _)| due).min();
        let job = match pending.pop_front() {
            Some(job) => job,
            None => tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
                () = sleep_until(next_due) => continue,
                _ = stop.wait_for(|stop| *stop) => break,
            },
        };
        if *stop.borrow() {
            break;
        }
        if !hold_lease(&passes, &mut stop).await {
            break;
        }
        // A pass runs only under the lease, and this process holds it: a run still marked
        // running belongs to a process that stopped (or lost the lease) part way.
        match passes
            .store
            .take_up_abandoned_runs(passes.config.run_attempts, passes.now())
            .await
        {
            Ok(runs) => {
                if !runs.is_empty() {
                    tracing::warn!(?runs, "taking up reconciliation runs left unfinished");
                }
                pending.extend(runs.into_iter().map(Job::Queued));
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "taking up unfinished runs"),
        }
        match run(&passes, job).await {
            Ok(Some(again)) => {
                let due = tokio::time::Instant::now() + passes.config.resume_after;
                later.push((due, again));
            }
            Ok(None) => {}
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                ?job,
                "a reconciliation pass failed"
            ),
        }
        if let Err(error) = passes.release_lease().await {
            tracing::warn!(
                error = format!("{error:#}"),
                "releasing the reconciliation lease"
            );
        }
    }
}

/// Sleep until `due`, or for ever without one.
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Wait until this process holds the lease; `false` when the service stops first.
async fn hold_lease(passes: &Passes, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        match passes.take_lease().await {
            Ok(Ok(())) => return true,
            Ok(Err(held)) => tracing::debug!(%held, "waiting for the reconciliation lease"),
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "cannot take the reconciliation lease"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(passes.config.lease_retry) => {}
            _ = stop.wait_for(|stop| *stop) => return false,
        }
    }
}

/// Run one job; `Some(run)` when the run is queued for another attempt.
async fn run(passes: &Passes, job: Job) -> anyhow::Result<Option<i64>> {
    let store = &passes.store;
    let now = passes.now();
    let (run, window, sellers, dry_run) = match job {
        Job::TakeUp => return Ok(None),
        Job::Queued(id) => {
            let Some(queued) = store.get_run(&Scope::unrestricted(), id).await? else {
                return Ok(None);
            };
            // Another replica may have started it while this one waited for the lease.
            if !store.begin_run(id, &passes.holder, now).await? {
                return Ok(None);
            }
            let window = Window {
                from: queued.window_from,
                to: queued.window_to,
            };
            let sellers = queued.sellers.unwrap_or(passes.sellers.clone());
            (id, window, sellers, queued.dry_run)
        }
        Job::Scheduled { kind, at } => {
            if store.pass_succeeded_since(kind.as_str(), at).await? {
                return Ok(None);
            }
            let window = kind.window(now, passes.config.recent_window);
            let id = store
                .start_run(
                    kind.as_str(),
                    &passes.holder,
                    false,
                    (window.from, window.to),
                    now,
                )
                .await?;
            (id, window, passes.sellers.clone(), false)
        }
    };
    let report = passes
        .execute(
            run,
            window,
            &sellers,
            dry_run,
            IfIncomplete::TryAgain,
            &|_| {},
        )
        .await?;
    let level_drifts = report.drifts.len();
    if level_drifts > 0 || !report.complete() {
        tracing::warn!(
            run,
            drifts = level_drifts,
            gaps = report.gaps.len(),
            resumed = report.resumed,
            page_retries = report.page_retries,
            stopped = report.stopped.as_deref().unwrap_or(""),
            compared = report.local,
            "reconciliation pass found drift or left seller-days"
        );
    } else {
        tracing::info!(
            run,
            compared = report.local,
            resumed = report.resumed,
            page_retries = report.page_retries,
            "reconciliation pass in agreement"
        );
    }
    let again = store
        .get_run(&Scope::unrestricted(), run)
        .await?
        .is_some_and(|stored| stored.status == "queued");
    Ok(again.then_some(run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_daily_pass_covers_the_previous_china_day() {
        // 2026-11-22 01:30 in China is 2026-11-21 17:30 UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 17, 30, 0).unwrap();
        let window = Scheduled::Daily.window(now, std::time::Duration::from_secs(7200));
        assert_eq!(
            window.from,
            Utc.with_ymd_and_hms(2026, 11, 20, 16, 0, 0).unwrap()
        );
        assert_eq!(
            window.to,
            Utc.with_ymd_and_hms(2026, 11, 21, 16, 0, 0).unwrap()
        );
    }

    #[test]
    fn the_recent_pass_looks_back_from_now() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 17, 30, 0).unwrap();
        let window = Scheduled::Recent.window(now, std::time::Duration::from_secs(7200));
        assert_eq!(
            window.from,
            Utc.with_ymd_and_hms(2026, 11, 21, 15, 30, 0).unwrap()
        );
        assert_eq!(window.to, now);
    }
}
