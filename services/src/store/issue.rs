//! Issuing a batch of invoices in one transaction: idempotency, quota debit, numbers, rows, events.

use super::{
    INVOICE_COLUMNS, InvoiceState, Store, StoredInvoice, colour_text, decode_invoice, kind_text,
    micros, placeholders,
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;
use sqlx::any::AnyArguments;
use sqlx::{Arguments, Row};
use std::collections::{BTreeMap, HashMap};

/// One invoice to issue: validated content and what the workflow derived from it.
#[derive(Debug, Clone)]
pub struct IssueItem {
    /// Normalised seller tax id.
    pub seller_tax_id: String,
    pub request_id: String,
    pub content: InvoiceContent,
    /// SM3 of the normalised content: equal digests mean "the same request again".
    pub content_sm3: String,
    /// Quota this invoice uses, in fen (the tax-exclusive total of a blue invoice).
    pub quota_fen: i64,
    /// Who asked (the token's name), for the event row.
    pub actor: String,
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Numbered and stored now.
    Issued(Box<StoredInvoice>),
    /// The same seller, request id and content was issued before: that invoice.
    Replayed(Box<StoredInvoice>),
    /// The request id was used before with different content.
    Conflict { existing: InvoiceNumber },
    /// The request id belongs to a red-letter request, whose red invoice will carry it.
    HeldByRedLetter { form_number: String },
    /// No reserved number left for the seller.
    NumbersExhausted,
    /// Not enough downloaded quota left for the seller.
    QuotaExhausted,
}

/// Where a batch item stands while the transaction runs.
#[derive(Debug)]
enum Slot {
    Done(IssueOutcome),
    /// Same request id as an earlier item of the batch: decided from that item's outcome.
    Follows(usize),
    Pending,
}

const INSERT_COLUMNS: &str = "invoice_number, seller_tax_id, request_id, content_sm3, kind, \
     colour, state, buyer_tax_id, buyer_name, amount, tax, total, issued_at, state_changed_at, \
     content, platform_sm3, blue_invoice_number, upload_phase, next_attempt_at, archive_due_at";
const INSERT_COLUMN_COUNT: usize = 20;

impl Store {
    /// Issue `items` in one transaction. Each item gets its own outcome; an error means nothing of
    /// the batch was written.
    pub async fn issue_batch(
        &self,
        items: &[IssueItem],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<IssueOutcome>> {
        let mut slots: Vec<Slot> = items.iter().map(|_| Slot::Pending).collect();
        let mut by_seller: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            by_seller.entry(&item.seller_tax_id).or_default().push(i);
        }
        let mut tx = self.write.begin().await.context("starting a transaction")?;
        let mut inserted: Vec<(usize, StoredInvoice)> = Vec::new();
        for (seller, indexes) in by_seller {
            let fresh = self
                .resolve_known(&mut tx, seller, items, &indexes, &mut slots)
                .await?;
            let funded = self
                .take_quota(&mut tx, seller, items, &fresh, &mut slots)
                .await?;
            let numbered = self
                .take_numbers(&mut tx, seller, &funded, &mut slots)
                .await?;
            let debit: i64 = numbered.iter().map(|(i, _)| items[*i].quota_fen).sum();
            let rows: Vec<StoredInvoice> = numbered
                .iter()
                .map(|(i, number)| new_row(&items[*i], *number, now))
                .collect();
            let stored = self.insert_rows(&mut tx, &rows, now).await?;
            let mut lost_fen = 0;
            for ((i, _), row) in numbered.iter().zip(rows) {
                if stored.contains(&row.request_id) {
                    inserted.push((*i, row));
                } else {
                    // Another replica stored this request id between our read and our insert:
                    // give the quota back (the number stays unused, never reused).
                    lost_fen += items[*i].quota_fen;
                    slots[*i] = Slot::Pending;
                }
            }
            if debit - lost_fen > 0 {
                sqlx::query(
                    "UPDATE quota_balances SET used_fen = used_fen + $2 WHERE seller_tax_id = $1",
                )
                .bind(seller)
                .bind(debit - lost_fen)
                .execute(&mut *tx)
                .await
                .context("debiting quota")?;
            }
            if lost_fen > 0 {
                self.resolve_known(&mut tx, seller, items, &indexes, &mut slots)
                    .await?;
            }
        }
        self.insert_issued_events(&mut tx, items, &inserted, now)
            .await?;
        tx.commit().await.context("committing issued invoices")?;
        for (i, row) in inserted {
            slots[i] = Slot::Done(IssueOutcome::Issued(Box::new(row)));
        }
        Ok(finish(items, slots))
    }

    /// Decide items whose request id is already stored, and items repeating an earlier item of the
    /// batch. Returns the items still to issue, in order.
    async fn resolve_known(
        &self,
        tx: &mut sqlx::AnyConnection,
        seller: &str,
        items: &[IssueItem],
        indexes: &[usize],
        slots: &mut [Slot],
    ) -> anyhow::Result<Vec<usize>> {
        let pending: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|i| matches!(slots[*i], Slot::Pending))
            .collect();
        let mut request_ids: Vec<&str> = pending
            .iter()
            .map(|i| items[*i].request_id.as_str())
            .collect();
        request_ids.sort_unstable();
        request_ids.dedup();
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE seller_tax_id = $1 AND request_id IN ({})",
            placeholders(2, request_ids.len())
        );
        let mut query = sqlx::query(&sql).bind(seller);
        for id in &request_ids {
            query = query.bind(*id);
        }
        let existing: HashMap<String, StoredInvoice> = query
            .fetch_all(&mut *tx)
            .await
            .context("looking up request ids")?
            .iter()
            .map(|row| decode_invoice(row).map(|inv| (inv.request_id.clone(), inv)))
            .collect::<anyhow::Result<_>>()?;
        let held = held_by_red_letters(tx, seller, items, &pending).await?;
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut fresh = Vec::new();
        for i in pending {
            let item = &items[i];
            if let Some(stored) = existing.get(&item.request_id) {
                slots[i] = Slot::Done(replay_or_conflict(item, stored));
            } else if let Some(form_number) = held.get(&item.request_id) {
                slots[i] = Slot::Done(IssueOutcome::HeldByRedLetter {
                    form_number: form_number.clone(),
                });
            } else if let Some(&j) = first.get(item.request_id.as_str()) {
                slots[i] = Slot::Follows(j);
            } else {
                first.insert(&item.request_id, i);
                fresh.push(i);
            }
        }
        Ok(fresh)
    }

    /// Keep the items the seller's downloaded quota covers, in order; mark the rest exhausted.
    async fn take_quota(
        &self,
        tx: &mut sqlx::AnyConnection,
        seller: &str,
        items: &[IssueItem],
        fresh: &[usize],
        slots: &mut [Slot],
    ) -> anyhow::Result<Vec<usize>> {
        if fresh.iter().all(|i| items[*i].quota_fen <= 0) {
            return Ok(fresh.to_vec());
        }
        let sql = format!(
            "SELECT downloaded_fen - used_fen AS left_fen FROM quota_balances WHERE seller_tax_id = $1{}",
            self.for_update()
        );
        let mut left: i64 = match sqlx::query(&sql)
            .bind(seller)
            .fetch_optional(&mut *tx)
            .await
            .context("reading the quota balance")?
        {
            Some(row) => row.try_get("left_fen")?,
            None => 0,
        };
        let mut funded = Vec::with_capacity(fresh.len());
        for &i in fresh {
            let need = items[i].quota_fen.max(0);
            if need <= left {
                left -= need;
                funded.push(i);
            } else {
                slots[i] = Slot::Done(IssueOutcome::QuotaExhausted);
            }
        }
        Ok(funded)
    }

    /// Give each item the next reserved number, oldest range first; mark the rest exhausted.
    async fn take_numbers(
        &self,
        tx: &mut sqlx::AnyConnection,
        seller: &str,
        funded: &[usize],
        slots: &mut [Slot],
    ) -> anyhow::Result<Vec<(usize, InvoiceNumber)>> {
        if funded.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, prefix, next_seq, last_seq FROM number_ranges \
             WHERE seller_tax_id = $1 AND next_seq <= last_seq ORDER BY id{}",
            self.for_update()
        );
        let ranges = sqlx::query(&sql)
            .bind(seller)
            .fetch_all(&mut *tx)
            .await
            .context("reading number ranges")?;
        let mut numbered = Vec::with_capacity(funded.len());
        let mut wanted = funded.iter().copied();
        'ranges: for row in &ranges {
            let id: i64 = row.try_get("id")?;
            let prefix: i64 = row.try_get("prefix")?;
            let mut next: i64 = row.try_get("next_seq")?;
            let last: i64 = row.try_get("last_seq")?;
            let start = next;
            while next <= last {
                let Some(i) = wanted.next() else {
                    self.advance_range(tx, id, start, next).await?;
                    break 'ranges;
                };
                numbered.push((i, number_of(prefix, next)?));
                next += 1;
            }
            self.advance_range(tx, id, start, next).await?;
        }
        for i in wanted {
            slots[i] = Slot::Done(IssueOutcome::NumbersExhausted);
        }
        Ok(numbered)
    }

    async fn advance_range(
        &self,
        tx: &mut sqlx::AnyConnection,
        id: i64,
        from: i64,
        to: i64,
    ) -> anyhow::Result<()> {
        if to == from {
            return Ok(());
        }
        sqlx::query("UPDATE number_ranges SET next_seq = $2 WHERE id = $1 AND next_seq = $3")
            .bind(id)
            .bind(to)
            .bind(from)
            .execute(&mut *tx)
            .await
            .context("advancing a number range")?;
        Ok(())
    }

    /// Insert rows, skipping request ids another transaction stored first; returns the request
    /// ids actually inserted.
    async fn insert_rows(
        &self,
        tx: &mut sqlx::AnyConnection,
        rows: &[StoredInvoice],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<String>> {
        let mut stored = Vec::with_capacity(rows.len());
        let backend = self.backend;
        for chunk in rows.chunks(500) {
            let values: Vec<String> = (0..chunk.len())
                .map(|r| {
                    format!(
                        "({})",
                        backend.params(1 + r * INSERT_COLUMN_COUNT, INSERT_COLUMN_COUNT)
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO invoices ({INSERT_COLUMNS}) VALUES {} \
                 ON CONFLICT (seller_tax_id, request_id) DO NOTHING RETURNING request_id",
                values.join(", ")
            );
            let mut args = AnyArguments::default();
            for row in chunk {
                bind_row(&mut args, row, now)?;
            }
            let returned = sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .context("inserting invoices")?;
            for r in returned {
                stored.push(r.try_get::<String, _>("request_id")?);
            }
        }
        Ok(stored)
    }

    async fn insert_issued_events(
        &self,
        tx: &mut sqlx::AnyConnection,
        items: &[IssueItem],
        inserted: &[(usize, StoredInvoice)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if inserted.is_empty() {
            return Ok(());
        }
        self.lock_event_order(tx).await?;
        let events: Vec<super::read::NewEvent> = inserted
            .iter()
            .map(|(i, row)| super::read::NewEvent {
                invoice_number: row.number.to_string(),
                seller_tax_id: row.seller_tax_id.clone(),
                request_id: row.request_id.clone(),
                colour: row.content.colour(),
                state: InvoiceState::Issued,
                previous_state: None,
                at: now,
                reason: "issued".into(),
                actor: items[*i].actor.clone(),
                platform_code: None,
                platform_message: None,
            })
            .collect();
        super::read::insert_events(tx, &events).await
    }
}

/// The request ids among the blue items at `pending` that red-letter requests of the seller hold
/// (request ids are shared), with their form numbers (empty while a form is being filed). A red
/// invoice is issued under its own form's request id, so red items are not looked up.
async fn held_by_red_letters(
    tx: &mut sqlx::AnyConnection,
    seller: &str,
    items: &[IssueItem],
    pending: &[usize],
) -> anyhow::Result<HashMap<String, String>> {
    let mut ids: Vec<&str> = pending
        .iter()
        .filter(|i| items[**i].content.red.is_none())
        .map(|i| items[*i].request_id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    let sql = format!(
        "SELECT request_id, form_number FROM red_letter_forms \
         WHERE seller_tax_id = $1 AND request_id IN ({})",
        placeholders(2, ids.len())
    );
    let mut query = sqlx::query(&sql).bind(seller);
    for id in &ids {
        query = query.bind(*id);
    }
    query
        .fetch_all(&mut *tx)
        .await
        .context("looking up request ids of red-letter requests")?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("request_id")?,
                row.try_get::<Option<String>, _>("form_number")?
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

fn replay_or_conflict(item: &IssueItem, stored: &StoredInvoice) -> IssueOutcome {
    if stored.content_sm3 == item.content_sm3 {
        IssueOutcome::Replayed(Box::new(stored.clone()))
    } else {
        IssueOutcome::Conflict {
            existing: stored.number,
        }
    }
}

fn finish(items: &[IssueItem], slots: Vec<Slot>) -> Vec<IssueOutcome> {
    let mut done: Vec<Option<IssueOutcome>> = Vec::with_capacity(slots.len());
    for (i, slot) in slots.into_iter().enumerate() {
        let outcome = match slot {
            Slot::Done(o) => o,
            Slot::Follows(j) => match done.get(j).and_then(Option::as_ref) {
                Some(IssueOutcome::Issued(first) | IssueOutcome::Replayed(first)) => {
                    replay_or_conflict(&items[i], first)
                }
                Some(IssueOutcome::Conflict { existing }) => IssueOutcome::Conflict {
                    existing: *existing,
                },
                Some(other) => other.clone(),
                // A follower always comes after the item it follows.
                None => IssueOutcome::NumbersExhausted,
            },
            // Only reachable when a concurrent replica's row vanished again: report exhaustion so
            // the caller retries, which then finds the stored row.
            Slot::Pending => IssueOutcome::NumbersExhausted,
        };
        done.push(Some(outcome));
    }
    done.into_iter().flatten().collect()
}

pub(super) fn number_of(prefix: i64, sequence: i64) -> anyhow::Result<InvoiceNumber> {
    let (Ok(prefix), Ok(sequence)) = (u32::try_from(prefix), u64::try_from(sequence)) else {
        anyhow::bail!("negative number range in the store");
    };
    let year = u8::try_from(prefix / 1000).context("number prefix")?;
    let region = u8::try_from((prefix / 10) % 100).context("number prefix")?;
    let channel = u8::try_from(prefix % 10).context("number prefix")?;
    InvoiceNumber::new(year, region, channel, sequence).context("number range in the store")
}

/// The 5-digit prefix (year, region, channel) of a number, as stored with its range.
pub(crate) fn prefix_of(number: &InvoiceNumber) -> i64 {
    i64::from(number.year()) * 1000 + i64::from(number.region()) * 10 + i64::from(number.channel())
}

fn new_row(item: &IssueItem, number: InvoiceNumber, now: DateTime<Utc>) -> StoredInvoice {
    StoredInvoice {
        number,
        seller_tax_id: item.seller_tax_id.clone(),
        request_id: item.request_id.clone(),
        content_sm3: item.content_sm3.clone(),
        state: InvoiceState::Issued,
        issued_at: now,
        state_changed_at: now,
        content: item.content.clone(),
        upload_attempts: 0,
        platform: None,
    }
}

fn bind_row(
    args: &mut AnyArguments<'_>,
    row: &StoredInvoice,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let c = &row.content;
    let kind = kind_text(c.kind).to_owned();
    let add = |args: &mut AnyArguments<'_>, v: Option<String>| {
        args.add(v).map_err(|e| anyhow::anyhow!("binding: {e}"))
    };
    add(args, Some(row.number.to_string()))?;
    add(args, Some(row.seller_tax_id.clone()))?;
    add(args, Some(row.request_id.clone()))?;
    add(args, Some(row.content_sm3.clone()))?;
    add(args, Some(kind))?;
    add(args, Some(colour_text(c.colour()).to_owned()))?;
    add(args, Some(row.state.as_str().to_owned()))?;
    add(
        args,
        c.buyer.party.tax_id.as_ref().map(|t| t.as_str().to_owned()),
    )?;
    add(args, Some(c.buyer.party.name.clone()))?;
    add(args, Some(c.totals.amount.to_string()))?;
    add(args, Some(c.totals.tax.to_string()))?;
    add(args, Some(c.totals.total.to_string()))?;
    args.add(micros(row.issued_at))
        .map_err(|e| anyhow::anyhow!("binding: {e}"))?;
    args.add(micros(row.state_changed_at))
        .map_err(|e| anyhow::anyhow!("binding: {e}"))?;
    let json = serde_json::to_string(c)?;
    // The platform digest, from the JSON already made for the content column.
    let sent_digest = crate::platform::protocol::sm3_hex(json.as_bytes());
    add(args, Some(json))?;
    add(args, Some(sent_digest))?;
    add(args, c.red.as_ref().map(|r| r.blue_number.to_string()))?;
    add(args, Some(super::UploadPhase::Send.as_str().to_owned()))?;
    // Uploading and archiving are both due at once.
    for _ in 0..2 {
        args.add(micros(now))
            .map_err(|e| anyhow::anyhow!("binding: {e}"))?;
    }
    Ok(())
}
