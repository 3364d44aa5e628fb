//! The form state machine, decided and applied on a bare [`State`] with the time passed in.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use fapiao_invoice::model::{InvoiceContent, InvoiceKind, RedLetterReason};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{FormStatus, Initiator, RedLine};
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;

use super::rules::PLATFORM_DRAWER;
use super::{BuyerAnswerError, Event, Filing, FormLines, Rejection, State};
use crate::platform::protocol::platform_digest;
use crate::platform::sandbox::state::{Judgement, MAX_CLOCK_OFFSET, Prepared, Settings};
use crate::platform::sandbox::test_support::{
    blue_content, line, red_content, seller, start_time, yuan,
};
use crate::platform::{FormAnswer, FormRequest, RemoteForm, RemoteState, UsageStatus};

fn settings() -> Settings {
    Settings {
        channel: 2,
        default_region: 31,
        numbers_per_seller: 1000,
        max_range: 100,
        monthly_quota: Decimal::new(100_000, 2),
        overrides: HashMap::new(),
        scratch_dir: None,
    }
}

/// A state with its applied events kept, as a journal would keep them.
struct Book {
    state: State,
    journal: Vec<Event>,
    /// Numbers reserved for the seller and not used yet.
    free: Vec<InvoiceNumber>,
}

impl Book {
    fn new() -> Self {
        let mut book = Self {
            state: State::new(settings()),
            journal: Vec::new(),
            free: Vec::new(),
        };
        let (first, last) = book.state.reserve(&seller(), 50, start_time()).unwrap();
        book.commit(Event::Reserved {
            seller: seller(),
            first,
            last,
        });
        book.free = std::iter::successors(Some(first), |n| n.next())
            .take(50)
            .collect();
        book.free.reverse();
        book
    }

    fn commit(&mut self, event: Event) {
        self.journal.push(event.clone());
        self.state.apply(event);
    }

    fn commit_all(&mut self, events: Vec<Event>) {
        for event in events {
            self.commit(event);
        }
    }

    fn take_number(&mut self) -> InvoiceNumber {
        self.free.pop().unwrap()
    }

    /// Records a blue invoice of the seller, used by the buyer as `usage` says.
    fn blue(&mut self, kind: InvoiceKind, usage: UsageStatus) -> InvoiceNumber {
        let number = self.take_number();
        let content = blue_content(&format!("BLUE-{number}"), kind);
        self.commit(Event::Recorded {
            seller: seller(),
            number,
            issued_at: start_time(),
            recorded_at: start_time(),
            content_sm3: platform_digest(&content),
            content: Box::new(content),
        });
        self.commit(Event::UsageSet { number, usage });
        number
    }

    fn content(&self, number: &InvoiceNumber) -> InvoiceContent {
        self.state
            .invoice(&seller(), number)
            .unwrap()
            .unwrap()
            .content
    }

    fn try_file(
        &mut self,
        request_id: &str,
        blue: InvoiceNumber,
        lines: Vec<RedLine>,
        at: DateTime<Utc>,
    ) -> Result<RemoteForm, Rejection> {
        let request = FormRequest {
            request_id: request_id.into(),
            blue_number: blue,
            reason: RedLetterReason::SalesReturn,
            lines,
        };
        let number = match self.state.file_form(&seller(), &request, at)? {
            Filing::Existing(number) => number,
            Filing::New(event, number) => {
                self.commit(event);
                number
            }
        };
        Ok(self.form(&number))
    }

    fn file(
        &mut self,
        request_id: &str,
        blue: InvoiceNumber,
        lines: Vec<RedLine>,
        at: DateTime<Utc>,
    ) -> RemoteForm {
        self.try_file(request_id, blue, lines, at).unwrap()
    }

    fn file_as_buyer(&mut self, blue: InvoiceNumber, lines: FormLines) -> RemoteForm {
        let form = self
            .state
            .file_form_as_buyer(
                &seller(),
                blue,
                RedLetterReason::SalesAllowance,
                lines,
                start_time(),
            )
            .unwrap();
        self.commit(Event::FormFiled {
            form: Box::new(form.clone()),
        });
        form
    }

