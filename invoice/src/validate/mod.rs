//! Validation of a blue invoice draft: every rule of the domain, every violation reported at once.
//!
//! [`Validator::validate`] turns an [`InvoiceDraft`] (text as the caller sent it) into an
//! [`InvoiceContent`] (typed, computed, totalled, with the amount in capitals), or returns every
//! problem found, each with its field path, stable code and Chinese message. It never stops at the
//! first problem and never panics: a caller fixing a request should need one round trip.
//!
//! Field paths use the wire names of the request (`seller_tax_id`, `buyer.tax_id`,
//! `lines[2].tax_rate`, 0-based indices).

mod lines;
mod parties;

use crate::capitals::amount_in_capitals;
use crate::catalog::TaxCodeCatalog;
use crate::compute;
use crate::limits::{Limits, char_len};
use crate::model::{InvoiceContent, InvoiceDraft};
use crate::money::{NumberError, fits_money};
use crate::violation::{Code, Violation, Violations};
use rust_decimal::Decimal;

/// Checks drafts against a catalog of tax codes and a set of limits.
#[derive(Debug, Clone, Copy)]
pub struct Validator<'a> {
    catalog: &'a TaxCodeCatalog,
    limits: &'a Limits,
}

impl<'a> Validator<'a> {
    pub fn new(catalog: &'a TaxCodeCatalog, limits: &'a Limits) -> Self {
        Self { catalog, limits }
    }

    /// Validate and compute a blue invoice.
    pub fn validate(&self, draft: &InvoiceDraft) -> Result<InvoiceContent, Vec<Violation>> {
        let mut v = Violations::default();
        let request_id = self.request_id(&draft.request_id, &mut v);
        if draft.kind.is_none() {
            v.push("kind", Code::KIND_REQUIRED, "发票票种不能为空");
        }
        if draft.pricing.is_none() {
            v.push(
                "pricing_mode",
                Code::PRICING_MODE_REQUIRED,
                "含税标志不能为空",
            );
        }
        let seller = self.seller(&draft.seller, &mut v);
        let buyer = self.buyer(&draft.buyer, draft.kind, &mut v);
        let drawer = self.text(
            "drawer",
            "开票人",
            &draft.drawer,
            self.limits.drawer,
            &mut v,
        );
        if drawer.is_empty() {
            v.push("drawer", Code::DRAWER_REQUIRED, "开票人不能为空");
        }
        let payee = self.text("payee", "收款人", &draft.payee, self.limits.payee, &mut v);
        let reviewer = self.text(
            "reviewer",
            "复核人",
            &draft.reviewer,
            self.limits.reviewer,
            &mut v,
        );
        let remark = self.text(
            "remark",
            "备注",
            &draft.remark,
            self.limits.remark_blue,
            &mut v,
        );
        let lines = self.lines(draft, &mut v);

        let (Some(kind), Some(pricing), Some(seller), Some(buyer), Some(lines)) =
            (draft.kind, draft.pricing, seller, buyer, lines)
        else {
            return Err(v.into_vec());
        };
        let Some(totals) = compute::totals(&lines).filter(|t| fits_money(t.total)) else {
            v.push("lines", Code::TOTAL_RANGE, "价税合计超出金额范围");
            return Err(v.into_vec());
        };
        if totals.total <= Decimal::ZERO {
            v.push(
                "lines",
                Code::TOTAL_NOT_POSITIVE,
                "蓝字发票价税合计必须大于零",
            );
        }
        // In range by the check above, so the capitals always exist.
        let total_in_words = amount_in_capitals(totals.total).unwrap_or_default();
        v.finish(InvoiceContent {
            request_id,
            kind,
            seller,
            buyer,
            pricing,
            lines,
            totals,
            total_in_words,
            remark,
            drawer,
            payee,
            reviewer,
            red: None,
        })
    }

