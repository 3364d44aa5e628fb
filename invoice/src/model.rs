//! The invoice model: what a caller asks for ([`InvoiceDraft`], text as sent) and what validation
//! makes of it ([`InvoiceContent`], typed and computed).
//!
//! Numbers, issue times and states belong to the issuance workflow, not here: an
//! [`InvoiceContent`] is everything about an invoice that can be decided before it is numbered.

use crate::catalog::TaxCode;
use crate::number::InvoiceNumber;
use crate::rate::TaxRate;
use crate::taxpayer::{ResidentIdNumber, TaxpayerId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// 发票票种.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InvoiceKind {
    /// 电子发票（增值税专用发票）, 数电专票: the buyer can deduct input VAT.
    Special,
    /// 电子发票（普通发票）, 数电普票.
    General,
}

impl InvoiceKind {
    /// 乐企 `fppz` code: `01` 专票, `02` 普票.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Special => "01",
            Self::General => "02",
        }
    }

    /// The title printed on the layout.
    pub fn title_zh(&self) -> &'static str {
        match self {
            Self::Special => "电子发票（增值税专用发票）",
            Self::General => "电子发票（普通发票）",
        }
    }
}

/// Whether the amounts and unit prices a caller sends include VAT (乐企 `hsbz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PricingMode {
    TaxExclusive,
    TaxInclusive,
}

/// 发票行性质.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum LineNature {
    #[default]
    Normal,
    /// 折扣行: follows its discounted line, negative on a blue invoice.
    Discount,
    /// 被折扣行: followed by its discount line.
    Discounted,
}

impl LineNature {
    /// 乐企 `fphxz` code: `00`, `01`, `02`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Normal => "00",
            Self::Discount => "01",
            Self::Discounted => "02",
        }
    }
}

/// 蓝字 or 红字.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Colour {
    Blue,
    Red,
}

/// 自然人证件类型 codes accepted for natural-person buyers.
pub const NATURAL_PERSON_ID_TYPES: &[(&str, &str)] = &[
    ("201", "居民身份证"),
    ("208", "外国护照"),
    ("210", "港澳居民来往内地通行证"),
    ("213", "台湾居民来往大陆通行证"),
    ("227", "中国护照"),
    ("233", "外国人永久居留身份证"),
    ("237", "港澳居民居住证"),
    ("238", "台湾居民居住证"),
];

/// The 居民身份证 id type, whose numbers are checked with GB 11643.
pub const ID_TYPE_RESIDENT_CARD: &str = "201";

/// Seller as sent (the seller's tax id comes with the request, the rest from its profile).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerDraft {
    pub tax_id: String,
    pub name: String,
    pub address: String,
    pub phone: String,
    pub bank_name: String,
    pub bank_account: String,
}

/// Buyer as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerDraft {
    pub name: String,
    pub tax_id: String,
    /// 购买方自然人标志.
    pub natural_person: bool,
    /// 自然人证件类型 code, e.g. `201`.
    pub id_type: String,
    pub id_number: String,
    pub address: String,
    pub phone: String,
    pub bank_name: String,
    pub bank_account: String,
    pub email: String,
    pub mobile: String,
}

/// A line as sent. Numbers are text so that validation can report every malformed one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDraft {
    pub item_name: String,
    pub tax_code: String,
    pub specification: String,
    pub unit: String,
    pub quantity: String,
    pub unit_price: String,
    /// Tax-exclusive or tax-inclusive, per the invoice's pricing mode.
    pub amount: String,
    pub tax_rate: String,
    pub nature: LineNature,
}

/// A blue invoice as a caller asks for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDraft {
    /// The caller's order number: the idempotency key, unique per seller.
    pub request_id: String,
    pub kind: Option<InvoiceKind>,
    pub seller: SellerDraft,
    pub buyer: BuyerDraft,
    pub pricing: Option<PricingMode>,
    pub lines: Vec<LineDraft>,
    pub remark: String,
    pub drawer: String,
    pub payee: String,
    pub reviewer: String,
}

/// A validated party. Text fields are trimmed; empty optional fields are empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    /// Absent only for natural-person buyers without one.
    pub tax_id: Option<TaxpayerId>,
    pub address: String,
    pub phone: String,
    pub bank_name: String,
    pub bank_account: String,
}

/// A natural person's identity document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalId {
    pub id_type: String,
    pub number: String,
    /// Set when the type is 居民身份证 and the number passed GB 11643.
    pub resident_id: Option<ResidentIdNumber>,
}

/// A validated buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    pub party: Party,
    pub natural_person: bool,
    pub personal_id: Option<PersonalId>,
    pub email: String,
    pub mobile: String,
}

/// A computed line. Amounts are tax-exclusive (`amount`), tax, and tax-inclusive (`total`), with
/// `amount + tax == total` exactly; all negative on red invoices and on discount lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// 1-based, as printed.
    pub number: u32,
    pub nature: LineNature,
    /// 项目名称 as sent (without the `*简称*` prefix).
    pub item_name: String,
    /// `*简称*名称`, as printed.
    pub printed_name: String,
    pub tax_code: TaxCode,
    pub specification: String,
    pub unit: String,
    pub quantity: Option<Decimal>,
    /// Tax-exclusive unit price (derived from the inclusive one in tax-inclusive mode).
    pub unit_price: Option<Decimal>,
    pub amount: Decimal,
    pub rate: TaxRate,
    pub tax: Decimal,
    pub total: Decimal,
}

/// 合计金额, 合计税额, 价税合计: exact sums of the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub amount: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
}

/// 冲红原因.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RedLetterReason {
    /// 01 开票有误.
    IssuedInError,
    /// 02 销货退回.
    SalesReturn,
    /// 03 服务中止.
    ServiceTerminated,
    /// 04 销售折让.
    SalesAllowance,
}

impl RedLetterReason {
    const ALL: [Self; 4] = [
        Self::IssuedInError,
        Self::SalesReturn,
        Self::ServiceTerminated,
        Self::SalesAllowance,
    ];

    /// The reason of a two-digit `chyyDm`; `None` for anything else.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// 乐企 `chyyDm`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IssuedInError => "01",
            Self::SalesReturn => "02",
            Self::ServiceTerminated => "03",
            Self::SalesAllowance => "04",
        }
    }
}

/// What a red invoice reverses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedReference {
    pub blue_number: InvoiceNumber,
    /// 红字发票信息确认单编号.
    pub form_number: String,
    pub reason: RedLetterReason,
}

/// Everything about an invoice that is decided before it is numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceContent {
    pub request_id: String,
    pub kind: InvoiceKind,
    pub seller: Party,
    pub buyer: Buyer,
    pub pricing: PricingMode,
    pub lines: Vec<Line>,
    pub totals: Totals,
    /// 价税合计（大写）.
    pub total_in_words: String,
    pub remark: String,
    pub drawer: String,
    pub payee: String,
    pub reviewer: String,
    /// Set on red invoices.
    pub red: Option<RedReference>,
}

impl InvoiceContent {
    pub fn colour(&self) -> Colour {
        if self.red.is_some() {
            Colour::Red
        } else {
            Colour::Blue
        }
    }
}