    fn form(&self, number: &str) -> RemoteForm {
        self.state.form(&seller(), number).unwrap().clone()
    }

    /// The seller's answer: the form afterwards, or the refusal's code.
    fn answer(&mut self, number: &str, answer: FormAnswer) -> Result<RemoteForm, &'static str> {
        let at = start_time() + Duration::hours(1);
        match self.state.answer_form(&seller(), number, answer, at) {
            Ok(change) => {
                if let Some(event) = change {
                    self.commit(event);
                }
                Ok(self.form(number))
            }
            Err(rejection) => Err(rejection.code),
        }
    }

    fn buyer(&mut self, number: &str, agree: bool) -> Result<RemoteForm, BuyerAnswerError> {
        let event = self
            .state
            .buyer_answer(number, agree, start_time() + Duration::hours(1))?;
        self.commit(event);
        Ok(self.form(number))
    }

    /// Judges a red invoice of the seller on a fresh number and records it when accepted, as an
    /// upload does. The judgement and the number.
    fn upload_red(&mut self, content: InvoiceContent) -> (Judgement, InvoiceNumber) {
        let number = self.take_number();
        (self.upload_as(number, content), number)
    }

    fn upload_as(&mut self, number: InvoiceNumber, content: InvoiceContent) -> Judgement {
        let prepared = Prepared {
            number,
            issued_at: start_time(),
            content_sm3: platform_digest(&content),
            content,
        };
        let judgement = self.state.judge(&seller(), &prepared).unwrap();
        if judgement == Judgement::Accept {
            let form = prepared.content.red.as_ref().map(|r| r.form_number.clone());
            self.commit(Event::Recorded {
                seller: seller(),
                number,
                issued_at: prepared.issued_at,
                recorded_at: prepared.issued_at,
                content_sm3: prepared.content_sm3,
                content: Box::new(prepared.content),
            });
            if let Some(form) = form {
                self.commit(Event::FormRedRecorded {
                    number: form,
                    red_number: number,
                });
            }
        }
        judgement
    }
}

fn unused() -> UsageStatus {
    UsageStatus {
        used_for_deduction: false,
        booked: false,
    }
}

fn booked() -> UsageStatus {
    UsageStatus {
        used_for_deduction: false,
        booked: true,
    }
}

fn selected() -> UsageStatus {
    UsageStatus {
        used_for_deduction: true,
        booked: false,
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, Rejection>) -> &'static str {
    result.unwrap_err().code
}

#[test]
fn a_form_awaits_the_buyer_only_when_the_buyer_used_the_invoice() {
    let mut book = Book::new();
    let cases = [
        (
            InvoiceKind::General,
            unused(),
            FormStatus::NoConfirmationNeeded,
        ),
        (
            InvoiceKind::General,
            selected(),
            FormStatus::NoConfirmationNeeded,
        ),
        (InvoiceKind::General, booked(), FormStatus::AwaitingBuyer),
        (
            InvoiceKind::Special,
            unused(),
            FormStatus::NoConfirmationNeeded,
        ),
        (InvoiceKind::Special, selected(), FormStatus::AwaitingBuyer),
        (InvoiceKind::Special, booked(), FormStatus::AwaitingBuyer),
    ];
    let mut numbers = Vec::new();
    for (index, (kind, usage, status)) in cases.into_iter().enumerate() {
        let blue = book.blue(kind, usage);
        let at = start_time() + Duration::minutes(i64::try_from(index).unwrap());
        let form = book.file(&format!("R{index}"), blue, vec![line(1, "10", "0.60")], at);
        assert_eq!(form.status, status, "{kind:?} {usage:?}");
        assert_eq!(form.initiator, Initiator::Seller);
        assert_eq!(form.created_at, at);
        assert_eq!(form.status_changed_at, at);
        let deadline = status.is_pending().then(|| at + Duration::hours(72));
        assert_eq!(form.expires_at, deadline);
        assert_eq!((form.amount, form.tax), (yuan("10"), yuan("0.60")));
        assert_eq!(form.number.len(), 20);
        assert!(form.number.starts_with("2631"), "{}", form.number);
        assert!(form.number.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(form.uuid.len(), 32);
        assert!(
            form.uuid
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        numbers.push(form.number);
    }
    let mut unique = numbers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), numbers.len(), "{numbers:?}");
}

