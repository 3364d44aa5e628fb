//! A run's progress as a pass keeps it: each compared seller-day goes to the store with its
//! drifts ([`StoreCheckpoints`]) as soon as it is done, so that the run's next attempt continues
//! from the seller-days not done; and the lease, renewed while the pass runs ([`LeaseKeeper`]),
//! without which a pass keeps nothing more and stops.
//!
//! It converts and delegates: which days to skip and when to stop is the reconciler's pass.

use std::sync::{Arc, Mutex, PoisonError};

use fapiao_reconciler::pass::{
    Checkpoints, DoneDay, Handled, RepairOutcome, SellerDay, SourceError,
};
use tokio::task::JoinHandle;

use super::runner::Passes;
use super::{stored_state, urgency};
use crate::store::{DriftWrite, SellerDayWrite};

/// One drift a pass handled, as the store records it.
pub fn drift_write(handled: &Handled, dry_run: bool) -> DriftWrite {
    DriftWrite {
        invoice_number: handled.drift.number.to_string(),
        seller_tax_id: handled.drift.seller.clone(),
        issued_at: handled.drift.issued_at,
        class: handled.drift.class.as_str().to_owned(),
        urgency: urgency(&handled.drift).to_owned(),
        detail: handled.drift.detail.clone(),
        repair: serde_json::to_string(&handled.drift.repair).unwrap_or_default(),
        outcome: serde_json::to_string(&handled.outcome).unwrap_or_default(),
        repair_attempted: repair_attempted(&handled.outcome, dry_run),
        local_state: handled.drift.local_state.map(stored_state),
        platform_state: handled
            .drift
            .platform_state
            .map(|state| state.as_str().to_owned()),
    }
}

/// A dry run attempts nothing; otherwise a repair was attempted unless the plan was an alert.
fn repair_attempted(outcome: &RepairOutcome, dry_run: bool) -> bool {
    !dry_run && matches!(outcome, RepairOutcome::Done(_) | RepairOutcome::Failed(_))
}

/// A compared seller-day as the store keeps it.
pub fn seller_day_write(day: &SellerDay, dry_run: bool) -> SellerDayWrite {
    let drifts: Vec<DriftWrite> = day
        .drifts
        .iter()
        .map(|handled| drift_write(handled, dry_run))
        .collect();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    SellerDayWrite {
        seller_tax_id: day.seller.clone(),
        day: day.day,
        local: day.local,
        remote: day.remote,
        in_agreement: day.in_agreement,
        repairs_attempted: count(drifts.iter().filter(|d| d.repair_attempted).count()),
        repairs_succeeded: count(
            day.drifts
                .iter()
                .filter(|h| !dry_run && matches!(h.outcome, RepairOutcome::Done(_)))
                .count(),
        ),
        drifts,
    }
}

/// The run's seller-days, kept in the store while this process holds the lease.
#[derive(Debug)]
pub struct StoreCheckpoints<'a> {
    pub passes: &'a Passes,
    pub run: i64,
    pub dry_run: bool,
    pub lease: &'a LeaseKeeper,
}

impl Checkpoints for StoreCheckpoints<'_> {
    async fn done_days(&self) -> Result<Vec<DoneDay>, SourceError> {
        let days = self
            .passes
            .store
            .done_seller_days(self.run)
            .await
            .map_err(|e| SourceError(format!("{e:#}")))?;
        Ok(days
            .into_iter()
            .map(|d| DoneDay {
                seller: d.seller_tax_id,
                day: d.day,
                compared: d.compared,
            })
            .collect())
    }

    async fn day_done(&self, day: &SellerDay) -> Result<(), SourceError> {
        if let Some(holder) = self.lease.lost_to() {
            return Err(SourceError(format!(
                "the reconciliation lease passed to {holder}"
            )));
        }
        let write = seller_day_write(day, self.dry_run);
        self.passes
            .store
            .keep_seller_day(self.run, &write, self.passes.now())
            .await
            .map_err(|e| SourceError(format!("{e:#}")))
    }
}

/// Renews this process's reconciliation lease every third of its length while a pass runs, and
/// notes who took it if another process did (the lease had expired meanwhile). Stops when
/// dropped.
#[derive(Debug)]
pub struct LeaseKeeper {
    lost_to: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Start renewing the lease `passes` holds.
    pub fn start(passes: &Passes) -> Self {
        let lost_to = Arc::new(Mutex::new(None));
        let noted = lost_to.clone();
        let passes = passes.clone();
        let every = (passes.config.lease / 3).max(std::time::Duration::from_millis(100));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match passes.take_lease().await {
                    Ok(Ok(())) => {}
                    Ok(Err(held)) => {
                        tracing::warn!(%held, "the reconciliation lease passed to another process");
                        *noted.lock().unwrap_or_else(PoisonError::into_inner) = Some(held.holder);
                        return;
                    }
                    Err(error) => tracing::warn!(
                        error = format!("{error:#}"),
                        "cannot renew the reconciliation lease"
                    ),
                }
            }
        });
        Self { lost_to, task }
    }

    /// Who holds the lease now, if it is no longer this process's.
    pub fn lost_to(&self) -> Option<String> {
        self.lost_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
