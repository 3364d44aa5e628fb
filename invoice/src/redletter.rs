//! Red-letter (红冲) arithmetic: what remains reversible on each blue line, whether a full or
//! partial reversal fits in it, and the content of the red invoice.
//!
//! The invariant: for every blue line, the cumulative reversed amount and tax never exceed the
//! line's own, and a reversal of everything that remains reverses it to the cent. A discounted line
//! and its discount line are reversed as one net line (as the platforms merge them), under the
//! discounted line's number.
//!
//! Serialising concurrent reversals of one blue invoice is the store's job; this module decides
//! whether one reversal fits the balance it is given.

use crate::capitals::amount_in_capitals;
use crate::compute;
use crate::limits::{Limits, char_len};
use crate::model::{InvoiceContent, Line, LineNature, RedLetterReason, RedReference};
use crate::money::{self, round_money};
use crate::number::InvoiceNumber;
use crate::rate::TaxRate;
use crate::violation::{Code, Violation, Violations};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

mod figures;

/// What earlier red invoices reversed of one blue line (positive magnitudes). Several entries for
/// the same line add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reversed {
    pub blue_line: u32,
    pub amount: Decimal,
    pub tax: Decimal,
    pub quantity: Option<Decimal>,
}

/// A reversible blue line (a normal line, or a discounted line net of its discount) and what has
/// been reversed of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineBalance {
    pub blue_line: u32,
    pub amount: Decimal,
    pub tax: Decimal,
    pub quantity: Option<Decimal>,
    /// Tax-exclusive unit price of the net line.
    pub unit_price: Option<Decimal>,
    pub rate: TaxRate,
    pub reversed_amount: Decimal,
    pub reversed_tax: Decimal,
    pub reversed_quantity: Decimal,
}

impl LineBalance {
    pub fn remaining_amount(&self) -> Decimal {
        self.amount - self.reversed_amount
    }

    pub fn remaining_tax(&self) -> Decimal {
        self.tax - self.reversed_tax
    }

    pub fn remaining_quantity(&self) -> Option<Decimal> {
        self.quantity.map(|q| q - self.reversed_quantity)
    }

    /// Nothing left to reverse on this line.
    pub fn is_exhausted(&self) -> bool {
        self.remaining_amount() <= Decimal::ZERO && self.remaining_tax() <= Decimal::ZERO
    }
}

/// The reversible lines of a blue invoice with what `reversed` already took.
pub fn balances(blue: &InvoiceContent, reversed: &[Reversed]) -> Vec<LineBalance> {
    let mut out: Vec<LineBalance> = Vec::with_capacity(blue.lines.len());
    for line in &blue.lines {
        if line.nature == LineNature::Discount {
            // Net it into the discounted line just before it (validation guarantees the order).
            if let Some(prev) = out.last_mut() {
                prev.amount += line.amount;
                prev.tax += line.tax;
                prev.unit_price = net_unit_price(prev.amount, prev.quantity);
            }
            continue;
        }
        out.push(LineBalance {
            blue_line: line.number,
            amount: line.amount,
            tax: line.tax,
            quantity: line.quantity,
            unit_price: line.unit_price,
            rate: line.rate,
            reversed_amount: Decimal::ZERO,
            reversed_tax: Decimal::ZERO,
            reversed_quantity: Decimal::ZERO,
        });
    }
    for r in reversed {
        if let Some(b) = out.iter_mut().find(|b| b.blue_line == r.blue_line) {
            b.reversed_amount += r.amount;
            b.reversed_tax += r.tax;
            b.reversed_quantity += r.quantity.unwrap_or_default();
        }
    }
    out
}

fn net_unit_price(amount: Decimal, quantity: Option<Decimal>) -> Option<Decimal> {
    let q = quantity.filter(|q| !q.is_zero())?;
    amount.checked_div(q).map(compute::fit_unit_price)
}

