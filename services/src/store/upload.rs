//! The upload queue: which invoices the upload worker must act on, and what it learnt.
//!
//! Every row with an `upload_phase` is work: `SEND` (upload it), `POLL` (ask for the result of
//! its receipt), `QUERY` (the outcome is unknown: ask the platform about the invoice). `PARKED`
//! rows spent their attempt budget and wait for the reconciler or an operator. A row is due when
//! `next_attempt_at` has passed; claiming moves `next_attempt_at` forward by a lease and names the
//! claiming instance in `upload_claimed_by`, so a crashed worker's claims come back by themselves
//! after the lease, or at once when the same instance starts again (see `store::claims`).
//! Writing an outcome ends the claim.

use super::read::{NewEvent, insert_events};
use super::{InvoiceState, Store, from_micros, micros, parse_colour, placeholders};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_invoice::model::{Colour, InvoiceContent};
use fapiao_invoice::number::InvoiceNumber;
use sqlx::any::AnyArguments;
use sqlx::{Arguments, Row};
use std::collections::BTreeMap;

/// What the worker must do next for an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UploadPhase {
    Send,
    Poll,
    Query,
    Parked,
}

impl UploadPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "SEND",
            Self::Poll => "POLL",
            Self::Query => "QUERY",
            Self::Parked => "PARKED",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "SEND" => Self::Send,
            "POLL" => Self::Poll,
            "QUERY" => Self::Query,
            "PARKED" => Self::Parked,
            other => anyhow::bail!("unknown upload phase {other:?} in the store"),
        })
    }
}

/// A claimed piece of upload work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueUpload {
    pub number: InvoiceNumber,
    pub seller_tax_id: String,
    pub request_id: String,
    pub colour: Colour,
    pub state: InvoiceState,
    pub phase: UploadPhase,
    /// Uploads sent so far.
    pub attempts: u32,
    pub receipt: Option<String>,
    pub issued_at: DateTime<Utc>,
    /// The content, for `SEND` work only.
    pub content: Option<InvoiceContent>,
}

/// One upload attempt's outcome, for the attempts table (success rate, alerting).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptNote {
    /// `ACCEPTED`, `BUSY`, `TIMEOUT`, `REFUSED`, `RECORDED`, `REJECTED`.
    pub outcome: &'static str,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// What to write for one invoice after the worker acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadUpdate {
    pub item: DueUpload,
    /// A new state, written with an event.
    pub state: Option<InvoiceState>,
    /// The next phase; `None` when the upload is settled.
    pub phase: Option<UploadPhase>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub receipt: Option<String>,
    /// Set when an upload was sent (counts against the attempt budget).
    pub sent: bool,
    /// An attempt outcome to keep.
    pub attempt: Option<AttemptNote>,
    /// The platform's code and message, kept on the invoice.
    pub platform: Option<(String, String)>,
    /// Why, for the event row.
    pub reason: String,
}

type GroupKey = (
    Option<&'static str>,
    Option<UploadPhase>,
    Option<i64>,
    Option<String>,
    bool,
    Option<(String, String)>,
);

