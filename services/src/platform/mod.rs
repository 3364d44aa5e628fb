//! The tax platform, seen from the issuance core.
//!
//! [`TaxPlatform`] is the one seam between the workflow and any platform: reserve invoice numbers,
//! query and download quota (授信额度), upload issued invoices (asynchronous: a receipt, then a result
//! query), query one invoice, list a seller's invoices of a day, and read an invoice's usage status.
//! Its types are plain Rust; how they travel is the implementation's business.
//!
//! - [`protocol`]: the transport-free wire protocol of our 乐企-modelled platform (sealing, signing,
//!   verifying, the response envelope).
//! - [`client`]: the HTTP implementation of [`TaxPlatform`] over that protocol.
//! - [`sandbox`]: a real HTTP server speaking the same protocol and behaving like the platform, with
//!   fault injection and an admin API, so everything runs and is tested anywhere.
//!
//! It must not leak secrets (keys never reach `Debug`, errors or logs) and must not read the wall
//! clock in the protocol layer: time is passed in, so the sandbox can advance it and tests never sleep.

pub mod client;
pub mod protocol;
pub mod sandbox;

use chrono::{DateTime, NaiveDate, Utc};
use fapiao_invoice::model::{Colour, InvoiceContent};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A contiguous, inclusive range of invoice numbers the platform reserved for one seller
/// (QDFPPLFM: `fpqshm`..`fpzzhm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRange {
    pub first: InvoiceNumber,
    pub last: InvoiceNumber,
}

impl NumberRange {
    /// How many numbers the range holds.
    pub fn len(&self) -> u64 {
        self.last.sequence().saturating_sub(self.first.sequence()) + 1
    }

    /// Never true for a range the platform returned; present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.last.sequence() < self.first.sequence()
    }
}

/// The seller's quota on the platform side (CXSXED), tax-exclusive amounts in yuan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaStatus {
    /// 总授信额度 for the current month.
    pub total: Decimal,
    /// Already downloaded to the seller (and so usable locally) or used.
    pub downloaded: Decimal,
    /// What can still be downloaded this month.
    pub available: Decimal,
}

/// The answer to a quota download (XZTHSXED with `sqlx` = 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaGrant {
    /// The business serial the download was made under (`ywlsh`); downloading again under the same
    /// serial returns the same grant instead of granting twice.
    pub serial: String,
    /// The amount granted; less than asked when the month's quota is nearly used up.
    pub granted: Decimal,
}

/// One issued invoice as it is uploaded (QDFPSC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedInvoice {
    pub number: InvoiceNumber,
    pub issued_at: DateTime<Utc>,
    pub content: InvoiceContent,
}

/// The platform's acknowledgement of an upload (`sllsh` 受理流水号).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReceipt {
    pub serial: String,
}

/// The answer to an upload-result query (CXQDFPSCJG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadResult {
    /// The platform has not finished processing the upload yet.
    Pending,
    /// The platform does not know this receipt (for example it lost the upload): the outcome of
    /// each invoice must be found by querying it.
    UnknownReceipt,
    /// One outcome per invoice; the platform may repeat an invoice, callers must tolerate it.
    Done(Vec<UploadItemResult>),
}

/// The outcome of one invoice of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadItemResult {
    pub number: InvoiceNumber,
    pub outcome: UploadOutcome,
}

/// Recorded, or refused with the platform's code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadOutcome {
    Recorded,
    Rejected { code: String, message: String },
}

/// The platform's state of an invoice it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteState {
    /// 正常.
    Normal,
    /// Partly reversed by red invoices (部分红冲).
    PartiallyReversed,
    /// Fully reversed (全额红冲).
    FullyReversed,
}

/// An invoice as the platform holds it, with the content it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteInvoice {
    pub number: InvoiceNumber,
    pub issued_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub state: RemoteState,
    pub content: InvoiceContent,
}

/// One row of a day's listing: enough to compare with the local store without fetching content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSummary {
    pub number: InvoiceNumber,
    pub issued_at: DateTime<Utc>,
    pub colour: Colour,
    pub state: RemoteState,
    pub buyer_name: String,
    pub buyer_tax_id: Option<TaxpayerId>,
    /// Tax-exclusive total.
    pub amount: Decimal,
    pub tax: Decimal,
    /// The caller's `request_id` as uploaded, so remote-only invoices can be matched.
    pub request_id: String,
    /// Lowercase hex SM3 of the canonical JSON of the content the platform received, so content
    /// drift is found without downloading every invoice.
    pub content_sm3: String,
}