#[test]
fn filing_again_under_a_request_id_returns_the_form_unless_its_content_differs() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, booked());
    let other_blue = book.blue(InvoiceKind::General, unused());
    let lines = vec![line(1, "10", "0.60")];
    let first = book.file("R1", blue, lines.clone(), start_time());
    let later = start_time() + Duration::hours(2);
    let again = book.file("R1", blue, lines.clone(), later);
    assert_eq!(again, first, "the same form, not a second one");
    assert_eq!(book.state.forms_of(&seller()).len(), 1);

    // In its current status.
    book.answer(&first.number, FormAnswer::Withdraw).unwrap();
    let again = book.file("R1", blue, lines.clone(), later);
    assert_eq!(again.number, first.number);
    assert_eq!(again.status, FormStatus::VoidWithdrawn);

    let other_lines = vec![line(1, "11", "0.66")];
    assert_eq!(
        code(book.try_file("R1", blue, other_lines, later)),
        "YWLSH_CONFLICT"
    );
    assert_eq!(
        code(book.try_file("R1", other_blue, lines.clone(), later)),
        "YWLSH_CONFLICT"
    );
    assert_eq!(
        code(book.try_file(" ", blue, lines, later)),
        "REQUEST_INVALID"
    );
}

#[test]
fn only_recorded_blue_invoices_of_the_seller_take_forms() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, unused());
    let unknown = book.take_number();
    let lines = vec![line(1, "10", "0.60")];
    assert_eq!(
        code(book.try_file("R1", unknown, lines.clone(), start_time())),
        "LZFP_NOT_FOUND"
    );
    let form = book.file("R2", blue, lines.clone(), start_time());
    let content = book.content(&blue);
    let red = red_content(&content, blue, &form.number, &lines, "RED-1");
    let (judgement, red_number) = book.upload_red(red);
    assert_eq!(judgement, Judgement::Accept);
    assert_eq!(
        code(book.try_file("R3", red_number, lines.clone(), start_time())),
        "LZFP_NOT_BLUE"
    );
    let stranger = TaxpayerId::parse("91110302MA01NP925M").unwrap();
    let request = FormRequest {
        request_id: "R4".into(),
        blue_number: blue,
        reason: RedLetterReason::SalesReturn,
        lines,
    };
    assert_eq!(
        code(book.state.file_form(&stranger, &request, start_time())),
        "LZFP_NOT_FOUND"
    );
}

#[test]
fn a_pending_form_blocks_another_for_the_same_blue_invoice() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, booked());
    let pending = book.file("R1", blue, vec![line(1, "10", "0.60")], start_time());
    assert_eq!(pending.status, FormStatus::AwaitingBuyer);
    assert_eq!(
        code(book.try_file("R2", blue, vec![line(2, "10", "0.60")], start_time())),
        "HZQRXX_PENDING"
    );
    let buyer = book.state.file_form_as_buyer(
        &seller(),
        blue,
        RedLetterReason::SalesReturn,
        FormLines::Full,
        start_time(),
    );
    assert_eq!(code(buyer), "HZQRXX_PENDING");
    book.buyer(&pending.number, false).unwrap();
    let next = book.file("R2", blue, vec![line(2, "10", "0.60")], start_time());
    assert_eq!(next.status, FormStatus::AwaitingBuyer);
}

