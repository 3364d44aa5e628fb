//! Archive bookkeeping: which invoices still need their layout files, where each file went with
//! its SM3 digest and size, and the auditors' access trail.
//!
//! The objects themselves live in the archive store (`fapiao_archive::store`); this module only
//! records them. A file row is written after its object, so a row always names an object that was
//! written; an object without a row (a crash in between) is found identical on the retry.

use super::{Store, from_micros, micros};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_archive::Format;
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;
use sqlx::any::AnyArguments;
use sqlx::{Arguments, Row};
use std::collections::HashMap;

/// An invoice whose files are due.
#[derive(Debug, Clone)]
pub struct DueArchive {
    pub number: InvoiceNumber,
    pub seller_tax_id: String,
    pub issued_at: DateTime<Utc>,
    pub attempts: u32,
    pub content: InvoiceContent,
}

/// One archived file as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub format: Format,
    pub object_key: String,
    pub size_bytes: u64,
    pub sm3_hex: String,
    pub archived_at: DateTime<Utc>,
    /// The version of the checks that last parsed and rendered this file (with this SM3) and
    /// found nothing wrong; `None` until a verification has.
    pub checks_passed: Option<String>,
}

/// An attempt that did not archive an invoice.
#[derive(Debug, Clone)]
pub struct ArchiveSetback {
    pub number: InvoiceNumber,
    /// When to try again; `None` parks the invoice (a conflicting object needs an operator).
    pub retry_at: Option<DateTime<Utc>>,
    pub problem: String,
}

/// Invoices still without their files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveBacklog {
    /// Waiting for (another) attempt.
    pub pending: i64,
    /// Parked with a problem an operator must look at.
    pub parked: i64,
}

/// Where one invoice's archiving stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveProgress {
    /// When the next attempt is due; `None` once archived or parked.
    pub due_at: Option<DateTime<Utc>>,
    /// Unsuccessful attempts so far.
    pub attempts: u32,
    /// The last failure; `None` once archived.
    pub problem: Option<String>,
}

/// An invoice with its recorded files, for verification.
#[derive(Debug, Clone)]
pub struct ArchivedInvoice {
    pub number: InvoiceNumber,
    pub seller_tax_id: String,
    pub issued_at: DateTime<Utc>,
    pub files: Vec<FileRecord>,
}

pub(super) fn parse_format(text: &str) -> anyhow::Result<Format> {
    Format::from_extension(text)
        .with_context(|| format!("unknown file format {text:?} in the store"))
}

fn decode_file(row: &sqlx::any::AnyRow) -> anyhow::Result<FileRecord> {
    let size: i64 = row.try_get("size_bytes")?;
    Ok(FileRecord {
        format: parse_format(&row.try_get::<String, _>("format")?)?,
        object_key: row.try_get("object_key")?,
        size_bytes: u64::try_from(size).context("negative file size in the store")?,
        sm3_hex: row.try_get("sm3")?,
        archived_at: from_micros(row.try_get("archived_at")?),
        checks_passed: row.try_get("checks_passed")?,
    })
}

