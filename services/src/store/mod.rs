//! The store: invoices, their events and upload attempts, and the number ranges and quota reserved
//! from the tax platform, in SQLite (the embedded default, WAL) or PostgreSQL (at scale).
//!
//! Both databases go through one sqlx `Any` pool and one set of SQL text (`$1` placeholders work on
//! both); the few dialect differences (row locks, the event-ordering lock) are named methods here.
//! Each database has its own migrations, applied at start.
//!
//! Invariants the store owns:
//! - an invoice row, its number, its quota debit and its first event are written in one
//!   transaction ([`Store::issue_batch`]), so a crash leaves either all of them or none;
//! - a number is taken from a range by advancing that range's `next_seq` in the same transaction,
//!   so no number is handed out twice, even by several replicas on one PostgreSQL;
//! - event ids increase in commit order (on PostgreSQL an advisory lock serialises the event
//!   inserts of concurrent transactions), so a watcher that reads "after id N" never skips one.
//!
//! Times are unix microseconds (UTC); money is decimal text; quota is integer fen.

mod archive;
mod issue;
mod read;
mod supply;
mod upload;

pub use archive::{
    AccessFilter, AccessRecord, ArchiveBacklog, ArchiveProgress, ArchiveSetback, ArchivedInvoice,
    DueArchive, FileRecord,
};
pub use issue::{IssueItem, IssueOutcome};
pub use read::{InvoiceFilter, StoredEvent};
pub use supply::{PendingDownload, SupplyStatus};
pub use upload::{AttemptNote, DueUpload, UploadPhase, UploadUpdate};

use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_invoice::model::{Colour, InvoiceContent, InvoiceKind};
use fapiao_invoice::number::InvoiceNumber;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn from_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("database URL must start with sqlite: or postgres:")
        }
    }
}

/// The state of an invoice, as stored and as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceState {
    Issued,
    Uploading,
    Recorded,
    Rejected,
    PartiallyReversed,
    FullyReversed,
}

impl InvoiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "ISSUED",
            Self::Uploading => "UPLOADING",
            Self::Recorded => "RECORDED",
            Self::Rejected => "REJECTED",
            Self::PartiallyReversed => "PARTIALLY_REVERSED",
            Self::FullyReversed => "FULLY_REVERSED",
        }
    }

    /// Whether the platform has recorded the invoice (reversal keeps it recorded).
    pub fn is_recorded(self) -> bool {
        matches!(
            self,
            Self::Recorded | Self::PartiallyReversed | Self::FullyReversed
        )
    }

    /// Whether the platform has given its final word on the upload.
    pub fn is_settled(self) -> bool {
        self.is_recorded() || self == Self::Rejected
    }
}

impl fmt::Display for InvoiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvoiceState {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "ISSUED" => Self::Issued,
            "UPLOADING" => Self::Uploading,
            "RECORDED" => Self::Recorded,
            "REJECTED" => Self::Rejected,
            "PARTIALLY_REVERSED" => Self::PartiallyReversed,
            "FULLY_REVERSED" => Self::FullyReversed,
            other => anyhow::bail!("unknown invoice state {other:?} in the store"),
        })
    }
}

/// How a kind is stored.
pub(crate) fn kind_text(kind: InvoiceKind) -> &'static str {
    match kind {
        InvoiceKind::Special => "SPECIAL",
        InvoiceKind::General => "GENERAL",
    }
}

/// How a colour is stored.
pub(crate) fn colour_text(colour: Colour) -> &'static str {
    match colour {
        Colour::Blue => "BLUE",
        Colour::Red => "RED",
    }
}

pub(crate) fn parse_colour(text: &str) -> anyhow::Result<Colour> {
    match text {
        "BLUE" => Ok(Colour::Blue),
        "RED" => Ok(Colour::Red),
        other => anyhow::bail!("unknown colour {other:?} in the store"),
    }
}

