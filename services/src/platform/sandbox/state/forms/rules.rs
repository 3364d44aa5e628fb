//! The platform's rules for confirmation forms: what a filing must satisfy (a recorded blue
//! invoice of the seller, no pending form of it, lines within what remains), which status a form
//! starts in, which answers each status allows, and the red invoice the platform issues itself
//! when the `self_issued_red_rate` fault hits.
//!
//! Decisions only: each returns the events (or form) to commit, or a refusal.

use chrono::{DateTime, Utc};
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceKind, RedLetterReason, RedReference};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{self, FormStatus, Initiator, LineBalance, RedLine, ReversalScope};
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;

use super::super::{Event, Record, Rejection, State, china_year, region_of};
use super::{form_not_found, form_uuid};
use crate::platform::protocol::messages::codes;
use crate::platform::protocol::platform_digest;
use crate::platform::{FormAnswer, FormRequest, RemoteForm, UsageStatus};

/// How long a pending form waits for the other party before it is void (07).
pub(crate) const CONFIRMATION_WINDOW_HOURS: i64 = 72;
/// The drawer (开票人) of the red invoices the platform issues itself.
pub(crate) const PLATFORM_DRAWER: &str = "电子发票服务平台";

/// Whether the buyer's use of a blue invoice makes a form need its confirmation (domain §7.1).
fn needs_confirmation(kind: InvoiceKind, usage: UsageStatus) -> bool {
    match kind {
        InvoiceKind::Special => usage.used_for_deduction || usage.booked,
        InvoiceKind::General => usage.booked,
    }
}

/// A status with its Chinese meaning, for messages.
pub(crate) fn status_text(status: FormStatus) -> String {
    let name = match status {
        FormStatus::NoConfirmationNeeded => "无需确认",
        FormStatus::AwaitingBuyer => "销方录入待购方确认",
        FormStatus::AwaitingSeller => "购方录入待销方确认",
        FormStatus::Confirmed => "购销双方已确认",
        FormStatus::VoidBuyerDisagreed => "作废（销方录入购方否认）",
        FormStatus::VoidSellerDisagreed => "作废（购方录入销方否认）",
        FormStatus::VoidExpired => "作废（超72小时未确认）",
        FormStatus::VoidWithdrawn => "作废（发起方已撤销）",
        FormStatus::VoidRevokedAfterConfirmation => "作废（确认后撤销）",
        FormStatus::VoidAbnormalVoucher => "作废（异常凭证）",
        FormStatus::VoidTaxpayerBlocked => "作废（纳税人状态异常阻断）",
        FormStatus::VoidNaturalPersonRefused => "作废（自然人拒收）",
        FormStatus::VoidRefundApplicationIssued => "作废（已开具退税申请单）",
    };
    format!("{} {name}", status.code())
}

/// The outcome of a seller's filing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filing {
    /// Filed before under the same request id, with the same content: the form's number.
    Existing(String),
    /// A new form, to be committed; its number.
    New(Event, String),
}

/// What a form reverses: everything that remains (the buyer's `full`), or given lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormLines {
    /// Everything that remains.
    Full,
    Lines(Vec<RedLine>),
}

/// Who files a form: the seller under its request id, or the buyer (without one).
#[derive(Debug, Clone, Copy)]
enum Filer<'a> {
    Seller(&'a str),
    Buyer,
}

/// Why the buyer's answer (through the admin API) was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuyerAnswerError {
    NotFound,
    /// Only a form awaiting the buyer (02) can be answered; this is its status.
    WrongStatus(FormStatus),
}