/// What the caller asks to reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversalScope {
    /// Everything that remains.
    Full,
    /// Chosen lines, each by amount and/or quantity.
    Lines(Vec<LineReversalDraft>),
}

/// One line of a partial reversal, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineReversalDraft {
    /// 1-based blue line number.
    pub line_number: u32,
    /// Tax-exclusive amount to reverse, positive; may be empty when a quantity is given.
    pub amount: String,
    /// Quantity to reverse, positive; optional.
    pub quantity: String,
}

/// One line of a red invoice, as positive magnitudes to subtract from a blue line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedLine {
    pub blue_line: u32,
    pub amount: Decimal,
    pub tax: Decimal,
    pub quantity: Option<Decimal>,
}

impl From<RedLine> for Reversed {
    fn from(r: RedLine) -> Self {
        Reversed {
            blue_line: r.blue_line,
            amount: r.amount,
            tax: r.tax,
            quantity: r.quantity,
        }
    }
}

/// A reversal that fits: its lines and whether it leaves nothing on the blue invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalPlan {
    pub lines: Vec<RedLine>,
    pub amount: Decimal,
    pub tax: Decimal,
    /// After this reversal the blue invoice is fully reversed.
    pub exhausts_blue: bool,
}

/// Check a reversal against what remains and compute its lines. Violations name the fields of a
/// partial reversal as `partial.lines[i].amount`.
pub fn plan_reversal(
    blue: &InvoiceContent,
    reversed: &[Reversed],
    scope: &ReversalScope,
) -> Result<ReversalPlan, Vec<Violation>> {
    let mut v = Violations::default();
    let mut balances = balances(blue, reversed);
    if balances.iter().all(LineBalance::is_exhausted) {
        v.push(
            "blue_invoice_number",
            Code::RED_NOTHING_LEFT,
            "蓝字发票已全额红冲",
        );
        return Err(v.into_vec());
    }
    let lines: Vec<RedLine> = match scope {
        ReversalScope::Full => balances
            .iter()
            .filter(|b| !b.is_exhausted())
            .map(|b| RedLine {
                blue_line: b.blue_line,
                amount: b.remaining_amount(),
                tax: b.remaining_tax(),
                quantity: b.remaining_quantity(),
            })
            .collect(),
        ReversalScope::Lines(drafts) => partial_lines(blue, &balances, drafts, &mut v),
    };
    if !v.is_empty() {
        return Err(v.into_vec());
    }
    for line in &lines {
        if let Some(b) = balances.iter_mut().find(|b| b.blue_line == line.blue_line) {
            b.reversed_amount += line.amount;
            b.reversed_tax += line.tax;
            b.reversed_quantity += line.quantity.unwrap_or_default();
        }
    }
    Ok(ReversalPlan {
        amount: lines.iter().map(|l| l.amount).sum(),
        tax: lines.iter().map(|l| l.tax).sum(),
        exhausts_blue: balances.iter().all(LineBalance::is_exhausted),
        lines,
    })
}

fn partial_lines(
    blue: &InvoiceContent,
    balances: &[LineBalance],
    drafts: &[LineReversalDraft],
    v: &mut Violations,
) -> Vec<RedLine> {
    if drafts.is_empty() {
        v.push(
            "partial.lines",
            Code::RED_LINES_REQUIRED,
            "部分红冲必须指定明细行",
        );
    }
    let mut out = Vec::with_capacity(drafts.len());
    for (i, d) in drafts.iter().enumerate() {
        let path = |f: &str| format!("partial.lines[{i}].{f}");
        if drafts[..i].iter().any(|o| o.line_number == d.line_number) {
            v.push(
                path("line_number"),
                Code::RED_LINE_DUPLICATE,
                "同一明细行只能出现一次",
            );
            continue;
        }
        let Some(balance) = balances.iter().find(|b| b.blue_line == d.line_number) else {
            let is_discount = blue
                .lines
                .iter()
                .any(|l| l.number == d.line_number && l.nature == LineNature::Discount);
            let (code, msg) = if is_discount {
                (
                    Code::RED_LINE_IS_DISCOUNT,
                    "折扣行随被折扣行一并红冲，请指定被折扣行",
                )
            } else {
                (Code::RED_LINE_UNKNOWN, "蓝字发票没有该明细行")
            };
            v.push(path("line_number"), code, msg);
            continue;
        };
        if let Some(line) = partial_line(balance, d, &path, v) {
            out.push(line);
        }
    }
    out
}

