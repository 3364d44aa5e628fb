//! The figures of a partial reversal as sent: the amount and quantity to reverse of one blue
//! line. Each is either empty (not sent) or a positive plain decimal, `digits(.digits)?` within
//! its digits, with nothing around it: `" 40"` is a format violation like `"4O"`. Whether the
//! figures fit what remains of the blue line is [`super::plan_reversal`]'s business.

use super::LineReversalDraft;
use crate::money::{self, NumberError};
use crate::violation::Violations;
use rust_decimal::Decimal;

/// The tax-exclusive amount to reverse (`RED_AMOUNT_*`), `None` when empty or refused.
pub(super) fn amount(raw: &str, field: String, v: &mut Violations) -> Option<Decimal> {
    positive(raw, field, "RED_AMOUNT", "红冲金额", money::parse_money, v)
}

/// The quantity to reverse (`RED_QUANTITY_*`), `None` when empty or refused.
pub(super) fn quantity(raw: &str, field: String, v: &mut Violations) -> Option<Decimal> {
    positive(
        raw,
        field,
        "RED_QUANTITY",
        "红冲数量",
        money::parse_quantity,
        v,
    )
}

/// Check the text of every line of a partial reversal, without a blue invoice: what a request
/// can be refused for before it is compared with anything on file.
pub(super) fn check_partial_text(lines: &[LineReversalDraft], v: &mut Violations) {
    for (i, line) in lines.iter().enumerate() {
        amount(&line.amount, format!("partial.lines[{i}].amount"), v);
        quantity(&line.quantity, format!("partial.lines[{i}].quantity"), v);
    }
}

fn positive(
    raw: &str,
    field: String,
    prefix: &str,
    label: &str,
    parse: fn(&str) -> Result<Decimal, NumberError>,
    v: &mut Violations,
) -> Option<Decimal> {
    if raw.is_empty() {
        return None;
    }
    match parse(raw) {
        Ok(x) if x > Decimal::ZERO => Some(x),
        Ok(_) => {
            v.push_prefixed(&field, prefix, "NOT_POSITIVE", format!("{label}必须大于零"));
            None
        }
        Err(e) => {
            v.push_prefixed(&field, prefix, e.code_suffix(), e.message_zh(label));
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{RedLetterDraft, ReversalScope, validate_request};
    use super::*;
    use crate::limits::Limits;
    use crate::model::RedLetterReason;
    use crate::violation::Code;

    fn part(amount: &str, quantity: &str) -> LineReversalDraft {
        LineReversalDraft {
            line_number: 1,
            amount: amount.into(),
            quantity: quantity.into(),
        }
    }

    fn refused(lines: Vec<LineReversalDraft>) -> Vec<(String, Code)> {
        let draft = RedLetterDraft {
            request_id: "refund-1".into(),
            blue_invoice_number: "25312000000000000001".into(),
            reason: Some(RedLetterReason::SalesReturn),
            scope: Some(ReversalScope::Lines(lines)),
            remark: String::new(),
            drawer: "张三".into(),
        };
        match validate_request(&draft, &Limits::default()) {
            Ok(_) => Vec::new(),
            Err(found) => found.into_iter().map(|v| (v.field, v.code)).collect(),
        }
    }

    #[test]
    fn spaces_around_or_inside_figures_are_format_violations() {
        let found = refused(vec![
            part(" 40", ""),
            part("", "1 "),
            part("4 0", "\t2"),
            part(" ", " "),
            part("40", "2"),
        ]);
        let path = |i: usize, f: &str| format!("partial.lines[{i}].{f}");
        assert_eq!(
            found,
            vec![
                (path(0, "amount"), Code::RED_AMOUNT_FORMAT),
                (path(1, "quantity"), Code::RED_QUANTITY_FORMAT),
                (path(2, "amount"), Code::RED_AMOUNT_FORMAT),
                (path(2, "quantity"), Code::RED_QUANTITY_FORMAT),
                (path(3, "amount"), Code::RED_AMOUNT_FORMAT),
                (path(3, "quantity"), Code::RED_QUANTITY_FORMAT),
            ]
        );
    }

    #[test]
    fn figures_are_checked_with_the_rest_of_the_request() {
        let found = refused(vec![part("1.001", "0"), part("", "")]);
        assert_eq!(
            found,
            vec![
                (
                    "partial.lines[0].amount".to_owned(),
                    Code::RED_AMOUNT_PRECISION
                ),
                (
                    "partial.lines[0].quantity".to_owned(),
                    Code::RED_QUANTITY_NOT_POSITIVE
                ),
            ]
        );
        assert!(refused(vec![part("40.00", ""), part("", "0.5")]).is_empty());
    }
}
