//! Number ranges and quota reserved from the platform, as the store keeps them.

use super::issue::{number_of, prefix_of};
use super::{Store, from_micros, micros};
use crate::platform::NumberRange;
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use sqlx::Row;

/// What a seller has left locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SupplyStatus {
    /// Numbers left in reserved ranges.
    pub numbers_left: i64,
    /// Quota downloaded and not yet used, in fen.
    pub quota_left_fen: i64,
    /// What the platform said could still be downloaded, in fen, when last asked.
    pub platform_available_fen: Option<i64>,
}

/// A reserved range that still has numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRange {
    pub first: InvoiceNumber,
    pub last: InvoiceNumber,
    /// The next number to hand out.
    pub next: InvoiceNumber,
    pub remaining: u64,
    pub reserved_at: DateTime<Utc>,
}

/// What a seller holds locally: open number ranges, oldest first, and its quota balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserves {
    pub ranges: Vec<OpenRange>,
    pub downloaded_fen: i64,
    pub used_fen: i64,
    /// What the platform said could still be downloaded, when last asked.
    pub platform_available_fen: Option<i64>,
    /// When the quota was last asked about.
    pub quota_checked_at: Option<DateTime<Utc>>,
}

/// A quota download that was asked for but whose answer was not stored (a timeout, a crash): it
/// is retried under the same serial, which the platform answers idempotently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDownload {
    pub serial: String,
    pub asked_fen: i64,
}

impl Store {
    /// Keep a range the platform reserved for the seller.
    pub async fn add_number_range(
        &self,
        seller: &TaxpayerId,
        range: &NumberRange,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if prefix_of(&range.first) != prefix_of(&range.last) || range.is_empty() {
            anyhow::bail!(
                "number range {}..{} is not one sequence",
                range.first,
                range.last
            );
        }
        let first = i64::try_from(range.first.sequence()).context("range start")?;
        let last = i64::try_from(range.last.sequence()).context("range end")?;
        sqlx::query(
            "INSERT INTO number_ranges (seller_tax_id, prefix, first_seq, last_seq, next_seq, reserved_at) \
             VALUES ($1, $2, $3, $4, $3, $5)",
        )
        .bind(seller.as_str())
        .bind(prefix_of(&range.first))
        .bind(first)
        .bind(last)
        .bind(micros(now))
        .execute(&self.write)
        .await
        .context("storing a number range")?;
        Ok(())
    }

    /// The seller's open ranges and quota balance, for operators.
    pub async fn reserves(&self, seller: &TaxpayerId) -> anyhow::Result<Reserves> {
        let rows = sqlx::query(
            "SELECT prefix, first_seq, last_seq, next_seq, reserved_at FROM number_ranges \
             WHERE seller_tax_id = $1 AND next_seq <= last_seq ORDER BY id",
        )
        .bind(seller.as_str())
        .fetch_all(&self.read)
        .await
        .context("reading open number ranges")?;
        let mut ranges = Vec::with_capacity(rows.len());
        for row in &rows {
            let prefix: i64 = row.try_get("prefix")?;
            let (first, last, next): (i64, i64, i64) = (
                row.try_get("first_seq")?,
                row.try_get("last_seq")?,
                row.try_get("next_seq")?,
            );
            ranges.push(OpenRange {
                first: number_of(prefix, first)?,
                last: number_of(prefix, last)?,
                next: number_of(prefix, next)?,
                remaining: u64::try_from(last - next + 1).unwrap_or(0),
                reserved_at: from_micros(row.try_get("reserved_at")?),
            });
        }
        let quota = sqlx::query(
            "SELECT downloaded_fen, used_fen, platform_available_fen, checked_at \
             FROM quota_balances WHERE seller_tax_id = $1",
        )
        .bind(seller.as_str())
        .fetch_optional(&self.read)
        .await
        .context("reading the quota balance")?;
        Ok(match quota {
            Some(row) => Reserves {
                ranges,
                downloaded_fen: row.try_get("downloaded_fen")?,
                used_fen: row.try_get("used_fen")?,
                platform_available_fen: row.try_get("platform_available_fen")?,
                quota_checked_at: row
                    .try_get::<Option<i64>, _>("checked_at")?
                    .map(from_micros),
            },
            None => Reserves {
                ranges,
                downloaded_fen: 0,
                used_fen: 0,
                platform_available_fen: None,
                quota_checked_at: None,
            },
        })
    }

