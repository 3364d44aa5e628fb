//! Red-letter invoices end to end over gRPC, against the sandbox platform acting as the buyer:
//! full and partial reversal, forms waiting for the buyer (confirmed, denied, expired, withdrawn),
//! forms the buyer filed, concurrent reversals that together would exceed the blue invoice, red
//! invoices the platform issued on its own, and the red layout files.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use fapiao_proto::v1::{
    self, InvoiceState, RedLetterFormStatus as Form, get_red_letter_form_request,
};
use fapiao_services::config::Config;
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::{self, DEMO_SELLER};
use fapiao_tests::{TestApp, quick_config, spawn_app_on, violations};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use tonic::Code;

/// [`quick`], with invoices of the last seconds reconciled at once instead of after the in-flight
/// grace.
fn compared_at_once() -> Config {
    let mut config = quick_config();
    config.reconcile.grace = Duration::ZERO;
    config
}

/// Issue an invoice and wait until the platform recorded it; returns its number.
async fn recorded_blue(app: &TestApp, input: v1::InvoiceInput) -> String {
    let number = app.issue(input).await;
    app.invoice_when(&number, |i| i.state() == InvoiceState::Recorded)
        .await;
    number
}

async fn request(
    app: &TestApp,
    input: v1::RedLetterInput,
) -> Result<v1::RequestRedLetterResponse, tonic::Status> {
    app.issuance()
        .request_red_letter(v1::RequestRedLetterRequest {
            red_letter: Some(input),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn form(app: &TestApp, number: &str) -> v1::RedLetterForm {
    app.issuance()
        .get_red_letter_form(v1::GetRedLetterFormRequest {
            key: Some(get_red_letter_form_request::Key::FormNumber(number.into())),
        })
        .await
        .unwrap()
        .into_inner()
        .form
        .unwrap()
}

/// Poll until form `number` satisfies `done` (at most 30 s); returns it.
async fn form_when(
    app: &TestApp,
    number: &str,
    done: impl Fn(&v1::RedLetterForm) -> bool,
) -> v1::RedLetterForm {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = form(app, number).await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "form {number}: not there in time: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The buyer has booked the invoice: a form for it needs the buyer's confirmation.
async fn book(app: &TestApp, blue: &str) {
    app.sandbox_call(
        Method::PUT,
        &format!("invoices/{blue}/usage"),
        Some(json!({"used_for_deduction": true, "booked": true})),
    )
    .await;
}

fapiao_tests::on_both_databases!(
    a_full_reversal_of_an_unused_invoice_issues_the_red_invoice_at_once,
    two_lines_reversed_in_part_then_the_rest,
    concurrent_reversals_never_exceed_the_blue_invoice,
    forms_wait_for_the_buyer_and_end_confirmed_denied_withdrawn_or_expired,
    forms_the_buyer_files_are_answered_by_the_seller,
    a_red_invoice_the_platform_issued_itself_is_adopted_by_reconciliation,
);

async fn a_full_reversal_of_an_unused_invoice_issues_the_red_invoice_at_once(db: TestDatabase) {
    let app = spawn_app_on(db, compared_at_once()).await.unwrap();
    let blue = recorded_blue(&app, sample::input("order-1", "1000.00")).await;

    let answer = request(&app, sample::full_reversal("refund-1", &blue))
        .await
        .unwrap();
    assert!(!answer.replayed);
    let filed = answer.form.unwrap();
    assert_eq!(filed.status(), Form::NoConfirmationNeeded);
    assert_eq!(filed.initiator(), v1::RedLetterInitiator::Seller);
    assert_eq!(filed.form_number.len(), 20);
    assert_eq!(filed.uuid.len(), 32);
    assert_eq!(filed.blue_invoice_number, blue);
    assert_eq!(
        (filed.amount.as_str(), filed.tax.as_str()),
        ("-1000.00", "-60.00")
    );
    assert_eq!(filed.lines.len(), 1);
    assert_eq!(filed.lines[0].blue_line_number, 1);
    assert_eq!(filed.lines[0].amount, "-1000.00");
    assert!(filed.expires_at.is_none());
    let red = answer.red_invoice.unwrap();
    assert_ne!(red.invoice_number, blue);
    assert_eq!(filed.red_invoice_number, red.invoice_number);
    assert_eq!(red.colour(), v1::InvoiceColour::Red);
    assert_eq!(red.request_id, "refund-1");
    assert_eq!(red.blue_invoice_number, blue);
    assert_eq!(red.red_letter_form_number, filed.form_number);
    let totals = red.totals.clone().unwrap();
    assert_eq!(
        (
            totals.amount.as_str(),
            totals.tax.as_str(),
            totals.total.as_str()
        ),
        ("-1000.00", "-60.00", "-1060.00")
    );
    assert_eq!(totals.total_in_words, "（负数）壹仟零陆拾圆整");
    assert!(red.remark.starts_with(&format!(
        "被红冲蓝字数电发票号码：{blue} 红字发票信息确认单编号：{}",
        filed.form_number
    )));

    // Uploaded and recorded like any invoice; then the blue invoice is fully reversed.
    let recorded_red = app
        .invoice_when(&red.invoice_number, |i| i.state() == InvoiceState::Recorded)
        .await;
    assert_eq!(recorded_red.lines[0].blue_line_number, 1);
    assert!(
        recorded_red.reversal.is_none(),
        "a red invoice has no balance"
    );
    let reversed = app
        .invoice_when(&blue, |i| i.state() == InvoiceState::FullyReversed)
        .await;
    assert_eq!(reversed.colour(), v1::InvoiceColour::Blue);
    let balance = reversed.reversal.unwrap();
    assert_eq!(
        (
            balance.remaining_amount.as_str(),
            balance.remaining_tax.as_str()
        ),
        ("0.00", "0.00")
    );
    assert_eq!(reversed.lines[0].reversed_amount, "1000.00");
    // Reconciled like any invoice: the platform agrees on the red one and the reversed blue one.
    let run = app.reconcile_last_hour("after a reversal").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.invoices_compared, 2, "{run:?}");
    assert!(run.drifts_found.iter().all(|c| c.count == 0), "{run:?}");

    // The same request again is a replay; the same id for something else is refused.
    let again = request(&app, sample::full_reversal("refund-1", &blue))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.form.unwrap().form_number, filed.form_number);
    assert_eq!(
        again.red_invoice.unwrap().invoice_number,
        red.invoice_number
    );
    let mut other = sample::full_reversal("refund-1", &blue);
    other.drawer = "王五".into();
    let reused = request(&app, other).await.unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert!(reused.message().starts_with("REQUEST_ID_REUSED: "));
    let order_id = request(&app, sample::full_reversal("order-1", &blue))
        .await
        .unwrap_err();
    assert_eq!(
        order_id.code(),
        Code::AlreadyExists,
        "request ids are shared with invoices"
    );

    // Reversing a reversed invoice is refused, and so is reversing a red one.
    let twice = request(&app, sample::full_reversal("refund-2", &blue))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&twice),
        vec![(
            "blue_invoice_number".to_owned(),
            "RED_NOTHING_LEFT".to_owned()
        )]
    );
    let red_of_red = request(&app, sample::full_reversal("refund-3", &red.invoice_number))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&red_of_red),
        vec![(
            "blue_invoice_number".to_owned(),
            "RED_BLUE_IS_RED".to_owned()
        )]
    );

    // A request bad in every field says so at once, and files nothing.
    let bad = request(
        &app,
        v1::RedLetterInput {
            seller_tax_id: "91310000MA1FP0001X".into(),
            request_id: "退款".into(),
            blue_invoice_number: "12345".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&bad),
        [
            ("seller_tax_id", "SELLER_TAX_ID_CHECK_DIGIT"),
            ("request_id", "REQUEST_ID_FORMAT"),
            ("blue_invoice_number", "RED_BLUE_NUMBER_FORMAT"),
            ("reason", "RED_REASON_REQUIRED"),
            ("scope", "RED_SCOPE_REQUIRED"),
            ("drawer", "DRAWER_REQUIRED"),
        ]
        .map(|(f, c)| (f.to_owned(), c.to_owned()))
    );

    // By request id too.
    let by_request = app
        .issuance()
        .get_red_letter_form(v1::GetRedLetterFormRequest {
            key: Some(get_red_letter_form_request::Key::ByRequest(
                v1::SellerRequestKey {
                    seller_tax_id: DEMO_SELLER.into(),
                    request_id: "refund-1".into(),
                },
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .form
        .unwrap();
    assert_eq!(by_request.form_number, filed.form_number);
    assert_eq!(by_request.red_invoice_number, red.invoice_number);

    // The red layout files say what they reverse.
    app.invoice_when(&red.invoice_number, |i| i.files.len() == 3)
        .await;
    let (_, xml) = app
        .download(&red.invoice_number, v1::FileFormat::Xml)
        .await
        .unwrap();
    let parsed = fapiao_archive::xml::parse(&xml).unwrap();
    let info = parsed.red.clone().unwrap();
    assert_eq!(info.original_invoice_code, blue);
    assert_eq!(info.form_number, filed.form_number);
    assert_eq!(parsed.basic.total_in_words, "（负数）壹仟零陆拾圆整");
    assert_eq!(parsed.basic.total_with_tax.to_string(), "-1060.00");
    assert!(String::from_utf8_lossy(&xml).contains("<InIssuType><LabelCode>N</LabelCode>"));
    assert!(parsed.remark.contains(&filed.form_number));
    let (_, ofd) = app
        .download(&red.invoice_number, v1::FileFormat::Ofd)
        .await
        .unwrap();
    let read = fapiao_archive::ofd_read::read(&ofd).unwrap();
    assert_eq!(read.xml.as_deref(), Some(xml.as_slice()));
    let tag = |path: &str| read.tags.get(path).cloned().unwrap_or_default();
    assert_eq!(
        tag("EInvoiceData/BasicInformation/TotalTax-includedAmountInChinese"),
        "（负数）壹仟零陆拾圆整"
    );
    let remark: String = tag("EInvoiceData/AdditionalInformation/Remark")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(remark.contains(&blue), "{remark}");
    assert!(remark.contains(&filed.form_number), "{remark}");
}

async fn two_lines_reversed_in_part_then_the_rest(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let blue = recorded_blue(&app, sample::two_lines("order-2", "1000.00")).await;

    // 300.00 of line 1, and 4 of the 10 laptops of line 2.
    let first = request(
        &app,
        sample::partial_reversal("return-1", &blue, &[(1, "300.00", ""), (2, "", "4")]),
    )
    .await
    .unwrap();
    let first_form = first.form.unwrap();
    assert_eq!(first_form.status(), Form::NoConfirmationNeeded);
    let lines: Vec<(u32, &str, &str, &str)> = first_form
        .lines
        .iter()
        .map(|l| {
            (
                l.blue_line_number,
                l.amount.as_str(),
                l.tax.as_str(),
                l.quantity.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![(1, "-300.00", "-18.00", ""), (2, "-200.00", "-26.00", "-4")]
    );
    let red = first.red_invoice.unwrap();
    assert_eq!(red.totals.unwrap().total, "-544.00");
    app.invoice_when(&red.invoice_number, |i| i.state() == InvoiceState::Recorded)
        .await;
    let partly = app
        .invoice_when(&blue, |i| i.state() == InvoiceState::PartiallyReversed)
        .await;
    let balance = partly.reversal.unwrap();
    assert_eq!(
        (
            balance.reversed_amount.as_str(),
            balance.reversed_tax.as_str(),
            balance.remaining_amount.as_str(),
            balance.remaining_tax.as_str()
        ),
        ("500.00", "44.00", "1000.00", "81.00")
    );
    assert_eq!(
        balance.red_invoice_numbers,
        vec![red.invoice_number.clone()]
    );
    let per_line: Vec<(u32, &str, &str, &str)> = partly
        .lines
        .iter()
        .map(|l| {
            (
                l.line_number,
                l.reversed_amount.as_str(),
                l.reversed_tax.as_str(),
                l.reversed_quantity.as_str(),
            )
        })
        .collect();
    assert_eq!(
        per_line,
        vec![(1, "300.00", "18.00", ""), (2, "200.00", "26.00", "4")]
    );
    let red_lines: Vec<u32> = red.lines.iter().map(|l| l.blue_line_number).collect();
    assert_eq!(
        red_lines,
        vec![1, 2],
        "red lines name the blue lines they reverse"
    );

    // More than what remains of line 2 is refused, with every problem at once.
    let too_much = request(
        &app,
        sample::partial_reversal("return-2", &blue, &[(2, "", "7"), (3, "1.00", "")]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        violations(&too_much),
        vec![
            (
                "partial.lines[0].quantity".to_owned(),
                "RED_QUANTITY_EXCEEDS_REMAINING".to_owned()
            ),
            (
                "partial.lines[1].line_number".to_owned(),
                "RED_LINE_UNKNOWN".to_owned()
            ),
        ]
    );

    // The rest: 700.00 of line 1 and the 6 remaining laptops.
    let rest = request(&app, sample::full_reversal("return-3", &blue))
        .await
        .unwrap();
    let rest_form = rest.form.unwrap();
    let amounts: Vec<(u32, &str, &str)> = rest_form
        .lines
        .iter()
        .map(|l| (l.blue_line_number, l.amount.as_str(), l.quantity.as_str()))
        .collect();
    assert_eq!(amounts, vec![(1, "-700.00", ""), (2, "-300.00", "-6")]);
    assert_eq!(
        (rest_form.amount.as_str(), rest_form.tax.as_str()),
        ("-1000.00", "-81.00")
    );
    let red = rest.red_invoice.unwrap();
    app.invoice_when(&red.invoice_number, |i| i.state() == InvoiceState::Recorded)
        .await;
    app.invoice_when(&blue, |i| i.state() == InvoiceState::FullyReversed)
        .await;

    // Both forms are listed, newest first.
    let listed = app
        .issuance()
        .list_red_letter_forms(v1::ListRedLetterFormsRequest {
            seller_tax_id: DEMO_SELLER.into(),
            blue_invoice_number: blue.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.forms.len(), 1);
    assert_eq!(listed.forms[0].form_number, rest_form.form_number);
    let next = app
        .issuance()
        .list_red_letter_forms(v1::ListRedLetterFormsRequest {
            seller_tax_id: DEMO_SELLER.into(),
            blue_invoice_number: blue.clone(),
            page_size: 1,
            page_token: listed.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.forms[0].form_number, first_form.form_number);
    assert!(next.next_page_token.is_empty());
}

async fn concurrent_reversals_never_exceed_the_blue_invoice(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let blue = recorded_blue(&app, sample::input("order-3", "1000.00")).await;

    // Eight callers at once, each 300.00 of the 1,000.00: exactly three fit.
    let calls = (0..8).map(|i| {
        let client = app.issuance();
        let input =
            sample::partial_reversal(&format!("allowance-{i}"), &blue, &[(1, "300.00", "")]);
        tokio::spawn(async move {
            let mut client = client;
            client
                .request_red_letter(v1::RequestRedLetterRequest {
                    red_letter: Some(input),
                })
                .await
                .map(tonic::Response::into_inner)
        })
    });
    let mut reds = Vec::new();
    let mut refused = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            Ok(answer) => reds.push(answer.red_invoice.unwrap().invoice_number),
            Err(status) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                assert_eq!(
                    violations(&status),
                    vec![(
                        "partial.lines[0].amount".to_owned(),
                        "RED_AMOUNT_EXCEEDS_REMAINING".to_owned()
                    )]
                );
                refused += 1;
            }
        }
    }
    assert_eq!((reds.len(), refused), (3, 5));

    // What remains (100.00) still can be reversed, in a batch whose other item fails alone.
    let batch = app
        .issuance()
        .request_red_letters(v1::RequestRedLettersRequest {
            red_letters: vec![
                sample::partial_reversal("allowance-last", &blue, &[(1, "100.00", "")]),
                sample::full_reversal("allowance-unknown", "26312000000999999999"),
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(batch.len(), 2);
    match &batch[0].result {
        Some(v1::request_red_letters_item_result::Result::Outcome(o)) => {
            reds.push(o.red_invoice.clone().unwrap().invoice_number);
        }
        other => panic!("the last 100.00 fits: {other:?}"),
    }
    match &batch[1].result {
        Some(v1::request_red_letters_item_result::Result::Error(e)) => {
            assert_eq!(e.code, "NOT_FOUND");
            assert!(e.message.starts_with("BLUE_INVOICE_NOT_FOUND: "), "{e:?}");
        }
        other => panic!("no such blue invoice: {other:?}"),
    }
    let nothing = request(
        &app,
        sample::partial_reversal("allowance-over", &blue, &[(1, "0.01", "")]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        violations(&nothing),
        vec![(
            "blue_invoice_number".to_owned(),
            "RED_NOTHING_LEFT".to_owned()
        )]
    );
    for red in &reds {
        app.invoice_when(red, |i| i.state() == InvoiceState::Recorded)
            .await;
    }
    app.invoice_when(&blue, |i| i.state() == InvoiceState::FullyReversed)
        .await;
}

fn status_of(form: &v1::RedLetterForm) -> Form {
    form.status()
}

async fn forms_wait_for_the_buyer_and_end_confirmed_denied_withdrawn_or_expired(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let mut blues = Vec::new();
    for i in 0..4 {
        let blue = recorded_blue(&app, sample::input(&format!("order-b{i}"), "100.00")).await;
        book(&app, &blue).await;
        blues.push(blue);
    }
    let mut watch = app
        .issuance()
        .watch_red_letter_forms(v1::WatchRedLetterFormsRequest::default())
        .await
        .unwrap()
        .into_inner();

    // Confirmed by the buyer: the red invoice follows.
    let a = request(&app, sample::full_reversal("rf-a", &blues[0]))
        .await
        .unwrap();
    assert!(a.red_invoice.is_none());
    let a = a.form.unwrap();
    assert_eq!(status_of(&a), Form::AwaitingBuyer);
    let (created, expires) = (a.created_at.unwrap(), a.expires_at.unwrap());
    assert_eq!(expires.seconds - created.seconds, 72 * 3600);
    let pending = request(&app, sample::full_reversal("rf-a2", &blues[0]))
        .await
        .unwrap_err();
    assert_eq!(pending.code(), Code::FailedPrecondition);
    // Its request id is taken for the red invoice to come, before that invoice exists.
    let taken = app
        .issuance()
        .issue_invoice(v1::IssueInvoiceRequest {
            invoice: Some(sample::input("rf-a", "5.00")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert!(taken.message().contains(&a.form_number), "{taken:?}");
    assert!(
        pending.message().starts_with("RED_LETTER_FORM_PENDING: "),
        "{pending:?}"
    );
    app.sandbox_call(
        Method::POST,
        &format!("forms/{}/confirm", a.form_number),
        None,
    )
    .await;
    let confirmed = form_when(&app, &a.form_number, |f| !f.red_invoice_number.is_empty()).await;
    assert_eq!(status_of(&confirmed), Form::Confirmed);
    app.invoice_when(&confirmed.red_invoice_number, |i| {
        i.state() == InvoiceState::Recorded
    })
    .await;
    app.invoice_when(&blues[0], |i| i.state() == InvoiceState::FullyReversed)
        .await;
    // Auditors see the form's life in the history of the blue invoice and of the red one.
    for number in [&blues[0], &confirmed.red_invoice_number] {
        let history = app
            .audit()
            .get_invoice_history(v1::GetInvoiceHistoryRequest {
                invoice_number: number.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let life: Vec<(Form, &str)> = history
            .red_letter_form_events
            .iter()
            .map(|e| (e.status(), e.red_invoice_number.as_str()))
            .collect();
        assert_eq!(
            life,
            vec![
                (Form::AwaitingBuyer, ""),
                (Form::Confirmed, ""),
                (Form::Confirmed, confirmed.red_invoice_number.as_str()),
            ],
            "{number}"
        );
    }

    // Denied by the buyer: void, and the blue invoice can be reversed again.
    let b = request(&app, sample::full_reversal("rf-b", &blues[1]))
        .await
        .unwrap()
        .form
        .unwrap();
    app.sandbox_call(Method::POST, &format!("forms/{}/deny", b.form_number), None)
        .await;
    let denied = form_when(&app, &b.form_number, |f| {
        status_of(f) == Form::VoidBuyerDisagreed
    })
    .await;
    assert!(denied.red_invoice_number.is_empty());
    let not_withdrawable = app
        .issuance()
        .withdraw_red_letter_form(v1::WithdrawRedLetterFormRequest {
            seller_tax_id: DEMO_SELLER.into(),
            form_number: b.form_number.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_withdrawable.code(), Code::FailedPrecondition);
    assert!(
        not_withdrawable
            .message()
            .starts_with("RED_LETTER_FORM_NOT_WITHDRAWABLE: ")
    );

    // Withdrawn by the seller (a second request for the same blue invoice, now free again).
    let d = request(&app, sample::full_reversal("rf-b2", &blues[1]))
        .await
        .unwrap()
        .form
        .unwrap();
    assert_eq!(status_of(&d), Form::AwaitingBuyer);
    for _ in 0..2 {
        let withdrawn = app
            .issuance()
            .withdraw_red_letter_form(v1::WithdrawRedLetterFormRequest {
                seller_tax_id: DEMO_SELLER.into(),
                form_number: d.form_number.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .form
            .unwrap();
        assert_eq!(status_of(&withdrawn), Form::VoidWithdrawn);
    }

    // Expired: one minute before 72 hours the platform still waits; at 72 hours it is void.
    let c = request(&app, sample::full_reversal("rf-c", &blues[2]))
        .await
        .unwrap()
        .form
        .unwrap();
    let waiting = app
        .ops()
        .list_pending_red_letter_forms(v1::ListPendingRedLetterFormsRequest {
            seller_tax_id: DEMO_SELLER.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .forms;
    let numbers: Vec<&str> = waiting.iter().map(|f| f.form_number.as_str()).collect();
    assert_eq!(numbers, vec![c.form_number.as_str()]);
    let soon = app
        .ops()
        .list_pending_red_letter_forms(v1::ListPendingRedLetterFormsRequest {
            expiring_within: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .forms;
    assert!(soon.is_empty(), "nothing expires within the hour yet");
    app.sandbox_call(
        Method::POST,
        "clock",
        Some(json!({"advance_seconds": 72 * 3600 - 60})),
    )
    .await;
    let listed = app
        .sandbox_call(Method::GET, &format!("forms?seller={DEMO_SELLER}"), None)
        .await;
    let on_platform = |number: &str| -> String {
        listed
            .as_array()
            .or_else(|| listed["forms"].as_array())
            .unwrap()
            .iter()
            .find(|f| f["number"] == number)
            .map(|f| f["status"].to_string())
            .unwrap_or_default()
    };
    assert!(
        on_platform(&c.form_number).contains("AwaitingBuyer"),
        "{listed}"
    );
    app.sandbox_call(Method::POST, "clock", Some(json!({"advance_seconds": 60})))
        .await;
    form_when(&app, &c.form_number, |f| status_of(f) == Form::VoidExpired).await;
    app.invoice_when(&blues[2], |i| i.state() == InvoiceState::Recorded)
        .await;

    // Every change reached the watcher, in order per form.
    let mut seen: Vec<(String, Form, String)> = Vec::new();
    let wanted = [
        (a.form_number.clone(), Form::AwaitingBuyer),
        (a.form_number.clone(), Form::Confirmed),
        (b.form_number.clone(), Form::VoidBuyerDisagreed),
        (d.form_number.clone(), Form::VoidWithdrawn),
        (c.form_number.clone(), Form::VoidExpired),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wanted
        .iter()
        .all(|(n, s)| seen.iter().any(|(m, t, _)| m == n && t == s))
    {
        assert!(
            Instant::now() < deadline,
            "the watcher missed changes: {seen:?}"
        );
        let message = tokio::time::timeout(Duration::from_secs(30), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(event) = message.event {
            seen.push((
                event.form_number.clone(),
                event.status(),
                event.red_invoice_number,
            ));
        }
    }
    assert!(
        seen.iter()
            .any(|(n, _, red)| *n == a.form_number && *red == confirmed.red_invoice_number),
        "the red invoice of form A was announced: {seen:?}"
    );
}

async fn forms_the_buyer_files_are_answered_by_the_seller(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let agree = recorded_blue(&app, sample::two_lines("order-e", "100.00")).await;
    let disagree = recorded_blue(&app, sample::input("order-f", "100.00")).await;
    let file = |blue: &str, body: serde_json::Value| {
        let mut body = body;
        body["seller"] = json!(DEMO_SELLER);
        body["blue_number"] = json!(blue);
        body["reason"] = json!("02");
        body
    };
    let e = app
        .sandbox_call(
            Method::POST,
            "forms",
            Some(file(
                &agree,
                json!({"lines": [{"blue_line": 2, "amount": "100.00", "tax": "13.00", "quantity": "2"}]}),
            )),
        )
        .await["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = app
        .sandbox_call(
            Method::POST,
            "forms",
            Some(file(&disagree, json!({"full": true}))),
        )
        .await["number"]
        .as_str()
        .unwrap()
        .to_owned();

    // The follow-up finds both; they wait for the seller.
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let listed = app
            .issuance()
            .list_red_letter_forms(v1::ListRedLetterFormsRequest {
                seller_tax_id: DEMO_SELLER.into(),
                statuses: vec![Form::AwaitingSeller.into()],
                initiator: v1::RedLetterInitiator::Buyer.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .forms;
        if listed.len() == 2 {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "the buyer's forms were not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(waiting[0].form_number, f, "newest first");
    assert!(waiting[1].request_id.is_empty());
    assert_eq!(waiting[1].lines[0].blue_line_number, 2);
    assert_eq!(waiting[1].lines[0].quantity, "-2");

    let no_drawer = app
        .issuance()
        .confirm_red_letter_form(v1::ConfirmRedLetterFormRequest {
            seller_tax_id: DEMO_SELLER.into(),
            form_number: e.clone(),
            decision: v1::RedLetterFormDecision::Agree.into(),
            drawer: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&no_drawer),
        vec![("drawer".to_owned(), "DRAWER_REQUIRED".to_owned())]
    );
    let agreed = app
        .issuance()
        .confirm_red_letter_form(v1::ConfirmRedLetterFormRequest {
            seller_tax_id: DEMO_SELLER.into(),
            form_number: e.clone(),
            decision: v1::RedLetterFormDecision::Agree.into(),
            drawer: "李四".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(agreed.form.as_ref().unwrap()), Form::Confirmed);
    let red = agreed.red_invoice.unwrap();
    assert_eq!(red.drawer, "李四");
    assert_eq!(
        red.request_id, e,
        "a buyer's form lends its number as the request id"
    );
    assert_eq!(red.totals.unwrap().total, "-113.00");
    app.invoice_when(&red.invoice_number, |i| i.state() == InvoiceState::Recorded)
        .await;
    app.invoice_when(&agree, |i| i.state() == InvoiceState::PartiallyReversed)
        .await;

    let disagreed = app
        .issuance()
        .confirm_red_letter_form(v1::ConfirmRedLetterFormRequest {
            seller_tax_id: DEMO_SELLER.into(),
            form_number: f.clone(),
            decision: v1::RedLetterFormDecision::Disagree.into(),
            drawer: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status_of(disagreed.form.as_ref().unwrap()),
        Form::VoidSellerDisagreed
    );
    assert!(disagreed.red_invoice.is_none());
    let again = app
        .issuance()
        .confirm_red_letter_form(v1::ConfirmRedLetterFormRequest {
            seller_tax_id: DEMO_SELLER.into(),
            form_number: f.clone(),
            decision: v1::RedLetterFormDecision::Agree.into(),
            drawer: "李四".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(
        again
            .message()
            .starts_with("RED_LETTER_FORM_NOT_AWAITING_SELLER: ")
    );
}

async fn a_red_invoice_the_platform_issued_itself_is_adopted_by_reconciliation(db: TestDatabase) {
    let app = spawn_app_on(db, compared_at_once()).await.unwrap();
    let blue = recorded_blue(&app, sample::input("order-g", "100.00")).await;
    book(&app, &blue).await;
    app.sandbox_call(
        Method::PUT,
        "faults",
        Some(json!({"self_issued_red_rate": "100%"})),
    )
    .await;
    let filed = request(&app, sample::full_reversal("rf-g", &blue))
        .await
        .unwrap()
        .form
        .unwrap();
    app.sandbox_call(
        Method::POST,
        &format!("forms/{}/confirm", filed.form_number),
        None,
    )
    .await;
    // The form learns the platform's red number; the invoice itself is not ours yet.
    let confirmed = form_when(&app, &filed.form_number, |f| {
        !f.red_invoice_number.is_empty()
    })
    .await;
    assert_eq!(status_of(&confirmed), Form::Confirmed);
    let red_number = confirmed.red_invoice_number.clone();
    let missing = app
        .issuance()
        .get_invoice(v1::GetInvoiceRequest {
            key: Some(v1::get_invoice_request::Key::InvoiceNumber(
                red_number.clone(),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let run = app
        .reconcile_last_hour("pick up platform red invoices")
        .await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let adopted = app
        .invoice_when(&red_number, |i| i.state() == InvoiceState::Recorded)
        .await;
    assert_eq!(adopted.colour(), v1::InvoiceColour::Red);
    assert_eq!(adopted.request_id, "rf-g");
    assert_eq!(adopted.blue_invoice_number, blue);
    assert_eq!(adopted.red_letter_form_number, filed.form_number);
    app.invoice_when(&blue, |i| i.state() == InvoiceState::FullyReversed)
        .await;
    // A second pass finds nothing left to do.
    let again = app.reconcile_last_hour("check").await;
    assert!(again.drifts_found.iter().all(|c| c.count == 0), "{again:?}");
}