#[test]
fn forms_reverse_no_more_than_remains_after_earlier_forms() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, unused());
    let at = start_time();
    let first = book.file("A", blue, vec![line(1, "60", "3.60")], at);
    assert_eq!(first.status, FormStatus::NoConfirmationNeeded);
    // 40.00 and 2.40 remain of line 1, all of line 2.
    for (lines, expected) in [
        (vec![line(1, "40.01", "2.40")], "HZCXJE_EXCEEDED"),
        (vec![line(1, "40", "2.41")], "HZCXJE_EXCEEDED"),
        (vec![line(9, "1", "0.06")], "LZMXXH_INVALID"),
        (
            vec![line(2, "1", "0.06"), line(2, "1", "0.06")],
            "LZMXXH_INVALID",
        ),
        (vec![line(1, "0", "0")], "LZMXXH_INVALID"),
        (vec![line(1, "-1", "0")], "LZMXXH_INVALID"),
        (vec![line(1, "0.001", "0")], "LZMXXH_INVALID"),
        (Vec::new(), "LZMXXH_INVALID"),
    ] {
        assert_eq!(
            code(book.try_file("B", blue, lines.clone(), at)),
            expected,
            "{lines:?}"
        );
    }
    let second = book.file(
        "B",
        blue,
        vec![line(1, "40", "2.40"), line(2, "50", "3.00")],
        at,
    );
    assert_eq!((second.amount, second.tax), (yuan("90"), yuan("5.40")));
    assert_eq!(
        code(book.try_file("C", blue, vec![line(2, "0.01", "0")], at)),
        "HZCXJE_EXCEEDED"
    );
    let full = book.state.file_form_as_buyer(
        &seller(),
        blue,
        RedLetterReason::SalesReturn,
        FormLines::Full,
        at,
    );
    assert_eq!(code(full), "HZCXJE_EXCEEDED");
}

#[test]
fn void_forms_free_what_they_reserved() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::Special, selected());
    let all = vec![line(1, "100", "6"), line(2, "50", "3")];
    let denied = book.file("A", blue, all.clone(), start_time());
    book.buyer(&denied.number, false).unwrap();
    let withdrawn = book.file("B", blue, all.clone(), start_time());
    assert_eq!(
        book.answer(&withdrawn.number, FormAnswer::Withdraw)
            .unwrap()
            .status,
        FormStatus::VoidWithdrawn
    );
    let confirmed = book.file("C", blue, vec![line(1, "30", "1.80")], start_time());
    book.buyer(&confirmed.number, true).unwrap();
    // 70.00 and 4.20 of line 1 and all of line 2 remain; the buyer's full form takes them.
    let full = book.file_as_buyer(blue, FormLines::Full);
    assert_eq!(full.status, FormStatus::AwaitingSeller);
    assert_eq!(full.initiator, Initiator::Buyer);
    assert_eq!(full.request_id, "");
    assert_eq!(
        full.lines,
        vec![line(1, "70", "4.20"), line(2, "50", "3.00")]
    );
    book.answer(&full.number, FormAnswer::Disagree).unwrap();
    // Revoking the confirmed form frees its 30.00 again.
    assert_eq!(
        book.answer(&confirmed.number, FormAnswer::Withdraw)
            .unwrap()
            .status,
        FormStatus::VoidRevokedAfterConfirmation
    );
    let everything = book.file("D", blue, all, start_time());
    assert_eq!(everything.status, FormStatus::AwaitingBuyer);
}

#[test]
fn the_buyer_confirms_or_denies_only_a_form_awaiting_it() {
    let mut book = Book::new();
    let used = book.blue(InvoiceKind::General, booked());
    let fresh = book.blue(InvoiceKind::General, unused());
    let form = book.file("A", used, vec![line(1, "10", "0.60")], start_time());
    let confirmed = book.buyer(&form.number, true).unwrap();
    assert_eq!(confirmed.status, FormStatus::Confirmed);
    assert_eq!(
        confirmed.status_changed_at,
        start_time() + Duration::hours(1)
    );
    assert_eq!(
        book.buyer(&form.number, true).unwrap_err(),
        BuyerAnswerError::WrongStatus(FormStatus::Confirmed)
    );
    assert_eq!(
        book.buyer(&form.number, false).unwrap_err(),
        BuyerAnswerError::WrongStatus(FormStatus::Confirmed)
    );
    let denied = book.file("B", used, vec![line(2, "10", "0.60")], start_time());
    assert_eq!(
        book.buyer(&denied.number, false).unwrap().status,
        FormStatus::VoidBuyerDisagreed
    );
    let direct = book.file("C", fresh, vec![line(1, "10", "0.60")], start_time());
    assert_eq!(
        book.buyer(&direct.number, true).unwrap_err(),
        BuyerAnswerError::WrongStatus(FormStatus::NoConfirmationNeeded)
    );
    assert_eq!(
        book.buyer("26310000000000000000", true).unwrap_err(),
        BuyerAnswerError::NotFound
    );
}