/// The platform's last word on an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformNote {
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// An invoice as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvoice {
    pub number: InvoiceNumber,
    pub seller_tax_id: String,
    pub request_id: String,
    pub content_sm3: String,
    pub state: InvoiceState,
    pub issued_at: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
    pub content: InvoiceContent,
    pub upload_attempts: u32,
    pub platform: Option<PlatformNote>,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path?mode=rwc`, `sqlite::memory:` or `postgres://user@host/db`.
    pub url: String,
    /// Connections for reads (PostgreSQL: for everything).
    pub max_connections: u32,
    /// How long to wait for a connection before failing a call.
    pub acquire_timeout: Duration,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show only the backend.
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connect. For SQLite the file's folder is created, the database is put in WAL mode and all
    /// writes go through one connection (SQLite has one writer anyway; one connection makes the
    /// process wait its turn instead of failing with "database is locked").
    pub async fn connect(options: &StoreOptions) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(&options.url)?;
        match backend {
            Backend::Sqlite => {
                create_sqlite_folder(&options.url)?;
                let write = sqlite_pool(1, options).await?;
                let read = sqlite_pool(options.max_connections.max(1), options).await?;
                Ok(Self {
                    read,
                    write,
                    backend,
                })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .connect(&options.url)
                    .await
                    .context("connecting to PostgreSQL")?;
                Ok(Self {
                    read: pool.clone(),
                    write: pool,
                    backend,
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Apply the migrations this build knows and the database lacks.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.write)
            .await
            .context("applying database migrations")
    }

    /// Close every connection, waiting for work in flight.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// ` FOR UPDATE` where row locks exist (PostgreSQL); SQLite's single writer needs none.
    fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas claim disjoint work.
    fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// Make event ids follow commit order: on PostgreSQL, take a transaction-scoped advisory lock
    /// right before inserting events, so a transaction holding a smaller id has committed before
    /// one with a larger id can. SQLite commits one transaction at a time already.
    async fn lock_event_order(&self, tx: &mut sqlx::AnyConnection) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock(7371001)")
                .await
                .context("taking the event-order lock")?;
        }
        Ok(())
    }
}

fn create_sqlite_folder(url: &str) -> anyhow::Result<()> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the database folder {}", parent.display()))?;
    }
    Ok(())
}

async fn sqlite_pool(max: u32, options: &StoreOptions) -> anyhow::Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(options.acquire_timeout)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                     PRAGMA cache_size = -65536",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&options.url)
        .await
        .context("opening the SQLite database")
}

/// Unix microseconds of a time.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The time of unix microseconds; out-of-range values clamp to the epoch rather than panic.
pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// The columns [`decode_invoice`] reads, for `SELECT {INVOICE_COLUMNS} FROM invoices`.
pub(crate) const INVOICE_COLUMNS: &str = "invoice_number, seller_tax_id, request_id, content_sm3, \
     state, issued_at, state_changed_at, content, upload_attempts, platform_code, \
     platform_message, platform_at";

pub(crate) fn decode_invoice(row: &AnyRow) -> anyhow::Result<StoredInvoice> {
    let number: String = row.try_get("invoice_number")?;
    let content: String = row.try_get("content")?;
    let state: String = row.try_get("state")?;
    let code: Option<String> = row.try_get("platform_code")?;
    let message: Option<String> = row.try_get("platform_message")?;
    let platform_at: Option<i64> = row.try_get("platform_at")?;
    let attempts: i64 = row.try_get("upload_attempts")?;
    Ok(StoredInvoice {
        number: number
            .parse()
            .with_context(|| format!("invoice number {number:?} in the store"))?,
        seller_tax_id: row.try_get("seller_tax_id")?,
        request_id: row.try_get("request_id")?,
        content_sm3: row.try_get("content_sm3")?,
        state: state.parse()?,
        issued_at: from_micros(row.try_get("issued_at")?),
        state_changed_at: from_micros(row.try_get("state_changed_at")?),
        content: serde_json::from_str(&content)
            .with_context(|| format!("content of invoice {number} in the store"))?,
        upload_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        platform: match (code, platform_at) {
            (Some(code), Some(at)) => Some(PlatformNote {
                code,
                message: message.unwrap_or_default(),
                at: from_micros(at),
            }),
            _ => None,
        },
    })
}

/// `$first, $first+1, …` placeholders for `count` values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_from_the_given_index() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in [
            InvoiceState::Issued,
            InvoiceState::Uploading,
            InvoiceState::Recorded,
            InvoiceState::Rejected,
            InvoiceState::PartiallyReversed,
            InvoiceState::FullyReversed,
        ] {
            assert_eq!(s.as_str().parse::<InvoiceState>().unwrap(), s);
        }
        assert!("issued".parse::<InvoiceState>().is_err());
    }

    #[test]
    fn only_sqlite_and_postgres_urls_are_accepted() {
        assert_eq!(
            Backend::from_url("sqlite://data/fapiao.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://u@h/db").is_err());
    }
}
