//! The tax platform, seen from the issuance core.
//!
//! [`TaxPlatform`] is the one seam between the workflow and any platform: reserve invoice numbers,
//! query and download quota (授信额度), upload issued invoices (asynchronous: a receipt, then a result
//! query), query one invoice, list a seller's invoices of a day, read an invoice's usage status, and
//! file, read, answer and list red-letter confirmation forms (红字发票信息确认单).
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
pub(crate) mod connect;
pub mod protocol;
pub mod sandbox;

use chrono::{DateTime, NaiveDate, Utc};
use fapiao_invoice::model::{Colour, InvoiceContent, RedLetterReason};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{FormStatus, Initiator, RedLine};
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

/// A red-letter confirmation form the seller files (红字发票信息确认单录入).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormRequest {
    /// The caller's key: filing again under the same request id returns the form already filed.
    pub request_id: String,
    pub blue_number: InvoiceNumber,
    pub reason: RedLetterReason,
    /// What to reverse of each blue line, as positive magnitudes.
    pub lines: Vec<RedLine>,
}

/// A confirmation form as the platform keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteForm {
    /// 红字发票信息确认单编号: 20 characters.
    pub number: String,
    /// `hzqrduuid`: 32 lowercase hex characters.
    pub uuid: String,
    pub seller: TaxpayerId,
    /// The seller's request id; empty for a form the buyer filed.
    pub request_id: String,
    pub blue_number: InvoiceNumber,
    pub reason: RedLetterReason,
    pub status: FormStatus,
    pub initiator: Initiator,
    /// What the form reverses of each blue line, as positive magnitudes.
    pub lines: Vec<RedLine>,
    /// 红字冲销金额 and 税额, as positive magnitudes.
    pub amount: Decimal,
    pub tax: Decimal,
    pub created_at: DateTime<Utc>,
    /// When a pending form becomes void (07); `None` for a form that needed no confirmation.
    pub expires_at: Option<DateTime<Utc>>,
    pub status_changed_at: DateTime<Utc>,
    /// The red invoice recorded for the form (已开具红字发票标记 Y), if any.
    pub red_number: Option<InvoiceNumber>,
}

/// The seller's answer to a form (确认类型 `qrlx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormAnswer {
    /// Y 同意: a form the buyer filed (03) becomes 04.
    Agree,
    /// N 不同意: a form the buyer filed (03) becomes 06.
    Disagree,
    /// C 撤销: a form the seller filed and is pending (02) becomes 08.
    Withdraw,
}

/// One page of forms changed since a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormPage {
    pub items: Vec<RemoteForm>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_page: Option<u32>,
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

    /// File a confirmation form for a recorded blue invoice of the seller. The platform decides its
    /// status: 01 when the buyer has neither used nor booked the invoice, 02 otherwise. Filing again
    /// under the same request id returns the form already filed, in its current status.
    async fn file_red_letter_form(
        &self,
        seller: &TaxpayerId,
        form: &FormRequest,
    ) -> Result<RemoteForm, CallError>;

    /// One form of the seller by number; `None` when the platform has no such form.
    async fn red_letter_form(
        &self,
        seller: &TaxpayerId,
        number: &str,
    ) -> Result<Option<RemoteForm>, CallError>;

    /// Answer a form: agree or disagree with one the buyer filed, or withdraw one the seller filed.
    async fn answer_red_letter_form(
        &self,
        seller: &TaxpayerId,
        number: &str,
        answer: FormAnswer,
    ) -> Result<RemoteForm, CallError>;

    /// The seller's forms (filed by either party) whose status changed at or after `since`,
    /// oldest change first, `page` counted from 0.
    async fn list_red_letter_forms(
        &self,
        seller: &TaxpayerId,
        since: DateTime<Utc>,
        page: u32,
        page_size: u32,
    ) -> Result<FormPage, CallError>;
}
