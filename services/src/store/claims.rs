//! Taking back, at start, the claims an instance held when it stopped without writing their
//! outcome (a crash, `kill -9`, a lost connection at the end).
//!
//! Upload and archive claims push the work's due time forward by a lease and name the claiming
//! instance (`upload_claimed_by`, `archive_claimed_by`). An instance that starts again under the
//! same identity knows nobody works on those claims any more — their holder was itself — so it
//! makes them due now instead of waiting out the lease. Claims under other names are left alone:
//! their holder may be alive and busy with them.
//!
//! Red-letter forms are not claimed (the follow-up reads what is due and files again under the
//! form's request id), so they have nothing to take back.

use super::{Store, micros};
use anyhow::Context;
use chrono::{DateTime, Utc};

/// How many claims an instance took back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TakenBack {
    pub uploads: u64,
    pub archives: u64,
}

impl Store {
    /// Make every claim `owner` still holds due at `now` and end it. Run before the workers
    /// start, so nothing of this process holds a claim yet.
    pub async fn take_back_claims(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<TakenBack> {
        // A claim whose lease has run out is due already; only those still ahead wait needlessly.
        // The due-time conditions keep both updates on the partial indexes of work in flight.
        let uploads = sqlx::query(
            "UPDATE invoices SET next_attempt_at = $1, upload_claimed_by = NULL \
             WHERE next_attempt_at IS NOT NULL AND next_attempt_at > $1 \
               AND upload_claimed_by = $2",
        )
        .bind(micros(now))
        .bind(owner.to_owned())
        .execute(&self.write)
        .await
        .context("taking back upload claims")?
        .rows_affected();
        let archives = sqlx::query(
            "UPDATE invoices SET archive_due_at = $1, archive_claimed_by = NULL \
             WHERE archive_due_at IS NOT NULL AND archive_due_at > $1 \
               AND archive_claimed_by = $2",
        )
        .bind(micros(now))
        .bind(owner.to_owned())
        .execute(&self.write)
        .await
        .context("taking back archive claims")?
        .rows_affected();
        Ok(TakenBack { uploads, archives })
    }
}