impl Store {
    /// Claim up to `limit` invoices whose files are due, oldest first, for instance `owner`,
    /// holding them until `lease_until` so no other worker takes them meanwhile.
    pub async fn claim_due_archives(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<DueArchive>> {
        let sql = format!(
            "UPDATE invoices SET archive_due_at = $1, archive_claimed_by = $4 \
             WHERE invoice_number IN ( \
               SELECT invoice_number FROM invoices \
               WHERE archive_due_at IS NOT NULL AND archive_due_at <= $2 \
               ORDER BY archive_due_at LIMIT $3{}) \
             RETURNING invoice_number, seller_tax_id, issued_at, archive_attempts, content",
            self.skip_locked()
        );
        let rows = sqlx::query(&sql)
            .bind(micros(lease_until))
            .bind(micros(now))
            .bind(i64::from(limit))
            .bind(owner.to_owned())
            .fetch_all(&self.write)
            .await
            .context("claiming due archive work")?;
        rows.iter()
            .map(|row| {
                let number: String = row.try_get("invoice_number")?;
                let attempts: i64 = row.try_get("archive_attempts")?;
                let content: String = row.try_get("content")?;
                Ok(DueArchive {
                    number: number.parse().context("invoice number in the store")?,
                    seller_tax_id: row.try_get("seller_tax_id")?,
                    issued_at: from_micros(row.try_get("issued_at")?),
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    content: serde_json::from_str(&content).context("invoice content")?,
                })
            })
            .collect()
    }

    /// Record the files of archived invoices and mark them done, in one transaction. Recording a
    /// file again (a retry after a crash) keeps the first row.
    /// Note that `version` of the checks passed each `(invoice, format, sm3)`; a row whose digest
    /// is no longer that SM3 is left alone.
    pub async fn record_checks_passed(
        &self,
        passed: &[(InvoiceNumber, Format, String)],
        version: &str,
    ) -> anyhow::Result<()> {
        for chunk in passed.chunks(500) {
            let mut numbers: Vec<String> = chunk.iter().map(|(n, _, _)| n.to_string()).collect();
            numbers.dedup();
            // The number list finds the rows by the primary key; the joined list picks exactly
            // the files and digests that passed.
            let sql = format!(
                "UPDATE archived_files SET checks_passed = {} \
                 WHERE invoice_number IN ({}) \
                 AND invoice_number || '/' || format || '/' || sm3 IN ({})",
                self.backend.params(1, 1),
                self.backend.params(2, numbers.len()),
                self.backend.params(2 + numbers.len(), chunk.len()),
            );
            let mut args = AnyArguments::default();
            bind(&mut args, version.to_owned())?;
            for number in numbers {
                bind(&mut args, number)?;
            }
            for (number, format, sm3) in chunk {
                bind(&mut args, format!("{number}/{}/{sm3}", format.extension()))?;
            }
            sqlx::query_with(&sql, args)
                .execute(&self.write)
                .await
                .context("noting passed checks")?;
        }
        Ok(())
    }

    pub async fn record_archived(
        &self,
        archived: &[(InvoiceNumber, Vec<FileRecord>)],
    ) -> anyhow::Result<()> {
        if archived.is_empty() {
            return Ok(());
        }
        const COLUMNS: usize = 6;
        let rows: Vec<(String, &FileRecord)> = archived
            .iter()
            .flat_map(|(n, files)| files.iter().map(move |f| (n.to_string(), f)))
            .collect();
        let mut tx = self
            .write
            .begin()
            .await
            .context("starting archive record")?;
        for chunk in rows.chunks(300) {
            let values: Vec<String> = (0..chunk.len())
                .map(|r| format!("({})", self.backend.params(1 + r * COLUMNS, COLUMNS)))
                .collect();
            let sql = format!(
                "INSERT INTO archived_files (invoice_number, format, object_key, size_bytes, sm3, \
                 archived_at) VALUES {} ON CONFLICT (invoice_number, format) DO NOTHING",
                values.join(", ")
            );
            let mut args = AnyArguments::default();
            for (number, file) in chunk {
                bind(&mut args, number.clone())?;
                bind(&mut args, file.format.extension().to_owned())?;
                bind(&mut args, file.object_key.clone())?;
                bind(
                    &mut args,
                    i64::try_from(file.size_bytes).context("file size")?,
                )?;
                bind(&mut args, file.sm3_hex.clone())?;
                bind(&mut args, micros(file.archived_at))?;
            }
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .context("recording archived files")?;
        }
        for chunk in archived.chunks(500) {
            let sql = format!(
                "UPDATE invoices SET archive_due_at = NULL, archive_problem = NULL, \
                 archive_claimed_by = NULL WHERE invoice_number IN ({})",
                self.backend.params(1, chunk.len())
            );
            let mut args = AnyArguments::default();
            for (number, _) in chunk {
                bind(&mut args, number.to_string())?;
            }
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .context("marking invoices archived")?;
        }
        tx.commit().await.context("committing archive record")?;
        Ok(())
    }

    /// Count an unsuccessful attempt for each invoice and reschedule or park it.
    pub async fn record_archive_setbacks(&self, setbacks: &[ArchiveSetback]) -> anyhow::Result<()> {
        let mut tx = self
            .write
            .begin()
            .await
            .context("starting archive setbacks")?;
        for setback in setbacks {
            sqlx::query(
                "UPDATE invoices SET archive_due_at = $1, archive_problem = $2, \
                 archive_attempts = archive_attempts + 1, archive_claimed_by = NULL \
                 WHERE invoice_number = $3",
            )
            .bind(setback.retry_at.map(micros))
            .bind(&setback.problem)
            .bind(setback.number.to_string())
            .execute(&mut *tx)
            .await
            .context("recording an archive setback")?;
        }
        tx.commit().await.context("committing archive setbacks")?;
        Ok(())
    }

    /// Where one invoice's archiving stands; `None` for an unknown invoice.
    pub async fn archive_progress(
        &self,
        number: &InvoiceNumber,
    ) -> anyhow::Result<Option<ArchiveProgress>> {
        let row = sqlx::query(
            "SELECT archive_due_at, archive_attempts, archive_problem FROM invoices \
             WHERE invoice_number = $1",
        )
        .bind(number.to_string())
        .fetch_optional(&self.read)
        .await
        .context("reading archive progress")?;
        row.map(|row| {
            let due: Option<i64> = row.try_get("archive_due_at")?;
            let attempts: i64 = row.try_get("archive_attempts")?;
            Ok(ArchiveProgress {
                due_at: due.map(from_micros),
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                problem: row.try_get("archive_problem")?,
            })
        })
        .transpose()
    }

    /// Invoices waiting for their files, and those parked.
    pub async fn archive_backlog(&self) -> anyhow::Result<ArchiveBacklog> {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM invoices WHERE archive_due_at IS NOT NULL")
                .fetch_one(&self.read)
                .await
                .context("counting pending archive work")?;
        let parked: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM invoices WHERE archive_due_at IS NULL \
             AND archive_problem IS NOT NULL",
        )
        .fetch_one(&self.read)
        .await
        .context("counting parked archive work")?;
        Ok(ArchiveBacklog { pending, parked })
    }