fn partial_line(
    b: &LineBalance,
    d: &LineReversalDraft,
    path: &dyn Fn(&str) -> String,
    v: &mut Violations,
) -> Option<RedLine> {
    let before = v.len();
    let amount = figures::amount(&d.amount, path("amount"), v);
    let quantity = figures::quantity(&d.quantity, path("quantity"), v);
    if d.amount.is_empty() && d.quantity.is_empty() {
        v.push(
            path("amount"),
            Code::RED_AMOUNT_REQUIRED,
            "必须填写红冲金额或数量",
        );
    }
    if quantity.is_some() && b.quantity.is_none() {
        v.push(
            path("quantity"),
            Code::RED_QUANTITY_WITHOUT_BLUE_QUANTITY,
            "蓝字发票该行没有数量，只能按金额红冲",
        );
    }
    if v.len() > before {
        return None;
    }
    let remaining_quantity = b.remaining_quantity();
    if let (Some(q), Some(left)) = (quantity, remaining_quantity)
        && q > left
    {
        v.push(
            path("quantity"),
            Code::RED_QUANTITY_EXCEEDS_REMAINING,
            format!("红冲数量超过剩余可冲数量{}", left.normalize()),
        );
        return None;
    }
    let takes_all_quantity = quantity.is_some() && quantity == remaining_quantity;
    let amount = match (amount, quantity) {
        (Some(a), _) => a,
        (None, Some(_)) if takes_all_quantity => b.remaining_amount(),
        (None, Some(q)) => round_money(q.checked_mul(b.unit_price?)?),
        (None, None) => return None,
    };
    if amount > b.remaining_amount() {
        v.push(
            path("amount"),
            Code::RED_AMOUNT_EXCEEDS_REMAINING,
            format!(
                "红冲金额超过剩余可冲金额{}",
                money::format_money(b.remaining_amount())
            ),
        );
        return None;
    }
    // The last cent goes with the last reversal: reversing what remains takes the remaining tax
    // exactly, and a rounded tax never takes more than remains.
    let tax = if amount == b.remaining_amount() {
        b.remaining_tax()
    } else {
        round_money(amount.checked_mul(b.rate.fraction())?).min(b.remaining_tax())
    };
    Some(RedLine {
        blue_line: b.blue_line,
        amount,
        tax,
        quantity,
    })
}

/// The remark prefix the platform adds to red invoices.
pub fn red_remark_prefix(reference: &RedReference) -> String {
    format!(
        "被红冲蓝字数电发票号码：{} 红字发票信息确认单编号：{}",
        reference.blue_number, reference.form_number
    )
}

/// The lines of a red invoice (or form) reversing `reversed`: each a copy of its blue line with
/// negative quantity, amount, tax and total, numbered from 1 in the order given. A line whose blue
/// line is unknown is left out.
pub fn red_lines(blue: &InvoiceContent, reversed: &[RedLine]) -> Vec<Line> {
    reversed
        .iter()
        .zip(1u32..)
        .filter_map(|(red, number)| {
            let source = blue.lines.iter().find(|l| l.number == red.blue_line)?;
            Some(Line {
                number,
                nature: LineNature::Normal,
                quantity: red.quantity.map(|q| -q),
                unit_price: match red.quantity {
                    Some(q) if !q.is_zero() => {
                        red.amount.checked_div(q).map(compute::fit_unit_price)
                    }
                    _ => None,
                },
                amount: -red.amount,
                tax: -red.tax,
                total: -(red.amount + red.tax),
                ..source.clone()
            })
        })
        .collect()
}