impl Store {
    /// Claim up to `limit` due rows (oldest due first) for instance `owner`, pushing their
    /// `next_attempt_at` to `lease_until` so no other worker takes them meanwhile.
    pub async fn claim_due_uploads(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<DueUpload>> {
        let sql = format!(
            "UPDATE invoices SET next_attempt_at = $1, upload_claimed_by = $4 \
             WHERE invoice_number IN ( \
               SELECT invoice_number FROM invoices \
               WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
                 AND upload_phase IN ('SEND', 'POLL', 'QUERY') \
               ORDER BY next_attempt_at LIMIT $3{}) \
             RETURNING invoice_number, seller_tax_id, request_id, colour, state, upload_phase, \
               upload_attempts, upload_receipt, issued_at, \
               CASE WHEN upload_phase = 'SEND' THEN content ELSE NULL END AS content",
            self.skip_locked()
        );
        let rows = sqlx::query(&sql)
            .bind(micros(lease_until))
            .bind(micros(now))
            .bind(i64::from(limit))
            .bind(owner.to_owned())
            .fetch_all(&self.write)
            .await
            .context("claiming due uploads")?;
        rows.iter()
            .map(|row| {
                let number: String = row.try_get("invoice_number")?;
                let state: String = row.try_get("state")?;
                let phase: String = row.try_get("upload_phase")?;
                let attempts: i64 = row.try_get("upload_attempts")?;
                // Only uploads need the content; polls and queries go by number.
                let content: Option<String> = row.try_get("content")?;
                Ok(DueUpload {
                    number: number.parse().context("invoice number in the store")?,
                    seller_tax_id: row.try_get("seller_tax_id")?,
                    request_id: row.try_get("request_id")?,
                    colour: parse_colour(&row.try_get::<String, _>("colour")?)?,
                    state: state.parse()?,
                    phase: UploadPhase::parse(&phase)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    receipt: row.try_get("upload_receipt")?,
                    issued_at: from_micros(row.try_get("issued_at")?),
                    content: content
                        .map(|c| serde_json::from_str(&c).context("invoice content"))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Write what the worker learnt, with an event per state change and a row per attempt, in
    /// one transaction.
    pub async fn apply_upload_updates(
        &self,
        updates: &[UploadUpdate],
        now: DateTime<Utc>,
        actor: &str,
    ) -> anyhow::Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut groups: BTreeMap<GroupKey, Vec<String>> = BTreeMap::new();
        for u in updates {
            let key = (
                u.state.map(InvoiceState::as_str),
                u.phase,
                u.next_attempt_at.map(micros),
                u.receipt.clone(),
                u.sent,
                u.platform.clone(),
            );
            groups
                .entry(key)
                .or_default()
                .push(u.item.number.to_string());
        }
        let mut tx = self.write.begin().await.context("starting a transaction")?;
        for ((state, phase, next, receipt, sent, platform), numbers) in groups {
            self.update_group(
                &mut tx, state, phase, next, receipt, sent, platform, &numbers, now,
            )
            .await?;
        }
        let recorded_reds: Vec<String> = updates
            .iter()
            .filter(|u| {
                u.item.colour == Colour::Red
                    && u.state == Some(InvoiceState::Recorded)
                    && u.item.state != InvoiceState::Recorded
            })
            .map(|u| u.item.number.to_string())
            .collect();
        let reversed = self
            .reverse_blues(&mut tx, &recorded_reds, now, actor)
            .await?;
        let mut events: Vec<NewEvent> = updates
            .iter()
            .filter_map(|u| {
                let state = u.state?;
                (state != u.item.state).then(|| NewEvent {
                    invoice_number: u.item.number.to_string(),
                    seller_tax_id: u.item.seller_tax_id.clone(),
                    request_id: u.item.request_id.clone(),
                    colour: u.item.colour,
                    state,
                    previous_state: Some(u.item.state),
                    at: now,
                    reason: u.reason.clone(),
                    actor: actor.to_owned(),
                    platform_code: u.platform.as_ref().map(|p| p.0.clone()),
                    platform_message: u.platform.as_ref().map(|p| p.1.clone()),
                })
            })
            .collect();
        events.extend(reversed);
        if !events.is_empty() {
            self.lock_event_order(&mut tx).await?;
            insert_events(&mut tx, &events).await?;
        }
        insert_attempts(&mut tx, updates, now).await?;
        tx.commit().await.context("committing upload progress")?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_group(
        &self,
        tx: &mut sqlx::AnyConnection,
        state: Option<&'static str>,
        phase: Option<UploadPhase>,
        next: Option<i64>,
        receipt: Option<String>,
        sent: bool,
        platform: Option<(String, String)>,
        numbers: &[String],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let err = |e| anyhow::anyhow!("binding: {e}");
        let mut args = AnyArguments::default();
        let mut sets = vec![
            "upload_phase = $1".to_owned(),
            "next_attempt_at = $2".to_owned(),
            // The outcome is written: the claim is over, a back-off is not a claim.
            "upload_claimed_by = NULL".to_owned(),
        ];
        args.add(phase.map(|p| p.as_str().to_owned()))
            .map_err(err)?;
        args.add(next).map_err(err)?;
        let mut n = 2;
        if let Some(state) = state {
            sets.push(format!("state = ${}", n + 1));
            sets.push(format!(
                "state_changed_at = CASE WHEN state = ${} THEN state_changed_at ELSE ${} END",
                n + 1,
                n + 2
            ));
            args.add(state.to_owned()).map_err(err)?;
            args.add(micros(now)).map_err(err)?;
            n += 2;
        }
        if let Some(receipt) = receipt {
            sets.push(format!("upload_receipt = ${}", n + 1));
            args.add(receipt).map_err(err)?;
            n += 1;
        }
        if sent {
            sets.push("upload_attempts = upload_attempts + 1".to_owned());
        }
        if let Some((code, message)) = platform {
            sets.push(format!(
                "platform_code = ${}, platform_message = ${}, platform_at = ${}",
                n + 1,
                n + 2,
                n + 3
            ));
            args.add(code).map_err(err)?;
            args.add(message).map_err(err)?;
            args.add(micros(now)).map_err(err)?;
            n += 3;
        }
        for number in numbers {
            args.add(number.clone()).map_err(err)?;
        }
        let sql = format!(
            "UPDATE invoices SET {} WHERE invoice_number IN ({})",
            sets.join(", "),
            placeholders(n + 1, numbers.len())
        );
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .context("updating upload progress")?;
        Ok(())
    }

    /// How many invoices wait for upload work, by phase (the backlog).
    pub async fn upload_backlog(&self) -> anyhow::Result<Vec<(UploadPhase, i64)>> {
        sqlx::query(
            "SELECT upload_phase, COUNT(*) AS n FROM invoices \
             WHERE upload_phase IS NOT NULL GROUP BY upload_phase",
        )
        .fetch_all(&self.read)
        .await
        .context("measuring the upload backlog")?
        .iter()
        .map(|row| {
            let phase: String = row.try_get("upload_phase")?;
            Ok((UploadPhase::parse(&phase)?, row.try_get("n")?))
        })
        .collect()
    }

    /// The earliest `next_attempt_at` among waiting uploads, so the worker can sleep until then.
    pub async fn next_upload_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS due FROM invoices WHERE next_attempt_at IS NOT NULL",
        )
        .fetch_one(&self.read)
        .await
        .context("finding the next due upload")?;
        let due: Option<i64> = row.try_get("due")?;
        Ok(due.map(from_micros))
    }
}

const ATTEMPT_COLUMNS: usize = 7;

async fn insert_attempts(
    tx: &mut sqlx::AnyConnection,
    updates: &[UploadUpdate],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let notes: Vec<(&UploadUpdate, &AttemptNote)> = updates
        .iter()
        .filter_map(|u| u.attempt.as_ref().map(|a| (u, a)))
        .collect();
    let backend = super::Backend::of(tx);
    for chunk in notes.chunks(1000) {
        let values: Vec<String> = (0..chunk.len())
            .map(|r| {
                format!(
                    "({})",
                    backend.params(1 + r * ATTEMPT_COLUMNS, ATTEMPT_COLUMNS)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO upload_attempts (invoice_number, seller_tax_id, attempt, at, outcome, code, message) VALUES {}",
            values.join(", ")
        );
        let err = |e| anyhow::anyhow!("binding: {e}");
        let mut args = AnyArguments::default();
        for (u, note) in chunk {
            let attempt = i64::from(u.item.attempts) + i64::from(u.sent);
            args.add(u.item.number.to_string()).map_err(err)?;
            args.add(u.item.seller_tax_id.clone()).map_err(err)?;
            args.add(attempt).map_err(err)?;
            args.add(micros(now)).map_err(err)?;
            args.add(note.outcome.to_owned()).map_err(err)?;
            args.add(note.code.clone()).map_err(err)?;
            args.add(note.message.clone()).map_err(err)?;
        }
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .context("recording upload attempts")?;
    }
    Ok(())
}