#[test]
fn a_pending_form_expires_exactly_72_hours_after_filing() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, booked());
    let filed = start_time() + Duration::minutes(5);
    let form = book.file("A", blue, vec![line(1, "10", "0.60")], filed);
    let deadline = filed + Duration::hours(72);
    assert_eq!(form.expires_at, Some(deadline));
    assert!(
        book.state
            .expire_due(deadline - Duration::seconds(1))
            .is_empty()
    );
    let due = book.state.expire_due(deadline + Duration::hours(5));
    assert_eq!(
        due,
        vec![Event::FormStatusChanged {
            number: form.number.clone(),
            status: FormStatus::VoidExpired,
            at: deadline,
        }]
    );
    assert_eq!(book.state.expire_due(deadline), due, "due at the deadline");
    book.commit_all(due);
    let expired = book.form(&form.number);
    assert_eq!(expired.status, FormStatus::VoidExpired);
    assert_eq!(expired.status_changed_at, deadline);
    assert!(
        book.state
            .expire_due(deadline + Duration::days(30))
            .is_empty()
    );

    // The buyer's form expires the same way; a form needing no confirmation never does.
    let buyer = book.file_as_buyer(blue, FormLines::Lines(vec![line(2, "5", "0.30")]));
    let fresh = book.blue(InvoiceKind::General, unused());
    book.file("B", fresh, vec![line(1, "10", "0.60")], start_time());
    let later = start_time() + Duration::hours(72);
    let due = book.state.expire_due(later);
    assert_eq!(due.len(), 1);
    book.commit_all(due);
    assert_eq!(book.form(&buyer.number).status, FormStatus::VoidExpired);
    assert_eq!(book.state.form_counts().get("07"), Some(&2));
    assert_eq!(book.state.form_counts().get("01"), Some(&1));
    assert_eq!(book.state.form_counts().get("02"), None);
}

#[test]
fn the_seller_withdraws_its_pending_form_once_and_revokes_only_an_unused_confirmation() {
    let mut book = Book::new();
    let used = book.blue(InvoiceKind::General, booked());
    let fresh = book.blue(InvoiceKind::General, unused());
    let form = book.file("A", used, vec![line(1, "10", "0.60")], start_time());
    let withdrawn = book.answer(&form.number, FormAnswer::Withdraw).unwrap();
    assert_eq!(withdrawn.status, FormStatus::VoidWithdrawn);
    assert_eq!(
        book.answer(&form.number, FormAnswer::Withdraw).unwrap(),
        withdrawn,
        "withdrawing again changes nothing"
    );
    assert_eq!(
        book.answer(&form.number, FormAnswer::Agree).unwrap_err(),
        "HZQRXXZT_INVALID"
    );
    let direct = book.file("B", fresh, vec![line(1, "10", "0.60")], start_time());
    assert_eq!(
        book.answer(&direct.number, FormAnswer::Withdraw)
            .unwrap_err(),
        "HZQRXXZT_INVALID",
        "a form needing no confirmation is not withdrawn"
    );

    let confirmed = book.file("C", used, vec![line(1, "10", "0.60")], start_time());
    book.buyer(&confirmed.number, true).unwrap();
    let content = book.content(&used);
    let red = red_content(&content, used, &confirmed.number, &confirmed.lines, "RED-C");
    assert_eq!(book.upload_red(red).0, Judgement::Accept);
    assert_eq!(
        book.answer(&confirmed.number, FormAnswer::Withdraw)
            .unwrap_err(),
        "HZQRXXZT_INVALID",
        "a red invoice is recorded for it"
    );
    let unused_confirmation = book.file("D", used, vec![line(2, "10", "0.60")], start_time());
    book.buyer(&unused_confirmation.number, true).unwrap();
    assert_eq!(
        book.answer(&unused_confirmation.number, FormAnswer::Withdraw)
            .unwrap()
            .status,
        FormStatus::VoidRevokedAfterConfirmation
    );
}

