//! The issuing writer: one task that takes queued invoices and issues them in batches, one
//! transaction per batch. Batching is what lets SQLite's single writer and a PostgreSQL row lock
//! on the seller's number range keep up with thousands of invoices a second; a batch is whatever
//! queued while the previous one committed, so under light load it is a single invoice and adds
//! no latency.

use super::Shared;
use super::supply::SupplyHandle;
use crate::store::{IssueItem, IssueOutcome};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// One invoice waiting to be issued, and where to send its outcome (`Err` when the batch's
/// transaction failed: nothing of it was written, the caller may retry).
#[derive(Debug)]
pub struct Job {
    pub item: IssueItem,
    pub reply: oneshot::Sender<Result<IssueOutcome, ()>>,
    /// When the service accepted the request, for the issue latency histogram.
    pub accepted: std::time::Instant,
}

/// Start the writer. It stops when every sender of the queue is dropped, after issuing what was
/// queued, so a graceful shutdown loses nothing that was accepted.
pub fn spawn(
    shared: Shared,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    uploads: Arc<Notify>,
    supply: SupplyHandle,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The invoices move into the batch; only the reply channels stay behind.
        let mut items: Vec<IssueItem> = Vec::with_capacity(max_batch);
        let mut replies = Vec::with_capacity(max_batch);
        let mut accepted = Vec::with_capacity(max_batch);
        while let Some(first) = queue.recv().await {
            let mut next = Some(first);
            while let Some(job) = next.take() {
                items.push(job.item);
                replies.push(job.reply);
                accepted.push(job.accepted);
                if items.len() < max_batch {
                    next = queue.try_recv().ok();
                }
            }
            let now = shared.clock.now();
            match shared.store.issue_batch(&items, now).await {
                Ok(outcomes) => {
                    let issued = outcomes
                        .iter()
                        .any(|o| matches!(o, IssueOutcome::Issued(_)));
                    for ((item, outcome), since) in items.iter().zip(&outcomes).zip(&accepted) {
                        if matches!(outcome, IssueOutcome::Issued(_)) {
                            shared.metrics.issued(&item.seller_tax_id, 1);
                            shared.metrics.observe_issue(since.elapsed());
                        }
                    }
                    for (reply, outcome) in replies.drain(..).zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                    if issued {
                        shared.bump();
                        uploads.notify_one();
                        supply.wake();
                    }
                }
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        batch = items.len(),
                        "issuing a batch failed; nothing of it was stored"
                    );
                    for reply in replies.drain(..) {
                        let _ = reply.send(Err(()));
                    }
                }
            }
            items.clear();
            accepted.clear();
        }
        tracing::debug!("issuing writer stopped");
    })
}