/// The red invoice reversing `reversed` (a plan's or a form's lines): negative amounts and
/// quantities, the blue parties, one line per reversed blue line, the remark prefix and `（负数）`
/// capitals.
pub fn red_invoice(
    blue: &InvoiceContent,
    reversed: &[RedLine],
    reference: RedReference,
    request_id: &str,
    remark: &str,
    drawer: &str,
    limits: &Limits,
) -> Result<InvoiceContent, Vec<Violation>> {
    let mut v = Violations::default();
    let remark = remark.trim();
    if char_len(remark) > limits.remark_red {
        v.push(
            "remark",
            Code::TEXT_TOO_LONG,
            format!("红字发票备注最多{}个字符", limits.remark_red),
        );
    }
    let drawer = drawer.trim();
    if drawer.is_empty() {
        v.push("drawer", Code::DRAWER_REQUIRED, "开票人不能为空");
    }
    if request_id.trim().is_empty() {
        v.push(
            "request_id",
            Code::REQUEST_ID_REQUIRED,
            "请求流水号不能为空",
        );
    }
    let lines = red_lines(blue, reversed);
    let Some(totals) = compute::totals(&lines) else {
        v.push("lines", Code::TOTAL_RANGE, "价税合计超出金额范围");
        return Err(v.into_vec());
    };
    let prefix = red_remark_prefix(&reference);
    let remark = if remark.is_empty() {
        prefix
    } else {
        format!("{prefix} {remark}")
    };
    v.finish(InvoiceContent {
        request_id: request_id.trim().to_owned(),
        kind: blue.kind,
        seller: blue.seller.clone(),
        buyer: blue.buyer.clone(),
        pricing: blue.pricing,
        total_in_words: amount_in_capitals(totals.total).unwrap_or_default(),
        lines,
        totals,
        remark,
        drawer: drawer.to_owned(),
        payee: blue.payee.clone(),
        reviewer: blue.reviewer.clone(),
        red: Some(reference),
    })
}

/// A red-letter request as sent, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedLetterDraft {
    pub request_id: String,
    pub blue_invoice_number: String,
    /// `None` when the caller did not say.
    pub reason: Option<RedLetterReason>,
    /// `None` when the caller asked for neither a full nor a partial reversal.
    pub scope: Option<ReversalScope>,
    pub remark: String,
    pub drawer: String,
}

/// A red-letter request whose fields are each well-formed; whether it fits the blue invoice is
/// [`plan_reversal`]'s to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedLetterRequest {
    pub request_id: String,
    pub blue_number: InvoiceNumber,
    pub reason: RedLetterReason,
    pub scope: ReversalScope,
    pub remark: String,
    pub drawer: String,
}

