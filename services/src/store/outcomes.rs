//! What alerting reads from the store: upload outcomes counted over several windows ending now,
//! the alert book kept between evaluations, the open drifts of an urgency, and when the last real
//! reconciliation pass finished.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use sqlx::any::AnyArguments;

use super::{Store, from_micros, micros};

/// How many upload attempts of one seller ended with one outcome, within one ring of the windows
/// asked for.
///
/// The windows asked for all end at the same `now` and nest inside each other, so the store cuts
/// the longest one into rings: the attempts of the shortest window, then those of the next window
/// that are not in the shortest, and so on. One row per seller, outcome and ring comes back from a
/// single scan of the `at` index, however many windows there are and however many attempts they
/// hold; the counts of a window are the sum of its ring and every shorter one. Rings, unlike fixed
/// clock buckets, follow `now`, so every window is counted exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The seller's taxpayer id.
    pub seller_tax_id: String,
    /// The outcome as the upload worker wrote it (`RECORDED`, `REJECTED`, `TIMEOUT`, …).
    pub outcome: String,
    /// The shortest of the windows asked for that holds these attempts: they count in every window
    /// this long or longer, and in none shorter.
    pub within: Duration,
    /// How many attempts.
    pub count: u64,
}

/// Microseconds of a window length; lengths beyond `i64` microseconds (about 292,000 years) are
/// treated as unbounded.
fn length_micros(length: Duration) -> i64 {
    length.num_microseconds().unwrap_or(i64::MAX)
}

impl Store {
    /// Upload attempts per seller, outcome and ring of `windows` (each a window of that length
    /// ending at `now`, attempts at `now` included). Window lengths are de-duplicated and need not
    /// be sorted; non-positive ones are ignored. Attempts recorded after `now` are not counted.
    pub async fn outcome_counts(
        &self,
        now: DateTime<Utc>,
        windows: &[Duration],
    ) -> anyhow::Result<Vec<OutcomeCount>> {
        let mut windows: Vec<Duration> = windows
            .iter()
            .copied()
            .filter(|length| *length > Duration::zero())
            .collect();
        windows.sort();
        windows.dedup();
        let Some(longest) = windows.last().copied() else {
            return Ok(Vec::new());
        };
        let now_us = micros(now);
        // An attempt belongs to a window of length L when it happened after now − L.
        let after = |length: Duration| now_us.saturating_sub(length_micros(length));
        // Rings from the inside out; the last ring is whatever the WHERE clause lets through, and
        // with a single window it is the only one (a CASE needs at least one WHEN).
        let last = windows.len().saturating_sub(1);
        let ring = if last == 0 {
            "0".to_owned()
        } else {
            let whens: String = (0..last)
                .map(|index| format!(" WHEN at > ${} THEN {index}", index + 3))
                .collect();
            format!("CASE{whens} ELSE {last} END")
        };
        let sql = format!(
            "SELECT seller_tax_id, outcome, ring, COUNT(*) AS n FROM (\
             SELECT seller_tax_id, outcome, CAST({ring} AS BIGINT) AS ring FROM upload_attempts \
             WHERE at > $1 AND at <= $2) AS counted \
             GROUP BY seller_tax_id, outcome, ring"
        );
        let bind = |e| anyhow::anyhow!("binding a window bound: {e}");
        let mut args = AnyArguments::default();
        sqlx::Arguments::add(&mut args, after(longest)).map_err(bind)?;
        sqlx::Arguments::add(&mut args, now_us).map_err(bind)?;
        for length in &windows[..last] {
            sqlx::Arguments::add(&mut args, after(*length)).map_err(bind)?;
        }
        let rows = sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("counting upload outcomes")?;
        rows.iter()
            .map(|row| {
                let ring: i64 = row.try_get("ring")?;
                let count: i64 = row.try_get("n")?;
                let within = usize::try_from(ring)
                    .ok()
                    .and_then(|ring| windows.get(ring).copied())
                    .with_context(|| format!("upload outcomes counted in unknown ring {ring}"))?;
                Ok(OutcomeCount {
                    seller_tax_id: row.try_get("seller_tax_id")?,
                    outcome: row.try_get("outcome")?,
                    within,
                    count: u64::try_from(count).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The alert book stored under `name` (as its JSON), if there is one.
    pub async fn load_alert_book(&self, name: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT book FROM alert_books WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(&self.read)
            .await
            .context("reading the alert book")?;
        row.map(|row| row.try_get::<String, _>("book"))
            .transpose()
            .context("reading the alert book")
    }

    /// Store `book` (JSON) under `name`, replacing what was there.
    pub async fn save_alert_book(
        &self,
        name: &str,
        book: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO alert_books (name, book, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET book = excluded.book, \
             updated_at = excluded.updated_at",
        )
        .bind(name.to_owned())
        .bind(book.to_owned())
        .bind(micros(now))
        .execute(&self.write)
        .await
        .context("saving the alert book")?;
        Ok(())
    }

    /// How many drifts of `urgency` (`critical`, `warning` or `none`) are open.
    pub async fn count_open_drifts(&self, urgency: &str) -> anyhow::Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM drifts WHERE status = 'open' AND urgency = $1",
        )
        .bind(urgency.to_owned())
        .fetch_one(&self.read)
        .await
        .context("counting open drifts")?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// When the last reconciliation pass that succeeded and was not a dry run finished; `None`
    /// before the first one. Dry runs repair nothing, so they do not show the reconciler works.
    pub async fn last_finished_pass(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MAX(finished_at) AS last FROM reconcile_runs \
             WHERE status = 'succeeded' AND dry_run = 0 AND finished_at IS NOT NULL",
        )
        .fetch_one(&self.read)
        .await
        .context("finding the last finished reconciliation pass")?;
        let last: Option<i64> = row.try_get("last")?;
        Ok(last.map(from_micros))
    }
}