#[test]
fn the_seller_agrees_or_disagrees_only_with_the_buyers_form() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::Special, selected());
    let agreed = book.file_as_buyer(blue, FormLines::Lines(vec![line(1, "10", "0.60")]));
    assert_eq!(agreed.status, FormStatus::AwaitingSeller);
    assert_eq!(agreed.expires_at, Some(start_time() + Duration::hours(72)));
    let after = book.answer(&agreed.number, FormAnswer::Agree).unwrap();
    assert_eq!(after.status, FormStatus::Confirmed);
    assert_eq!(
        book.answer(&agreed.number, FormAnswer::Agree).unwrap(),
        after
    );
    assert_eq!(
        book.answer(&agreed.number, FormAnswer::Disagree)
            .unwrap_err(),
        "HZQRXXZT_INVALID"
    );
    let refused = book.file_as_buyer(blue, FormLines::Lines(vec![line(2, "10", "0.60")]));
    let after = book.answer(&refused.number, FormAnswer::Disagree).unwrap();
    assert_eq!(after.status, FormStatus::VoidSellerDisagreed);
    assert_eq!(
        book.answer(&refused.number, FormAnswer::Disagree).unwrap(),
        after
    );
    assert_eq!(
        book.answer(&refused.number, FormAnswer::Agree).unwrap_err(),
        "HZQRXXZT_INVALID"
    );
    let own = book.file("S", blue, vec![line(2, "10", "0.60")], start_time());
    assert_eq!(
        book.answer(&own.number, FormAnswer::Agree).unwrap_err(),
        "HZQRXXZT_INVALID",
        "the seller cannot confirm its own form"
    );
    assert_eq!(
        book.answer("26310000000000000000", FormAnswer::Agree)
            .unwrap_err(),
        "HZQRXX_NOT_FOUND"
    );
    let stranger = TaxpayerId::parse("91110302MA01NP925M").unwrap();
    let foreign =
        book.state
            .answer_form(&stranger, &own.number, FormAnswer::Withdraw, start_time());
    assert_eq!(code(foreign), "HZQRXX_NOT_FOUND");
}

#[test]
fn red_invoices_are_recorded_only_against_a_form_that_allows_them_and_match_its_lines() {
    let mut book = Book::new();
    let fresh = book.blue(InvoiceKind::General, unused());
    let used = book.blue(InvoiceKind::General, booked());
    let content = book.content(&fresh);
    let lines = vec![line(1, "60", "3.60"), line(2, "10", "0.60")];
    let form = book.file("A", fresh, lines.clone(), start_time());
    assert_eq!(form.status, FormStatus::NoConfirmationNeeded);

    let reject = |judgement: Judgement| match judgement {
        Judgement::Reject(rejection) => rejection.code,
        other => panic!("expected a rejection, got {other:?}"),
    };
    // Wrong lines: a different amount, a line missing, the lines out of order.
    for wrong in [
        vec![line(1, "50", "3.00"), line(2, "10", "0.60")],
        vec![line(1, "60", "3.60")],
        vec![line(2, "10", "0.60"), line(1, "60", "3.60")],
    ] {
        let red = red_content(&content, fresh, &form.number, &wrong, "RED-WRONG");
        assert_eq!(reject(book.upload_red(red).0), "HZMX_MISMATCH", "{wrong:?}");
    }
    // A form of another blue invoice, an unknown form.
    let red = red_content(&content, fresh, "26310000000000000000", &lines, "RED-X");
    assert_eq!(reject(book.upload_red(red).0), "HZQRXX_INVALID");

    let red = red_content(&content, fresh, &form.number, &lines, "RED-A");
    let (judgement, red_number) = book.upload_red(red.clone());
    assert_eq!(judgement, Judgement::Accept);
    assert_eq!(book.form(&form.number).red_number, Some(red_number));
    assert_eq!(
        book.state
            .invoice(&seller(), &fresh)
            .unwrap()
            .unwrap()
            .state(),
        RemoteState::PartiallyReversed
    );
    assert_eq!(
        book.upload_as(red_number, red.clone()),
        Judgement::Duplicate,
        "the same red invoice again is idempotent"
    );
    let again = red_content(&content, fresh, &form.number, &lines, "RED-A2");
    assert_eq!(reject(book.upload_red(again).0), "HZQRXX_USED");

    let pending = book.file("B", used, vec![line(1, "10", "0.60")], start_time());
    assert_eq!(pending.status, FormStatus::AwaitingBuyer);
    let used_content = book.content(&used);
    let red = red_content(
        &used_content,
        used,
        &pending.number,
        &pending.lines,
        "RED-B",
    );
    assert_eq!(reject(book.upload_red(red.clone()).0), "HZQRXX_INVALID");
    let red_of_other_blue = red_content(&used_content, used, &form.number, &lines, "RED-C");
    assert_eq!(
        reject(book.upload_red(red_of_other_blue).0),
        "HZQRXX_INVALID"
    );
    book.buyer(&pending.number, true).unwrap();
    assert_eq!(book.upload_red(red).0, Judgement::Accept, "once confirmed");
}