/// Check every field of a request at once; violations name the fields as the contract does
/// (`request_id`, `blue_invoice_number`, `reason`, `scope`, `remark`, `drawer`, and the text of a
/// partial reversal's `partial.lines[i].amount` and `.quantity`, so that a malformed figure is
/// refused even when the request id is already on file).
pub fn validate_request(
    draft: &RedLetterDraft,
    limits: &Limits,
) -> Result<RedLetterRequest, Vec<Violation>> {
    let mut v = Violations::default();
    let request_id = draft.request_id.trim();
    if request_id.is_empty() {
        v.push(
            "request_id",
            Code::REQUEST_ID_REQUIRED,
            "请求流水号不能为空",
        );
    } else if request_id.chars().any(|c| !c.is_ascii_graphic()) {
        v.push(
            "request_id",
            Code::REQUEST_ID_FORMAT,
            "请求流水号只能含可打印的ASCII字符",
        );
    }
    if char_len(request_id) > limits.request_id {
        v.push(
            "request_id",
            Code::TEXT_TOO_LONG,
            format!("请求流水号最多{}个字符", limits.request_id),
        );
    }
    let blue_number = match draft.blue_invoice_number.trim().parse::<InvoiceNumber>() {
        Ok(number) => Some(number),
        Err(_) => {
            v.push(
                "blue_invoice_number",
                Code::RED_BLUE_NUMBER_FORMAT,
                "蓝字发票号码须为20位数字",
            );
            None
        }
    };
    if draft.reason.is_none() {
        v.push("reason", Code::RED_REASON_REQUIRED, "必须选择冲红原因");
    }
    if draft.scope.is_none() {
        v.push(
            "scope",
            Code::RED_SCOPE_REQUIRED,
            "必须选择全额红冲或部分红冲",
        );
    }
    let remark = draft.remark.trim();
    if char_len(remark) > limits.remark_red {
        v.push(
            "remark",
            Code::TEXT_TOO_LONG,
            format!("红字发票备注最多{}个字符", limits.remark_red),
        );
    }
    crate::validate::check_characters("remark", "备注", remark, &mut v);
    let drawer = draft.drawer.trim();
    crate::validate::check_characters("drawer", "开票人", drawer, &mut v);
    if drawer.is_empty() {
        v.push("drawer", Code::DRAWER_REQUIRED, "开票人不能为空");
    } else if char_len(drawer) > limits.drawer {
        v.push(
            "drawer",
            Code::TEXT_TOO_LONG,
            format!("开票人最多{}个字符", limits.drawer),
        );
    }
    if let Some(ReversalScope::Lines(lines)) = &draft.scope {
        figures::check_partial_text(lines, &mut v);
    }
    match (blue_number, draft.reason, &draft.scope) {
        (Some(blue_number), Some(reason), Some(scope)) if v.is_empty() => Ok(RedLetterRequest {
            request_id: request_id.to_owned(),
            blue_number,
            reason,
            scope: scope.clone(),
            remark: remark.to_owned(),
            drawer: drawer.to_owned(),
        }),
        _ => Err(v.into_vec()),
    }
}

/// Status of a red-letter confirmation form (红字发票信息确认单状态, `hzqrxxztDm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FormStatus {
    /// 01 无需确认: the seller issues the red invoice now.
    NoConfirmationNeeded,
    /// 02 销方录入待购方确认.
    AwaitingBuyer,
    /// 03 购方录入待销方确认.
    AwaitingSeller,
    /// 04 购销双方已确认: the seller issues the red invoice now.
    Confirmed,
    /// 05 作废（销方录入购方否认）.
    VoidBuyerDisagreed,
    /// 06 作废（购方录入销方否认）.
    VoidSellerDisagreed,
    /// 07 作废（超72小时未确认）.
    VoidExpired,
    /// 08 作废（发起方已撤销）.
    VoidWithdrawn,
    /// 09 作废（确认后撤销）.
    VoidRevokedAfterConfirmation,
    /// 10 作废（异常凭证）.
    VoidAbnormalVoucher,
    /// 11 作废（纳税人状态异常阻断）.
    VoidTaxpayerBlocked,
    /// 12 作废（自然人拒收）.
    VoidNaturalPersonRefused,
    /// 13 作废（已开具退税申请单）.
    VoidRefundApplicationIssued,
}

impl FormStatus {
    const ALL: [Self; 13] = [
        Self::NoConfirmationNeeded,
        Self::AwaitingBuyer,
        Self::AwaitingSeller,
        Self::Confirmed,
        Self::VoidBuyerDisagreed,
        Self::VoidSellerDisagreed,
        Self::VoidExpired,
        Self::VoidWithdrawn,
        Self::VoidRevokedAfterConfirmation,
        Self::VoidAbnormalVoucher,
        Self::VoidTaxpayerBlocked,
        Self::VoidNaturalPersonRefused,
        Self::VoidRefundApplicationIssued,
    ];