/// One page of a day's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePage {
    pub items: Vec<RemoteSummary>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_page: Option<u32>,
}

/// How the buyer has used a blue invoice (FPZTXXCX): a red-letter form needs the buyer's
/// confirmation once the invoice is used for deduction (用途确认) or booked (入账).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageStatus {
    pub used_for_deduction: bool,
    pub booked: bool,
}

/// Why a platform call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer in time: the call may or may not have taken effect. Only a query can tell.
    #[error("the tax platform did not answer in time")]
    Timeout,
    /// The platform said it is busy (系统繁忙); the call had no effect and may be retried later.
    #[error("the tax platform is busy ({code}: {message})")]
    Busy { code: String, message: String },
    /// The platform refused the business request (bad input, numbers or quota exhausted, …).
    /// Retrying the same request will not help.
    #[error("the tax platform refused the request ({code}: {message})")]
    Refused { code: String, message: String },
    /// The platform refused the envelope (unknown unit, bad signature, stale timestamp, …): a
    /// configuration or clock problem, not a business one.
    #[error("the tax platform refused the envelope ({code})")]
    Protocol { code: String },
    /// The connection failed or the reply was unreadable. The call may or may not have taken
    /// effect; treat it like a timeout.
    #[error("cannot reach the tax platform: {0}")]
    Transport(String),
}

impl CallError {
    /// Whether the outcome is unknown (the call may have taken effect) rather than refused.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout | Self::Transport(_))
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Busy { .. } | Self::Transport(_))
    }

    /// The platform's code where it gave one, else a stable code of ours.
    pub fn code(&self) -> &str {
        match self {
            Self::Timeout => "TIMEOUT",
            Self::Busy { code, .. } | Self::Refused { code, .. } | Self::Protocol { code } => code,
            Self::Transport(_) => "TRANSPORT",
        }
    }
}

/// Everything the issuance core asks of a tax platform. Implementations must be idempotent where
/// the platform is: uploading an invoice number again returns the first outcome; downloading quota
/// again under the same serial grants nothing new.
#[async_trait::async_trait]
pub trait TaxPlatform: Send + Sync + std::fmt::Debug {
    /// Reserve up to `count` new numbers for the seller (QDFPPLFM). Refused when the seller's
    /// allotment is used up.
    async fn reserve_numbers(
        &self,
        seller: &TaxpayerId,
        count: u32,
    ) -> Result<NumberRange, CallError>;

    /// The seller's quota this month (CXSXED).
    async fn quota(&self, seller: &TaxpayerId) -> Result<QuotaStatus, CallError>;

    /// Download `amount` of quota to the seller under `serial` (XZTHSXED, `sqlx` = 0).
    async fn download_quota(
        &self,
        seller: &TaxpayerId,
        amount: Decimal,
        serial: &str,
    ) -> Result<QuotaGrant, CallError>;

    /// Upload issued invoices of one seller (QDFPSC). The answer is only a receipt.
    async fn upload(
        &self,
        seller: &TaxpayerId,
        invoices: &[IssuedInvoice],
    ) -> Result<UploadReceipt, CallError>;

    /// The result of an upload (CXQDFPSCJG).
    async fn upload_result(
        &self,
        seller: &TaxpayerId,
        receipt: &UploadReceipt,
    ) -> Result<UploadResult, CallError>;

    /// One invoice as the platform holds it; `None` when it has no record of it.
    async fn query_invoice(
        &self,
        seller: &TaxpayerId,
        number: &InvoiceNumber,
    ) -> Result<Option<RemoteInvoice>, CallError>;

    /// The seller's invoices issued on `day` (China Standard Time), `page` counted from 0.
    async fn list_invoices(
        &self,
        seller: &TaxpayerId,
        day: NaiveDate,
        page: u32,
        page_size: u32,
    ) -> Result<RemotePage, CallError>;

    /// How the buyer has used an invoice (FPZTXXCX); `None` when the platform has no such invoice.
    async fn usage_status(
        &self,
        seller: &TaxpayerId,
        number: &InvoiceNumber,
    ) -> Result<Option<UsageStatus>, CallError>;
}