impl State {
    /// The seller files a form (`HZQRXXLR`).
    pub fn file_form(
        &self,
        seller: &TaxpayerId,
        request: &FormRequest,
        now: DateTime<Utc>,
    ) -> Result<Filing, Rejection> {
        if request.request_id.trim().is_empty() {
            return Err(Rejection::new(codes::REQUEST_INVALID, "业务流水号不能为空"));
        }
        let key = (seller.clone(), request.request_id.clone());
        if let Some(existing) = self
            .forms
            .by_request
            .get(&key)
            .and_then(|number| self.forms.get(number))
        {
            let same = existing.blue_number == request.blue_number
                && existing.reason == request.reason
                && existing.lines == request.lines;
            return if same {
                Ok(Filing::Existing(existing.number.clone()))
            } else {
                Err(Rejection::new(
                    codes::FORM_REQUEST_CONFLICT,
                    format!(
                        "业务流水号{}已录入确认单{}，且蓝字发票、冲红原因或明细与本次不一致",
                        request.request_id, existing.number
                    ),
                ))
            };
        }
        let form = self.new_form(
            seller,
            Filer::Seller(&request.request_id),
            request.blue_number,
            request.reason,
            FormLines::Lines(request.lines.clone()),
            now,
        )?;
        let number = form.number.clone();
        Ok(Filing::New(
            Event::FormFiled {
                form: Box::new(form),
            },
            number,
        ))
    }

    /// The buyer files a form (through the admin API): 03, awaiting the seller. Commit it as
    /// [`Event::FormFiled`].
    pub fn file_form_as_buyer(
        &self,
        seller: &TaxpayerId,
        blue_number: InvoiceNumber,
        reason: RedLetterReason,
        lines: FormLines,
        now: DateTime<Utc>,
    ) -> Result<RemoteForm, Rejection> {
        self.new_form(seller, Filer::Buyer, blue_number, reason, lines, now)
    }

    fn new_form(
        &self,
        seller: &TaxpayerId,
        filer: Filer<'_>,
        blue_number: InvoiceNumber,
        reason: RedLetterReason,
        lines: FormLines,
        now: DateTime<Utc>,
    ) -> Result<RemoteForm, Rejection> {
        let (initiator, request_id) = match filer {
            Filer::Seller(request_id) => (Initiator::Seller, request_id),
            Filer::Buyer => (Initiator::Buyer, ""),
        };
        let blue = self.blue_for_form(seller, &blue_number)?;
        if let Some(pending) = self
            .forms
            .of_blue(&blue_number)
            .find(|form| form.status.is_pending())
        {
            return Err(Rejection::new(
                codes::FORM_PENDING,
                format!(
                    "蓝字发票{blue_number}已有待确认的红字发票信息确认单{}",
                    pending.number
                ),
            ));
        }
        let reserved = self.forms.reserved_of(&blue_number);
        let lines = match lines {
            FormLines::Full => {
                redletter::plan_reversal(&blue.content, &reserved, &ReversalScope::Full)
                    .map_err(|_| {
                        Rejection::new(
                            codes::FORM_EXCEEDS_REMAINING,
                            format!("蓝字发票{blue_number}已无可红冲的金额"),
                        )
                    })?
                    .lines
            }
            FormLines::Lines(lines) => {
                check_lines(&redletter::balances(&blue.content, &reserved), &lines)?;
                lines
            }
        };
        let window = chrono::Duration::hours(CONFIRMATION_WINDOW_HOURS);
        let (status, expires_at) = match initiator {
            Initiator::Buyer => (FormStatus::AwaitingSeller, Some(now + window)),
            Initiator::Seller if needs_confirmation(blue.content.kind, blue.usage) => {
                (FormStatus::AwaitingBuyer, Some(now + window))
            }
            Initiator::Seller => (FormStatus::NoConfirmationNeeded, None),
        };
        let number = self.forms.next_number(
            china_year(now),
            region_of(seller, self.settings.default_region),
            now,
        );
        Ok(RemoteForm {
            uuid: form_uuid(seller, &number),
            number,
            seller: seller.clone(),
            request_id: request_id.to_owned(),
            blue_number,
            reason,
            status,
            initiator,
            amount: lines.iter().map(|line| line.amount).sum(),
            tax: lines.iter().map(|line| line.tax).sum(),
            lines,
            created_at: now,
            expires_at,
            status_changed_at: now,
            red_number: None,
        })
    }