#[test]
fn the_platform_issues_a_confirmed_forms_red_invoice_on_the_sellers_next_number() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, booked());
    let form = book.file("REQ-7", blue, vec![line(1, "100", "6")], start_time());
    let at = start_time() + Duration::hours(3);
    assert_eq!(
        code(book.state.self_issued_red(&form.number, at)),
        "HZQRXXZT_INVALID",
        "not before it is confirmed"
    );
    book.buyer(&form.number, true).unwrap();
    let events = book.state.self_issued_red(&form.number, at).unwrap();
    book.commit_all(events);
    let red_number = book.form(&form.number).red_number.unwrap();
    let red = book.state.invoice(&seller(), &red_number).unwrap().unwrap();
    assert_eq!(red.content.request_id, "REQ-7");
    assert_eq!(red.content.drawer, PLATFORM_DRAWER);
    assert_eq!((red.issued_at, red.recorded_at), (at, at));
    assert_eq!(red.content_sm3, platform_digest(&red.content));
    let reference = red.content.red.as_ref().unwrap();
    assert_eq!(reference.form_number, form.number);
    assert_eq!(reference.blue_number, blue);
    assert_eq!(red.content.totals.amount, yuan("-100"));
    assert_eq!(red.content.totals.tax, yuan("-6"));
    assert_eq!(
        book.state
            .invoice(&seller(), &blue)
            .unwrap()
            .unwrap()
            .state(),
        RemoteState::PartiallyReversed
    );
    assert_eq!(
        code(book.state.self_issued_red(&form.number, at)),
        "HZQRXXZT_INVALID",
        "once only"
    );
    let listed = book
        .state
        .day_page(&seller(), crate::clock::china_day(at), 0, 100)
        .unwrap()
        .0;
    assert!(listed.iter().any(|(n, _)| *n == red_number));

    // A buyer's form has no request id: the red invoice carries the form number instead.
    let buyer = book.file_as_buyer(blue, FormLines::Full);
    book.answer(&buyer.number, FormAnswer::Agree).unwrap();
    book.commit_all(book.state.self_issued_red(&buyer.number, at).unwrap());
    let red_number = book.form(&buyer.number).red_number.unwrap();
    let red = book.state.invoice(&seller(), &red_number).unwrap().unwrap();
    assert_eq!(red.content.request_id, buyer.number);
    assert_eq!(
        book.state
            .invoice(&seller(), &blue)
            .unwrap()
            .unwrap()
            .state(),
        RemoteState::FullyReversed
    );
}

