//! The checks the sandbox applies to each uploaded invoice, as the platform would.
//!
//! Pure functions over the content (and, for a red invoice, the blue invoice it reverses). They do
//! not re-run the domain validator: they check what the platform can check on its own, with its
//! tolerances, and report the first problem with a platform-style code and a Chinese message.
//!
//! A red invoice must also name a confirmation form of its seller and blue invoice that allows a
//! red invoice (01, 04), has none recorded yet, and whose lines it reverses exactly: its line `i`
//! (numbered from 1) carries minus the amount and minus the tax of the form's line `i`, as
//! `fapiao_invoice::redletter::red_invoice` writes it.
//!
//! Tolerances: a line's tax may differ from round(amount × rate) by at most 0.06 yuan (单行税额误差),
//! the total tax from the sum of those by at most 1.27 yuan (合计税额误差); exempt (免税) and
//! non-taxable (不征税) lines must carry zero tax. Sums, and amount + tax = total, must be exact.

use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::money::round_money;
use fapiao_invoice::rate::TaxRate;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;

use crate::platform::RemoteForm;
use crate::platform::protocol::messages::codes;

/// Largest accepted |tax − round(amount × rate)| of one line, in fen.
const LINE_TAX_TOLERANCE_FEN: i64 = 6;
/// Largest accepted |total tax − Σ round(amount × rate)|, in fen.
const TOTAL_TAX_TOLERANCE_FEN: i64 = 127;

/// A refusal with a platform-style code and a Chinese message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

fn fen(value: i64) -> Decimal {
    Decimal::new(value, 2)
}

/// Everything about an invoice that needs nothing but its content and the uploading seller.
pub(crate) fn content(seller: &TaxpayerId, content: &InvoiceContent) -> Result<(), Rejection> {
    if content.seller.tax_id.as_ref() != Some(seller) {
        return Err(Rejection::new(
            codes::SELLER_MISMATCH,
            "销售方纳税人识别号与上传纳税人识别号不一致",
        ));
    }
    if content.lines.is_empty() {
        return Err(Rejection::new(codes::LINES_EMPTY, "发票明细不能为空"));
    }
    let mut expected_tax = Decimal::ZERO;
    for line in &content.lines {
        if line.amount.checked_add(line.tax) != Some(line.total) {
            return Err(Rejection::new(
                codes::TOTAL_MISMATCH,
                format!("第{}行金额与税额之和不等于价税合计", line.number),
            ));
        }
        let expected =
            line_tax(line.amount, line.rate).ok_or_else(|| tax_deviation(line.number))?;
        let deviation = line.tax.checked_sub(expected).map(|d| d.abs());
        let tolerance = match line.rate {
            TaxRate::Percent(_) => fen(LINE_TAX_TOLERANCE_FEN),
            TaxRate::Exempt | TaxRate::NonTaxable => Decimal::ZERO,
        };
        if deviation.is_none_or(|d| d > tolerance) {
            return Err(tax_deviation(line.number));
        }
        expected_tax = expected_tax
            .checked_add(expected)
            .ok_or_else(|| tax_deviation(line.number))?;
    }
    totals(content, expected_tax)?;
    sign(content)
}

fn line_tax(amount: Decimal, rate: TaxRate) -> Option<Decimal> {
    Some(round_money(amount.checked_mul(rate.fraction())?))
}

fn tax_deviation(line: u32) -> Rejection {
    Rejection::new(
        codes::TAX_DEVIATION,
        format!(
            "第{line}行税额与金额乘以税率的误差超过允许范围（{}元；免税、不征税项目税额应为0）",
            fen(LINE_TAX_TOLERANCE_FEN)
        ),
    )
}

fn totals(content: &InvoiceContent, expected_tax: Decimal) -> Result<(), Rejection> {
    let sums = fapiao_invoice::compute::totals(&content.lines);
    if sums != Some(content.totals) {
        return Err(Rejection::new(
            codes::SUMS_MISMATCH,
            "合计金额、合计税额或价税合计与明细之和不一致",
        ));
    }
    let totals = content.totals;
    if totals.amount.checked_add(totals.tax) != Some(totals.total) {
        return Err(Rejection::new(
            codes::TOTAL_MISMATCH,
            "合计金额与合计税额之和不等于价税合计",
        ));
    }
    let deviation = totals.tax.checked_sub(expected_tax).map(|d| d.abs());
    if deviation.is_none_or(|d| d > fen(TOTAL_TAX_TOLERANCE_FEN)) {
        return Err(Rejection::new(
            codes::TAX_DEVIATION,
            format!(
                "合计税额误差超过允许范围（{}元）",
                fen(TOTAL_TAX_TOLERANCE_FEN)
            ),
        ));
    }
    Ok(())
}