    /// The platform's two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoConfirmationNeeded => "01",
            Self::AwaitingBuyer => "02",
            Self::AwaitingSeller => "03",
            Self::Confirmed => "04",
            Self::VoidBuyerDisagreed => "05",
            Self::VoidSellerDisagreed => "06",
            Self::VoidExpired => "07",
            Self::VoidWithdrawn => "08",
            Self::VoidRevokedAfterConfirmation => "09",
            Self::VoidAbnormalVoucher => "10",
            Self::VoidTaxpayerBlocked => "11",
            Self::VoidNaturalPersonRefused => "12",
            Self::VoidRefundApplicationIssued => "13",
        }
    }

    /// The status of a two-digit code; `None` for anything else.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Waiting for one party to answer (02, 03); such a form expires after 72 hours.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::AwaitingBuyer | Self::AwaitingSeller)
    }

    /// The red invoice may be issued (01, 04).
    pub fn allows_red(self) -> bool {
        matches!(self, Self::NoConfirmationNeeded | Self::Confirmed)
    }

    /// Void: terminal, and what it reserved of the blue invoice is free again (05 to 13).
    pub fn is_void(self) -> bool {
        !self.is_pending() && !self.allows_red()
    }
}

/// Which party filed a form (录入方身份, `lrfsf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Initiator {
    /// `lrfsf` 0.
    Seller,
    /// `lrfsf` 1.
    Buyer,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod form_status_tests {
    use super::*;
    use crate::violation::Code;

    #[test]
    fn a_request_reports_every_bad_field_at_once() {
        let draft = RedLetterDraft {
            request_id: "退款 1".into(),
            blue_invoice_number: "123".into(),
            remark: "备".repeat(383),
            ..Default::default()
        };
        let codes: Vec<(String, Code)> = validate_request(&draft, &Limits::default())
            .unwrap_err()
            .into_iter()
            .map(|v| (v.field, v.code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("request_id".to_owned(), Code::REQUEST_ID_FORMAT),
                (
                    "blue_invoice_number".to_owned(),
                    Code::RED_BLUE_NUMBER_FORMAT
                ),
                ("reason".to_owned(), Code::RED_REASON_REQUIRED),
                ("scope".to_owned(), Code::RED_SCOPE_REQUIRED),
                ("remark".to_owned(), Code::TEXT_TOO_LONG),
                ("drawer".to_owned(), Code::DRAWER_REQUIRED),
            ]
        );
    }

    #[test]
    fn a_good_request_is_trimmed() {
        let draft = RedLetterDraft {
            request_id: " refund-1 ".into(),
            blue_invoice_number: "25312000000000000001".into(),
            reason: Some(RedLetterReason::SalesReturn),
            scope: Some(ReversalScope::Full),
            remark: "".into(),
            drawer: " 张三 ".into(),
        };
        let request = validate_request(&draft, &Limits::default()).unwrap();
        assert_eq!(request.request_id, "refund-1");
        assert_eq!(request.drawer, "张三");
        assert_eq!(request.blue_number.to_string(), "25312000000000000001");
    }

    #[test]
    fn every_code_reads_back_and_falls_in_exactly_one_class() {
        for status in FormStatus::ALL {
            assert_eq!(FormStatus::from_code(status.code()), Some(status));
            let classes = [status.is_pending(), status.allows_red(), status.is_void()];
            assert_eq!(classes.iter().filter(|c| **c).count(), 1, "{status:?}");
        }
        assert_eq!(FormStatus::from_code("00"), None);
        assert_eq!(FormStatus::from_code("1"), None);
        assert!(FormStatus::AwaitingBuyer.is_pending());
        assert!(FormStatus::Confirmed.allows_red());
        assert!(FormStatus::VoidExpired.is_void());
    }
}