    fn blue_for_form(
        &self,
        seller: &TaxpayerId,
        blue_number: &InvoiceNumber,
    ) -> Result<Record, Rejection> {
        let blue = self.invoice(seller, blue_number)?.ok_or_else(|| {
            Rejection::new(
                codes::BLUE_NOT_FOUND,
                format!("蓝字发票{blue_number}不存在或不属于该销售方"),
            )
        })?;
        if blue.content.red.is_some() {
            return Err(Rejection::new(
                codes::BLUE_NOT_BLUE,
                format!("发票{blue_number}是红字发票，不能据以录入红字发票信息确认单"),
            ));
        }
        Ok(blue)
    }

    /// The seller answers a form (`HZQRXXQR`): the status change to commit, or `None` when the
    /// form already has the status this answer gives (answering again changes nothing).
    pub fn answer_form(
        &self,
        seller: &TaxpayerId,
        number: &str,
        answer: FormAnswer,
        now: DateTime<Utc>,
    ) -> Result<Option<Event>, Rejection> {
        let form = self
            .form(seller, number)
            .ok_or_else(|| form_not_found(number))?;
        use FormStatus as S;
        let next = match (answer, form.initiator, form.status) {
            (FormAnswer::Withdraw, Initiator::Seller, S::AwaitingBuyer) => Some(S::VoidWithdrawn),
            (FormAnswer::Withdraw, _, S::VoidWithdrawn) => None,
            (FormAnswer::Withdraw, _, S::Confirmed) if form.red_number.is_none() => {
                Some(S::VoidRevokedAfterConfirmation)
            }
            (FormAnswer::Agree, Initiator::Buyer, S::AwaitingSeller) => Some(S::Confirmed),
            (FormAnswer::Agree, Initiator::Buyer, S::Confirmed) => None,
            (FormAnswer::Disagree, Initiator::Buyer, S::AwaitingSeller) => {
                Some(S::VoidSellerDisagreed)
            }
            (FormAnswer::Disagree, Initiator::Buyer, S::VoidSellerDisagreed) => None,
            _ => return Err(answer_refused(form, answer)),
        };
        Ok(next.map(|status| Event::FormStatusChanged {
            number: form.number.clone(),
            status,
            at: now,
        }))
    }

    /// The buyer confirms (`agree`) or denies a form awaiting it (02 → 04 or 05).
    pub fn buyer_answer(
        &self,
        number: &str,
        agree: bool,
        now: DateTime<Utc>,
    ) -> Result<Event, BuyerAnswerError> {
        let form = self.forms.get(number).ok_or(BuyerAnswerError::NotFound)?;
        if form.status != FormStatus::AwaitingBuyer {
            return Err(BuyerAnswerError::WrongStatus(form.status));
        }
        Ok(Event::FormStatusChanged {
            number: form.number.clone(),
            status: if agree {
                FormStatus::Confirmed
            } else {
                FormStatus::VoidBuyerDisagreed
            },
            at: now,
        })
    }