fn sign(content: &InvoiceContent) -> Result<(), Rejection> {
    let total = content.totals.total;
    match &content.red {
        None if total <= Decimal::ZERO => Err(Rejection::new(
            codes::SIGN_INVALID,
            "蓝字发票价税合计必须大于0",
        )),
        Some(_) if total >= Decimal::ZERO => Err(Rejection::new(
            codes::SIGN_INVALID,
            "红字发票价税合计必须小于0",
        )),
        _ => Ok(()),
    }
}

/// The blue invoice a red one names, as the platform holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlueView<'a> {
    pub seller: &'a TaxpayerId,
    pub content: &'a InvoiceContent,
    /// Tax-inclusive amount already reversed by recorded red invoices (positive).
    pub reversed: Decimal,
}

/// A red invoice's reference: the blue invoice exists, belongs to the seller, is blue, and has
/// enough left to reverse.
pub(crate) fn red_reference(
    seller: &TaxpayerId,
    red: &InvoiceContent,
    blue: Option<BlueView<'_>>,
) -> Result<(), Rejection> {
    let Some(reference) = &red.red else {
        return Ok(());
    };
    let invalid = |message: String| Rejection::new(codes::RED_REFERENCE_INVALID, message);
    let Some(blue) = blue.filter(|b| b.seller == seller) else {
        return Err(invalid(format!(
            "被红冲蓝字发票{}不存在",
            reference.blue_number
        )));
    };
    if blue.content.red.is_some() {
        return Err(invalid(format!(
            "被红冲发票{}不是蓝字发票",
            reference.blue_number
        )));
    }
    let remaining = blue.content.totals.total - blue.reversed;
    if -red.totals.total > remaining {
        return Err(invalid(format!(
            "红冲金额超过蓝字发票{}剩余可红冲金额{}",
            reference.blue_number, remaining
        )));
    }
    Ok(())
}

/// A red invoice's form: it exists for the seller and the same blue invoice, allows a red invoice,
/// has none yet, and the red lines reverse its lines exactly, in order. Blue invoices pass.
pub(crate) fn red_form(
    seller: &TaxpayerId,
    red: &InvoiceContent,
    form: Option<&RemoteForm>,
) -> Result<(), Rejection> {
    let Some(reference) = &red.red else {
        return Ok(());
    };
    let invalid = |message: String| Rejection::new(codes::RED_FORM_INVALID, message);
    let Some(form) = form.filter(|f| f.seller == *seller) else {
        return Err(invalid(format!(
            "红字发票信息确认单{}不存在",
            reference.form_number
        )));
    };
    if form.blue_number != reference.blue_number {
        return Err(invalid(format!(
            "红字发票信息确认单{}对应的蓝字发票是{}，不是{}",
            form.number, form.blue_number, reference.blue_number
        )));
    }
    if !form.status.allows_red() {
        return Err(invalid(format!(
            "红字发票信息确认单{}状态为{}，不能开具红字发票",
            form.number,
            form.status.code()
        )));
    }
    if let Some(issued) = form.red_number {
        return Err(Rejection::new(
            codes::RED_FORM_USED,
            format!("红字发票信息确认单{}已开具红字发票{issued}", form.number),
        ));
    }
    let mismatch = |message: String| Rejection::new(codes::RED_LINES_MISMATCH, message);
    if red.lines.len() != form.lines.len() {
        return Err(mismatch(format!(
            "红字发票明细{}行，确认单明细{}行",
            red.lines.len(),
            form.lines.len()
        )));
    }
    for (line, wanted) in red.lines.iter().zip(&form.lines) {
        if line.amount != -wanted.amount || line.tax != -wanted.tax {
            return Err(mismatch(format!(
                "红字发票第{}行应冲销蓝字发票第{}行金额{}、税额{}",
                line.number, wanted.blue_line, wanted.amount, wanted.tax
            )));
        }
    }
    Ok(())
}