    fn request_id(&self, raw: &str, v: &mut Violations) -> String {
        let id = raw.trim();
        if id.is_empty() {
            v.push(
                "request_id",
                Code::REQUEST_ID_REQUIRED,
                "请求流水号不能为空",
            );
        } else if id.chars().any(char::is_control) {
            v.push(
                "request_id",
                Code::REQUEST_ID_FORMAT,
                "请求流水号含有控制字符",
            );
        }
        self.check_len("request_id", "请求流水号", id, self.limits.request_id, v);
        id.to_owned()
    }

    /// Trim a free-text field and check its length and characters.
    pub(super) fn text(
        &self,
        field: &str,
        label: &str,
        raw: &str,
        max: usize,
        v: &mut Violations,
    ) -> String {
        let text = raw.trim();
        self.check_len(field, label, text, max, v);
        check_characters(field, label, text, v);
        text.to_owned()
    }

    pub(super) fn check_len(
        &self,
        field: &str,
        label: &str,
        text: &str,
        max: usize,
        v: &mut Violations,
    ) {
        let len = char_len(text);
        if len > max {
            v.push(
                field,
                Code::TEXT_TOO_LONG,
                format!("{label}最多{max}个字符，实际{len}个"),
            );
        }
    }
}

/// Free text may hold tab and line breaks, but no other control character.
pub(crate) fn check_characters(field: &str, label: &str, text: &str, v: &mut Violations) {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        v.push(
            field,
            Code::TEXT_CONTROL_CHARACTER,
            format!("{label}含有控制字符"),
        );
    }
}

pub(super) fn push_number(
    v: &mut Violations,
    field: &str,
    prefix: &str,
    label: &str,
    e: NumberError,
) {
    v.push_prefixed(field, prefix, e.code_suffix(), e.message_zh(label));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TaxCodeError;
    use crate::rate::TaxRateError;
    use crate::taxpayer::{ResidentIdError, TaxpayerIdError};

    /// Every code a lower module can report has a violation code under each prefix it is used
    /// with, so `Violations::push_prefixed` never falls back.
    #[test]
    fn every_lower_error_maps_to_a_declared_code() {
        let tax_ids = [
            TaxpayerIdError::Empty,
            TaxpayerIdError::Length { len: 3 },
            TaxpayerIdError::Charset {
                position: 1,
                found: 'I',
            },
            TaxpayerIdError::CheckDigit {
                expected: 'A',
                found: 'B',
            },
        ];
        for prefix in ["SELLER", "BUYER"] {
            for e in &tax_ids {
                assert!(
                    Code::from_name(&format!("{prefix}_{}", e.code())).is_some(),
                    "{e:?}"
                );
            }
        }
        let ids = [
            ResidentIdError::Empty,
            ResidentIdError::Length { len: 3 },
            ResidentIdError::Charset {
                position: 1,
                found: 'A',
            },
            ResidentIdError::BirthDate,
            ResidentIdError::CheckDigit {
                expected: 'X',
                found: '1',
            },
        ];
        for e in &ids {
            assert!(
                Code::from_name(&format!("BUYER_{}", e.code())).is_some(),
                "{e:?}"
            );
        }
        for e in [
            TaxRateError::Empty,
            TaxRateError::Format,
            TaxRateError::Unknown,
        ] {
            assert!(
                Code::from_name(&format!("LINE_{}", e.code())).is_some(),
                "{e:?}"
            );
        }
        assert!(Code::from_name(&format!("LINE_{}", TaxCodeError::Format.code())).is_some());
        let numbers = [
            NumberError::Format,
            NumberError::Precision { max_decimals: 2 },
            NumberError::Range {
                max_integer_digits: 16,
            },
        ];
        for prefix in [
            "LINE_QUANTITY",
            "LINE_UNIT_PRICE",
            "LINE_AMOUNT",
            "RED_AMOUNT",
            "RED_QUANTITY",
        ] {
            for e in &numbers {
                let name = format!("{prefix}_{}", e.code_suffix());
                assert!(Code::from_name(&name).is_some(), "{name}");
            }
        }
        for prefix in ["RED_AMOUNT", "RED_QUANTITY"] {
            assert!(Code::from_name(&format!("{prefix}_NOT_POSITIVE")).is_some());
        }
    }
}