    /// Numbers and quota the seller has left locally.
    pub async fn supply_status(&self, seller: &TaxpayerId) -> anyhow::Result<SupplyStatus> {
        let numbers = sqlx::query(
            "SELECT CAST(COALESCE(SUM(last_seq - next_seq + 1), 0) AS BIGINT) AS left_n FROM number_ranges \
             WHERE seller_tax_id = $1 AND next_seq <= last_seq",
        )
        .bind(seller.as_str())
        .fetch_one(&self.read)
        .await
        .context("counting numbers left")?;
        let quota = sqlx::query(
            "SELECT downloaded_fen - used_fen AS left_fen, platform_available_fen \
             FROM quota_balances WHERE seller_tax_id = $1",
        )
        .bind(seller.as_str())
        .fetch_optional(&self.read)
        .await
        .context("reading quota left")?;
        let (quota_left_fen, platform_available_fen) = match quota {
            Some(row) => (
                row.try_get("left_fen")?,
                row.try_get("platform_available_fen")?,
            ),
            None => (0, None),
        };
        Ok(SupplyStatus {
            numbers_left: numbers.try_get("left_n")?,
            quota_left_fen,
            platform_available_fen,
        })
    }

    /// Note a quota download before asking the platform, so a lost answer is retried under the
    /// same serial instead of granting twice.
    pub async fn begin_quota_download(
        &self,
        seller: &TaxpayerId,
        download: &PendingDownload,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO quota_downloads (serial, seller_tax_id, asked_fen, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&download.serial)
        .bind(seller.as_str())
        .bind(download.asked_fen)
        .bind(micros(now))
        .execute(&self.write)
        .await
        .context("noting a quota download")?;
        Ok(())
    }

    /// The seller's download still waiting for an answer, if any.
    pub async fn pending_quota_download(
        &self,
        seller: &TaxpayerId,
    ) -> anyhow::Result<Option<PendingDownload>> {
        let row = sqlx::query(
            "SELECT serial, asked_fen FROM quota_downloads \
             WHERE seller_tax_id = $1 AND granted_fen IS NULL ORDER BY at LIMIT 1",
        )
        .bind(seller.as_str())
        .fetch_optional(&self.read)
        .await
        .context("reading pending quota downloads")?;
        row.map(|r| {
            Ok(PendingDownload {
                serial: r.try_get("serial")?,
                asked_fen: r.try_get("asked_fen")?,
            })
        })
        .transpose()
    }

    /// Add a granted download to the seller's balance, once per serial.
    pub async fn complete_quota_download(
        &self,
        seller: &TaxpayerId,
        serial: &str,
        granted_fen: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.write.begin().await.context("starting a transaction")?;
        let marked = sqlx::query(
            "UPDATE quota_downloads SET granted_fen = $2 WHERE serial = $1 AND granted_fen IS NULL",
        )
        .bind(serial)
        .bind(granted_fen)
        .execute(&mut *tx)
        .await
        .context("marking a quota download")?;
        if marked.rows_affected() == 1 {
            sqlx::query(
                "INSERT INTO quota_balances (seller_tax_id, downloaded_fen) VALUES ($1, $2) \
                 ON CONFLICT (seller_tax_id) DO UPDATE \
                 SET downloaded_fen = quota_balances.downloaded_fen + excluded.downloaded_fen",
            )
            .bind(seller.as_str())
            .bind(granted_fen)
            .execute(&mut *tx)
            .await
            .context("adding downloaded quota")?;
        }
        tx.commit().await.context("committing a quota download")?;
        Ok(())
    }

    /// Remember what the platform said could still be downloaded.
    pub async fn set_platform_available(
        &self,
        seller: &TaxpayerId,
        available_fen: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO quota_balances (seller_tax_id, platform_available_fen, checked_at) \
             VALUES ($1, $2, $3) ON CONFLICT (seller_tax_id) DO UPDATE \
             SET platform_available_fen = excluded.platform_available_fen, \
                 checked_at = excluded.checked_at",
        )
        .bind(seller.as_str())
        .bind(available_fen)
        .bind(micros(now))
        .execute(&self.write)
        .await
        .context("noting the platform's quota")?;
        Ok(())
    }
}