#[test]
fn the_sellers_forms_are_listed_by_change_and_newest_first() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, booked());
    let fresh = book.blue(InvoiceKind::General, unused());
    let t = |minutes: i64| start_time() + Duration::minutes(minutes);
    let a = book.file("A", blue, vec![line(1, "10", "0.60")], t(0));
    let b = book.file("B", fresh, vec![line(1, "10", "0.60")], t(10));
    // A changes last.
    book.buyer(&a.number, true).unwrap();
    let numbers = |forms: Vec<&RemoteForm>| -> Vec<String> {
        forms.into_iter().map(|f| f.number.clone()).collect()
    };
    let (page, next) = book.state.forms_changed_since(&seller(), t(0), 0, 1);
    assert_eq!(numbers(page), vec![b.number.clone()]);
    assert_eq!(next, Some(1));
    let (page, next) = book.state.forms_changed_since(&seller(), t(0), 1, 1);
    assert_eq!(numbers(page), vec![a.number.clone()]);
    assert_eq!(next, None);
    let (page, _) = book.state.forms_changed_since(&seller(), t(11), 0, 10);
    assert_eq!(numbers(page), vec![a.number.clone()], "changed at +1 h");
    let (page, next) = book.state.forms_changed_since(&seller(), t(24 * 60), 0, 10);
    assert!(page.is_empty());
    assert_eq!(next, None);
    assert_eq!(
        numbers(book.state.forms_of(&seller())),
        vec![b.number, a.number]
    );
}

#[test]
fn replaying_the_journal_restores_forms_numbers_and_the_clock_offset() {
    let mut book = Book::new();
    let blue = book.blue(InvoiceKind::General, booked());
    let fresh = book.blue(InvoiceKind::General, unused());
    let a = book.file("A", blue, vec![line(1, "10", "0.60")], start_time());
    book.buyer(&a.number, true).unwrap();
    let b = book.file("B", fresh, vec![line(1, "10", "0.60")], start_time());
    let content = book.content(&fresh);
    let red = red_content(&content, fresh, &b.number, &b.lines, "RED-B");
    book.upload_red(red);
    let c = book.file("C", blue, vec![line(2, "10", "0.60")], start_time());
    book.commit(book.state.advance_clock(72 * 3600).unwrap());
    let now = book.state.business_time(start_time());
    book.commit_all(book.state.expire_due(now));
    assert_eq!(book.form(&c.number).status, FormStatus::VoidExpired);

    let mut replayed = State::new(settings());
    for event in &book.journal {
        let line = serde_json::to_string(event).unwrap();
        replayed.apply(serde_json::from_str(&line).unwrap());
    }
    assert_eq!(replayed.business_time(start_time()), now);
    let forms = |state: &State| -> Vec<RemoteForm> {
        state.forms_of(&seller()).into_iter().cloned().collect()
    };
    assert_eq!(forms(&replayed), forms(&book.state));
    assert_eq!(replayed.form_counts(), book.state.form_counts());
    assert!(
        replayed
            .form(&seller(), &b.number)
            .unwrap()
            .red_number
            .is_some()
    );
    assert!(replayed.expire_due(now + Duration::days(9)).is_empty());
    // Filing continues the sequence rather than reusing a number.
    let request = FormRequest {
        request_id: "D".into(),
        blue_number: blue,
        reason: RedLetterReason::SalesReturn,
        lines: vec![line(2, "1", "0.06")],
    };
    let Filing::New(_, number) = replayed
        .file_form(&seller(), &request, start_time())
        .unwrap()
    else {
        panic!("expected a new form");
    };
    assert!(forms(&book.state).iter().all(|f| f.number < number));
    // Idempotency survives the replay too.
    let request = FormRequest {
        request_id: "A".into(),
        blue_number: blue,
        reason: RedLetterReason::SalesReturn,
        lines: vec![line(1, "10", "0.60")],
    };
    assert_eq!(
        replayed.file_form(&seller(), &request, now).unwrap(),
        Filing::Existing(a.number)
    );
}

#[test]
fn the_clock_only_moves_forward_and_not_beyond_a_century() {
    let state = State::new(settings());
    assert_eq!(state.business_time(start_time()), start_time());
    assert!(state.advance_clock(-1).is_none());
    assert!(state.advance_clock(MAX_CLOCK_OFFSET + 1).is_none());
    assert_eq!(
        state.advance_clock(60),
        Some(Event::ClockOffsetSet { offset_seconds: 60 })
    );
}
