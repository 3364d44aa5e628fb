//! The 数电 `EInvoice` XML: [`write()`] renders an issued invoice, [`parse`] reads one back.
//!
//! This module owns the element names and their odd official spellings (`IssuItemInformation`,
//! `TotalTax-includedAmount`, `TotaltaxIncludedAmount`, `MeaUnits`), the text forms of amounts,
//! rates and times, and the typed view of a parsed file ([`ParsedInvoice`]). The writer is strict
//! and deterministic; the parser is tolerant in the ways real platform files differ (see
//! [`parse`]). It must not do arithmetic on the amounts it reads (whether the totals add up is a
//! question for the domain) nor decide anything about archiving: it turns bytes into fields.

mod parse;
mod write;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use fapiao_invoice::model::{Colour, InvoiceKind};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::rate::TaxRate;
use rust_decimal::Decimal;

pub(crate) use parse::decimal;
pub use parse::parse;
pub use write::write;

/// Every field of an `EInvoice` file that this crate reads.
///
/// Text fields are trimmed, and an absent, empty or `xsi:nil` element reads as `""`; optional
/// numbers read as `None` in the same cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedInvoice {
    pub header: Header,
    pub seller: PartyInfo,
    pub buyer: PartyInfo,
    pub basic: BasicInfo,
    /// One per `IssuItemInformation`, in file order.
    pub lines: Vec<ItemLine>,
    /// `SpecificInformation/RedEInvoice`, present on red invoices.
    pub red: Option<RedInfo>,
    /// `AdditionalInformation/Remark`.
    pub remark: String,
    /// `SellerAuthentication/AuthenticationMethods`.
    pub authentication_method: String,
    pub supervision: TaxSupervision,
    /// `TaxBureauSignature`, present on files the platform signed.
    pub signature: Option<BureauSignature>,
}

impl ParsedInvoice {
    /// The invoice number (`TaxSupervisionInfo/InvoiceNumber`).
    pub fn number(&self) -> InvoiceNumber {
        self.supervision.invoice_number
    }
}

/// `Header`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// `EIid`: the 20-digit number again, kept as text because it is not checked here.
    pub eiid: String,
    pub e_invoice_tag: String,
    pub version: String,
    /// `InherentLabel/InIssuType/LabelCode`: `Y` blue, `N` red; `None` when absent or other.
    pub colour: Option<Colour>,
    /// `InherentLabel/EInvoiceType/LabelCode` (`01` 电子发票).
    pub invoice_type_code: String,
    /// `InherentLabel/GeneralOrSpecialVAT/LabelCode`: `01` 专票, `02` 普票; `None` when other.
    pub kind: Option<InvoiceKind>,
    /// `InherentLabel/GeneralOrSpecialVAT/LabelName`.
    pub kind_name: String,
    /// `UndefinedLabel/Label`, in file order.
    pub labels: Vec<Label>,
}

/// One `UndefinedLabel/Label`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Label {
    pub label_type: String,
    pub code: String,
    pub name: String,
}

/// `SellerInformation` or `BuyerInformation` (the `Seller…`/`Buyer…` children).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartyInfo {
    /// `…IdNum`: the taxpayer id; empty for a natural person without one.
    pub id_num: String,
    pub name: String,
    pub address: String,
    pub phone: String,
    pub bank_name: String,
    pub bank_account: String,
}

/// `BasicInformation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicInfo {
    /// `TotalAmWithoutTax`.
    pub total_amount: Decimal,
    /// `TotalTaxAm`.
    pub total_tax: Decimal,
    /// `TotalTax-includedAmount`.
    pub total_with_tax: Decimal,
    /// `TotalTax-includedAmountInChinese`, as written (元 or 圆).
    pub total_in_words: String,
    /// The amount [`BasicInfo::total_in_words`] spells, when it can be read.
    pub total_in_words_amount: Option<Decimal>,
    pub drawer: String,
    /// `RequestTime`; `None` when absent.
    pub request_time: Option<NaiveDateTime>,
}

/// One `IssuItemInformation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemLine {
    /// `ItemName`, `*简称*名称` as printed.
    pub item_name: String,
    /// `SpecMod`.
    pub specification: String,
    /// `MeaUnits`.
    pub unit: String,
    pub quantity: Option<Decimal>,
    /// `UnPrice`.
    pub unit_price: Option<Decimal>,
    pub amount: Decimal,
    /// `TaxRate`. A well-formed rate that is no longer in force (an old 16%) is kept as a
    /// [`TaxRate::Percent`] rather than refused, because old files stay valid.
    pub rate: TaxRate,
    /// `ComTaxAm`.
    pub tax: Decimal,
    /// `TotaltaxIncludedAmount`; `None` when absent.
    pub total: Option<Decimal>,
    /// `TaxClassificationCode`, as written.
    pub tax_code: String,
}

/// `SpecificInformation/RedEInvoice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedInfo {
    /// `OriginalInvoiceCode`: despite its name, the 20-digit number of the blue invoice.
    pub original_invoice_code: String,
    /// `OriginalInvoiceNumber`, which some files carry next to (or instead of) the code.
    pub original_invoice_number: String,
    /// `CreditNoteNumber`: the 红字发票信息确认单编号.
    pub form_number: String,
}

impl RedInfo {
    /// The blue invoice's number, from whichever of the two fields holds 20 digits.
    pub fn blue_number(&self) -> Option<InvoiceNumber> {
        [&self.original_invoice_number, &self.original_invoice_code]
            .into_iter()
            .find_map(|text| text.parse().ok())
    }
}

/// `TaxSupervisionInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxSupervision {
    pub invoice_number: InvoiceNumber,
    /// The date part of `IssueTime`.
    pub issue_date: NaiveDate,
    /// The time part of `IssueTime`, when the file gives one.
    pub issue_time: Option<NaiveTime>,
    pub tax_bureau_code: String,
    pub tax_bureau_name: String,
}

/// `TaxBureauSignature`: read so that its presence can be reported; not verified here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BureauSignature {
    /// `Reference/@URI`.
    pub reference_uri: String,
    /// `SignatureAlgorithm` (an OID, `1.2.156.10197.1.501` for SM2 with SM3).
    pub algorithm: String,
    /// `SignatureFormat` (`DETACH`).
    pub format: String,
    pub time: String,
    /// `SignatureValue`, as written (base64).
    pub value: String,
    /// Whether a `KeyInfo` element is present.
    pub key_info: bool,
}

/// Why a file could not be read as an `EInvoice`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the file is not UTF-8 text")]
    Encoding,
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("the root element is <{0}>, not <EInvoice>")]
    Root(String),
    #[error("{0} is missing or empty")]
    Missing(String),
    #[error("{path} is not a valid {expected}: {text:?}")]
    Invalid {
        path: String,
        expected: &'static str,
        text: String,
    },
    #[error("the invoice has no IssuItemInformation line")]
    NoLines,
}