    /// The earliest time archive work is due, if any.
    pub async fn next_archive_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(archive_due_at) FROM invoices WHERE archive_due_at IS NOT NULL",
        )
        .fetch_one(&self.read)
        .await
        .context("finding the next archive work")?;
        Ok(at.map(from_micros))
    }

    /// The recorded files of these invoices (absent numbers have none yet).
    pub async fn archived_files(
        &self,
        numbers: &[InvoiceNumber],
    ) -> anyhow::Result<HashMap<InvoiceNumber, Vec<FileRecord>>> {
        let mut found: HashMap<InvoiceNumber, Vec<FileRecord>> = HashMap::new();
        for chunk in numbers.chunks(500) {
            let sql = format!(
                "SELECT invoice_number, format, object_key, size_bytes, sm3, archived_at, \
                 checks_passed \
                 FROM archived_files WHERE invoice_number IN ({}) ORDER BY invoice_number, format",
                self.backend.params(1, chunk.len())
            );
            let mut args = AnyArguments::default();
            for number in chunk {
                bind(&mut args, number.to_string())?;
            }
            let rows = sqlx::query_with(&sql, args)
                .fetch_all(&self.read)
                .await
                .context("reading archived files")?;
            for row in &rows {
                let number: String = row.try_get("invoice_number")?;
                let number: InvoiceNumber = number.parse().context("invoice number")?;
                found.entry(number).or_default().push(decode_file(row)?);
            }
        }
        for files in found.values_mut() {
            files.sort_by_key(|f| f.format);
        }
        Ok(found)
    }

    /// Invoices issued in `[from, to)` (optionally of one seller) with their recorded files, in
    /// issue order, after the cursor `(issued_at, number)` of the previous page.
    pub async fn archived_invoices(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        seller: Option<&str>,
        after: Option<(DateTime<Utc>, InvoiceNumber)>,
        limit: u32,
    ) -> anyhow::Result<Vec<ArchivedInvoice>> {
        let mut clauses = vec!["issued_at >= $1".to_owned(), "issued_at < $2".to_owned()];
        let mut args = AnyArguments::default();
        bind(&mut args, micros(from))?;
        bind(&mut args, micros(to))?;
        let mut next = 3;
        if let Some(seller) = seller {
            clauses.push(format!("seller_tax_id = ${next}"));
            bind(&mut args, seller.to_owned())?;
            next += 1;
        }
        if let Some((at, number)) = after {
            clauses.push(format!(
                "(issued_at > ${a} OR (issued_at = ${a} AND invoice_number > ${b}))",
                a = next,
                b = next + 1
            ));
            bind(&mut args, micros(at))?;
            bind(&mut args, number.to_string())?;
            next += 2;
        }
        bind(&mut args, i64::from(limit))?;
        let sql = format!(
            "SELECT invoice_number, seller_tax_id, issued_at FROM invoices WHERE {} \
             ORDER BY issued_at, invoice_number LIMIT ${next}",
            clauses.join(" AND ")
        );
        let rows = sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("listing invoices to verify")?;
        let mut invoices = rows
            .iter()
            .map(|row| {
                let number: String = row.try_get("invoice_number")?;
                Ok(ArchivedInvoice {
                    number: number.parse().context("invoice number")?,
                    seller_tax_id: row.try_get("seller_tax_id")?,
                    issued_at: from_micros(row.try_get("issued_at")?),
                    files: Vec::new(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let numbers: Vec<InvoiceNumber> = invoices.iter().map(|i| i.number).collect();
        let mut files = self.archived_files(&numbers).await?;
        for invoice in &mut invoices {
            invoice.files = files.remove(&invoice.number).unwrap_or_default();
        }
        Ok(invoices)
    }

    /// How many invoices were issued in `[from, to)`, optionally by one seller.
    pub async fn count_issued(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        seller: Option<&str>,
    ) -> anyhow::Result<u64> {
        let count: i64 = match seller {
            Some(seller) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM invoices WHERE issued_at >= $1 AND issued_at < $2 \
                 AND seller_tax_id = $3",
                )
                .bind(micros(from))
                .bind(micros(to))
                .bind(seller.to_owned())
                .fetch_one(&self.read)
                .await
            }
            None => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM invoices WHERE issued_at >= $1 AND issued_at < $2",
                )
                .bind(micros(from))
                .bind(micros(to))
                .fetch_one(&self.read)
                .await
            }
        }
        .context("counting invoices")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

fn bind<'q, T>(args: &mut AnyArguments<'q>, value: T) -> anyhow::Result<()>
where
    T: 'q + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    args.add(value).map_err(|e| anyhow::anyhow!("binding: {e}"))
}
