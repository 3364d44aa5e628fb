//! Invoice lines: item, code and rate; quantity, price and amount; computed amounts; and the
//! discount-line structure (折扣行 rules as providers and the platform enforce them).

use super::{Validator, push_number};
use crate::catalog::TaxCode;
use crate::compute::{self, LineAmounts};
use crate::limits::char_len;
use crate::model::{InvoiceDraft, InvoiceKind, Line, LineDraft, LineNature, PricingMode};
use crate::money::{self, fits_money, round_money};
use crate::rate::TaxRate;
use crate::violation::{Code, Violations};
use rust_decimal::Decimal;

impl Validator<'_> {
    /// Every line, then the discount structure. `None` when any line is invalid.
    pub(super) fn lines(&self, draft: &InvoiceDraft, v: &mut Violations) -> Option<Vec<Line>> {
        if draft.lines.is_empty() {
            v.push("lines", Code::LINES_REQUIRED, "发票明细不能为空");
            return None;
        }
        if draft.lines.len() > self.limits.lines {
            v.push(
                "lines",
                Code::LINES_TOO_MANY,
                format!(
                    "发票明细最多{}行，实际{}行",
                    self.limits.lines,
                    draft.lines.len()
                ),
            );
            return None;
        }
        let checked: Vec<CheckedLine> = draft
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| self.line(i, line, draft.kind, draft.pricing, v))
            .collect();
        check_discounts(&checked, v);
        let number = |i: usize| u32::try_from(i + 1).unwrap_or(u32::MAX);
        checked
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_line(number(i)))
            .collect()
    }

    fn line(
        &self,
        i: usize,
        d: &LineDraft,
        kind: Option<InvoiceKind>,
        pricing: Option<PricingMode>,
        v: &mut Violations,
    ) -> CheckedLine {
        let l = self.limits;
        let path = |f: &str| format!("lines[{i}].{f}");
        let item_name = self.text(&path("item_name"), "项目名称", &d.item_name, l.item_name, v);
        if item_name.is_empty() {
            v.push(
                path("item_name"),
                Code::LINE_ITEM_NAME_REQUIRED,
                "项目名称不能为空",
            );
        }
        let specification = self.text(
            &path("specification"),
            "规格型号",
            &d.specification,
            l.specification,
            v,
        );
        let unit = self.text(&path("unit"), "单位", &d.unit, l.unit, v);

        let tax_code = match TaxCode::parse(&d.tax_code) {
            Ok(code) => Some(code),
            Err(e) => {
                v.push_prefixed(&path("tax_code"), "LINE", e.code(), e.message_zh());
                None
            }
        };
        let entry = tax_code.and_then(|code| {
            let entry = self.catalog.get(&code);
            if entry.is_none() {
                v.push(
                    path("tax_code"),
                    Code::LINE_TAX_CODE_UNKNOWN,
                    format!("税收分类编码{code}不在可用编码表中"),
                );
            }
            entry
        });
        let rate = match TaxRate::parse_strict(&d.tax_rate) {
            Ok(rate) => Some(rate),
            Err(e) => {
                v.push_prefixed(&path("tax_rate"), "LINE", e.code(), e.message_zh());
                None
            }
        };
        if let (Some(entry), Some(rate)) = (entry, rate)
            && !entry.allows(&rate)
        {
            v.push(
                path("tax_rate"),
                Code::LINE_TAX_RATE_NOT_ALLOWED,
                format!(
                    "税率{rate}不适用于税收分类编码{}（{}）",
                    entry.code, entry.name
                ),
            );
        }
        if rate == Some(TaxRate::Exempt) && kind == Some(InvoiceKind::Special) {
            v.push(
                path("tax_rate"),
                Code::LINE_EXEMPT_ON_SPECIAL,
                "免税项目不能开具增值税专用发票",
            );
        }
        let printed_name = entry.map(|e| e.printed_item_name(&item_name));
        if let Some(printed) = &printed_name {
            let len = char_len(printed);
            if len > l.printed_item_name {
                v.push(
                    path("item_name"),
                    Code::LINE_PRINTED_NAME_TOO_LONG,
                    format!("“*简称*名称”最多{}个字符，实际{len}个", l.printed_item_name),
                );
            }
        }
        let figures = self.figures(i, d, v);
        let amounts = match (figures, rate, pricing) {
            (Some(f), Some(rate), Some(mode)) => self.compute_amounts(i, f, rate, mode, v),
            _ => None,
        };
        CheckedLine {
            nature: d.nature,
            item_name,
            printed_name,
            tax_code,
            specification,
            unit,
            rate,
            figures,
            amounts,
        }
    }

    /// Quantity, unit price and amount as sent, with their own rules. Only the empty text is
    /// "not sent"; anything else, spaces included, must be a plain decimal (`" 1 "` is a format
    /// violation, as the contract says).
    fn figures(&self, i: usize, d: &LineDraft, v: &mut Violations) -> Option<Figures> {
        let path = |f: &str| format!("lines[{i}].{f}");
        let before = v.len();
        let parse = |field: &str,
                     label: &str,
                     prefix: &str,
                     parser: fn(&str) -> Result<Decimal, money::NumberError>,
                     raw: &str,
                     v: &mut Violations| {
            if raw.is_empty() {
                return None;
            }
            parser(raw)
                .map_err(|e| push_number(v, &path(field), prefix, label, e))
                .ok()
        };
        let quantity = parse(
            "quantity",
            "数量",
            "LINE_QUANTITY",
            money::parse_quantity,
            &d.quantity,
            v,
        );
        let unit_price = parse(
            "unit_price",
            "单价",
            "LINE_UNIT_PRICE",
            money::parse_quantity,
            &d.unit_price,
            v,
        );
        let amount = parse(
            "amount",
            "金额",
            "LINE_AMOUNT",
            money::parse_money,
            &d.amount,
            v,
        );
        let quantity_sent = !d.quantity.is_empty();
        let price_sent = !d.unit_price.is_empty();
        let amount_sent = !d.amount.is_empty();

        if d.nature == LineNature::Discount {
            if quantity_sent || price_sent {
                v.push(
                    path("quantity"),
                    Code::DISCOUNT_HAS_QUANTITY,
                    "折扣行不填写数量和单价",
                );
            }
        } else {
            if quantity_sent && !price_sent {
                v.push(
                    path("unit_price"),
                    Code::LINE_QUANTITY_WITHOUT_PRICE,
                    "填写数量时必须填写单价",
                );
            }
            if price_sent && !quantity_sent {
                v.push(
                    path("quantity"),
                    Code::LINE_PRICE_WITHOUT_QUANTITY,
                    "填写单价时必须填写数量",
                );
            }
        }
        if let Some(q) = quantity {
            if q.is_zero() {
                v.push(path("quantity"), Code::LINE_QUANTITY_ZERO, "数量不能为零");
            } else if q.is_sign_negative() {
                v.push(
                    path("quantity"),
                    Code::LINE_QUANTITY_NEGATIVE,
                    "蓝字发票数量必须大于零",
                );
            }
        }
        if let Some(p) = unit_price {
            if p.is_zero() {
                v.push(
                    path("unit_price"),
                    Code::LINE_UNIT_PRICE_ZERO,
                    "单价不能为零",
                );
            } else if p.is_sign_negative() {
                v.push(
                    path("unit_price"),
                    Code::LINE_UNIT_PRICE_NEGATIVE,
                    "单价不能为负数",
                );
            }
        }
        let amount = match (amount, quantity, unit_price) {
            (Some(a), _, _) => Some(a),
            (None, Some(q), Some(p)) if !amount_sent => q.checked_mul(p).map(round_money),
            _ => None,
        };
        if !(amount_sent || quantity_sent && price_sent) {
            v.push(path("amount"), Code::LINE_AMOUNT_REQUIRED, "金额不能为空");
        }
        if let Some(a) = amount {
            if !fits_money(a) {
                v.push(path("amount"), Code::LINE_AMOUNT_RANGE, "金额超出范围");
            } else if a.is_zero() {
                v.push(path("amount"), Code::LINE_AMOUNT_ZERO, "金额不能为零");
            } else if d.nature == LineNature::Discount && a.is_sign_positive() {
                v.push(
                    path("amount"),
                    Code::DISCOUNT_AMOUNT_NOT_NEGATIVE,
                    "蓝字发票折扣行金额必须为负数",
                );
            } else if d.nature != LineNature::Discount && a.is_sign_negative() {
                v.push(
                    path("amount"),
                    Code::LINE_AMOUNT_NEGATIVE,
                    "蓝字发票金额必须大于零",
                );
            }
        }
        if let (true, Some(a), Some(q), Some(p)) = (amount_sent, amount, quantity, unit_price) {
            let deviation = compute::price_deviation(a, q, p);
            if deviation.is_none_or(|dev| dev > self.limits.line_amount_tolerance) {
                v.push(
                    path("amount"),
                    Code::LINE_AMOUNT_MISMATCH,
                    format!(
                        "金额与数量×单价相差超过{}元",
                        self.limits.line_amount_tolerance
                    ),
                );
            }
        }
        if v.len() > before {
            return None;
        }
        Some(Figures {
            quantity,
            unit_price,
            amount: amount?,
        })
    }

    /// The computed amounts, and the tax-exclusive unit price the line carries. A tax-exclusive
    /// price is the caller's, already checked against the amount in [`Validator::figures`]; a
    /// tax-inclusive one is converted so that the issued line holds the same check
    /// ([`compute::derived_unit_price`]), or the line is refused when no price can.
    fn compute_amounts(
        &self,
        i: usize,
        f: Figures,
        rate: TaxRate,
        mode: PricingMode,
        v: &mut Violations,
    ) -> Option<(LineAmounts, Option<Decimal>)> {
        match mode {
            PricingMode::TaxExclusive => {
                Some((compute::from_exclusive(f.amount, rate)?, f.unit_price))
            }
            PricingMode::TaxInclusive => {
                let amounts = compute::from_inclusive(f.amount, rate)?;
                let (Some(quantity), Some(price)) = (f.quantity, f.unit_price) else {
                    return Some((amounts, None));
                };
                let tolerance = self.limits.line_amount_tolerance;
                match compute::derived_unit_price(price, quantity, amounts.amount, rate, tolerance)
                {
                    Some(price) => Some((amounts, Some(price))),
                    None => {
                        v.push(
                            format!("lines[{i}].unit_price"),
                            Code::LINE_UNIT_PRICE_UNREPRESENTABLE,
                            format!(
                                "无法得出不含税单价使数量×单价与不含税金额{}相差不超过{tolerance}元，请调整数量的计量单位",
                                amounts.amount
                            ),
                        );
                        None
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    quantity: Option<Decimal>,
    unit_price: Option<Decimal>,
    /// As sent (tax-exclusive or tax-inclusive per the pricing mode).
    amount: Decimal,
}

/// A line after its own checks, before the discount structure is checked.
#[derive(Debug)]
struct CheckedLine {
    nature: LineNature,
    item_name: String,
    printed_name: Option<String>,
    tax_code: Option<TaxCode>,
    specification: String,
    unit: String,
    rate: Option<TaxRate>,
    figures: Option<Figures>,
    amounts: Option<(LineAmounts, Option<Decimal>)>,
}

impl CheckedLine {
    /// The computed line, when every part of it was usable (the printed name exists only when the
    /// code is in the catalog).
    fn into_line(self, number: u32) -> Option<Line> {
        let (amounts, unit_price) = self.amounts?;
        Some(Line {
            number,
            nature: self.nature,
            item_name: self.item_name,
            printed_name: self.printed_name?,
            tax_code: self.tax_code?,
            specification: self.specification,
            unit: self.unit,
            quantity: self.figures?.quantity,
            unit_price,
            amount: amounts.amount,
            rate: self.rate?,
            tax: amounts.tax,
            total: amounts.total,
        })
    }
}

/// Discount lines (折扣行): a discount line follows its discounted line, never first, never two in a row;
/// a discounted line is followed by its discount line (so the last line is never discounted);
/// same item name, code and rate; |discount| ≤ discounted amount.
fn check_discounts(lines: &[CheckedLine], v: &mut Violations) {
    for (i, line) in lines.iter().enumerate() {
        let path = |f: &str| format!("lines[{i}].{f}");
        match line.nature {
            LineNature::Discount => {
                let Some(prev) = i.checked_sub(1).and_then(|p| lines.get(p)) else {
                    v.push(
                        path("nature"),
                        Code::DISCOUNT_FIRST_LINE,
                        "折扣行不能是第一行",
                    );
                    continue;
                };
                if prev.nature != LineNature::Discounted {
                    v.push(
                        path("nature"),
                        Code::DISCOUNT_NOT_AFTER_DISCOUNTED,
                        "折扣行必须紧跟在被折扣行之后",
                    );
                    continue;
                }
                let same_item = prev.item_name == line.item_name
                    && same_known(prev.tax_code, line.tax_code)
                    && same_known(prev.rate, line.rate);
                if !same_item {
                    v.push(
                        path("item_name"),
                        Code::DISCOUNT_ITEM_MISMATCH,
                        "折扣行的项目名称、税收分类编码和税率必须与被折扣行一致",
                    );
                }
                if let (Some(p), Some(d)) = (prev.figures, line.figures)
                    && d.amount.abs() > p.amount
                {
                    v.push(
                        path("amount"),
                        Code::DISCOUNT_EXCEEDS_DISCOUNTED,
                        "折扣金额不能大于被折扣行金额",
                    );
                }
            }
            LineNature::Discounted => {
                let next = lines.get(i + 1).map(|n| n.nature);
                if next != Some(LineNature::Discount) {
                    v.push(
                        path("nature"),
                        Code::DISCOUNTED_WITHOUT_DISCOUNT,
                        "被折扣行之后必须紧跟折扣行",
                    );
                }
            }
            LineNature::Normal => {}
        }
    }
}

/// Equal when both are known; an unknown side was already reported on its own.
fn same_known<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}