    /// The platform issues and records the red invoice of a form that allows one (a fault): the
    /// seller's next number taken like a reservation of one, the invoice recorded as issued now,
    /// and the form's red number set.
    pub fn self_issued_red(
        &self,
        number: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, Rejection> {
        let form = self
            .forms
            .get(number)
            .ok_or_else(|| form_not_found(number))?;
        if !form.status.allows_red() || form.red_number.is_some() {
            return Err(Rejection::new(
                codes::FORM_STATUS_INVALID,
                format!(
                    "红字发票信息确认单{number}状态为{}，不能开具红字发票",
                    status_text(form.status)
                ),
            ));
        }
        let blue = self.blue_for_form(&form.seller, &form.blue_number)?;
        let request_id = if form.request_id.is_empty() {
            &form.number
        } else {
            &form.request_id
        };
        let reference = RedReference {
            blue_number: form.blue_number,
            form_number: form.number.clone(),
            reason: form.reason,
        };
        let content = redletter::red_invoice(
            &blue.content,
            &form.lines,
            reference,
            request_id,
            "",
            PLATFORM_DRAWER,
            &Limits::default(),
        )
        .map_err(|violations| {
            let reason = violations
                .first()
                .map(|v| v.message.clone())
                .unwrap_or_default();
            Rejection::new(
                codes::REQUEST_INVALID,
                format!("无法生成红字发票：{reason}"),
            )
        })?;
        let (first, last) = self.reserve(&form.seller, 1, now)?;
        Ok(vec![
            Event::Reserved {
                seller: form.seller.clone(),
                first,
                last,
            },
            Event::Recorded {
                seller: form.seller.clone(),
                number: first,
                issued_at: now,
                recorded_at: now,
                content_sm3: platform_digest(&content),
                content: Box::new(content),
            },
            Event::FormRedRecorded {
                number: form.number.clone(),
                red_number: first,
            },
        ])
    }
}

fn answer_refused(form: &RemoteForm, answer: FormAnswer) -> Rejection {
    let action = match answer {
        FormAnswer::Agree => "同意",
        FormAnswer::Disagree => "不同意",
        FormAnswer::Withdraw => "撤销",
    };
    let party = match form.initiator {
        Initiator::Seller => "销方",
        Initiator::Buyer => "购方",
    };
    Rejection::new(
        codes::FORM_STATUS_INVALID,
        format!(
            "红字发票信息确认单{}由{party}录入，状态为{}{}，销方不能{action}",
            form.number,
            status_text(form.status),
            if form.red_number.is_some() {
                "且已开具红字发票"
            } else {
                ""
            }
        ),
    )
}

/// Each line names a reversible blue line once, reverses something, and no more than remains.
fn check_lines(balances: &[LineBalance], lines: &[RedLine]) -> Result<(), Rejection> {
    let invalid = |message: String| Rejection::new(codes::FORM_LINE_INVALID, message);
    if lines.is_empty() {
        return Err(invalid("红字发票信息确认单明细不能为空".to_owned()));
    }
    let money = |value: Decimal| !value.is_sign_negative() && value.normalize().scale() <= 2;
    for (index, line) in lines.iter().enumerate() {
        let n = line.blue_line;
        if lines[..index].iter().any(|other| other.blue_line == n) {
            return Err(invalid(format!("蓝字发票第{n}行在明细中重复")));
        }
        let reverses_something = !(line.amount.is_zero() && line.tax.is_zero());
        let quantity_ok = line.quantity.is_none_or(|q| q > Decimal::ZERO);
        if !money(line.amount) || !money(line.tax) || !reverses_something || !quantity_ok {
            return Err(invalid(format!(
                "蓝字发票第{n}行的红冲金额、税额须为不小于0、不全为0、最多两位小数的金额，数量须大于0"
            )));
        }
        let Some(balance) = balances.iter().find(|b| b.blue_line == n) else {
            return Err(invalid(format!(
                "蓝字发票没有可红冲的第{n}行（不存在，或是折扣行）"
            )));
        };
        if line.amount > balance.remaining_amount() || line.tax > balance.remaining_tax() {
            return Err(Rejection::new(
                codes::FORM_EXCEEDS_REMAINING,
                format!(
                    "蓝字发票第{n}行剩余可红冲金额{}、税额{}，本次红冲金额{}、税额{}",
                    balance.remaining_amount(),
                    balance.remaining_tax(),
                    line.amount,
                    line.tax
                ),
            ));
        }
        match (line.quantity, balance.remaining_quantity()) {
            (Some(quantity), Some(left)) if quantity > left => {
                return Err(Rejection::new(
                    codes::FORM_EXCEEDS_REMAINING,
                    format!(
                        "蓝字发票第{n}行剩余可红冲数量{}，本次红冲数量{quantity}",
                        left.normalize()
                    ),
                ));
            }
            (Some(_), None) => {
                return Err(invalid(format!("蓝字发票第{n}行没有数量，只能按金额红冲")));
            }
            _ => {}
        }
    }
    Ok(())
}
