//! Confirmation forms through the real HTTP server, driven by the real [`HttpPlatform`] client and
//! the admin API: filing, querying, listing and answering, the buyer's side, the business clock
//! (expiry without sleeping), the self-issued red invoice fault and the journal.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fapiao_invoice::model::{InvoiceContent, InvoiceKind, RedLetterReason};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{FormStatus, Initiator, RedLine};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::test_support::{blue_content, line, red_content, seller, start_time};
use super::{Sandbox, SandboxConfig, generate_credentials, serve};
use crate::clock::{Clock as _, ManualClock, SharedClock, china_day};
use crate::platform::client::HttpPlatform;
use crate::platform::{
    CallError, FormAnswer, FormRequest, IssuedInvoice, RemoteForm, RemoteState, TaxPlatform,
    UploadOutcome, UploadResult,
};

/// A sandbox served on a free local port, its manual clock, a client and an admin client.
struct Env {
    clock: Arc<ManualClock>,
    sandbox: Sandbox,
    base: String,
    client: HttpPlatform,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Env {
    async fn start(config: SandboxConfig) -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let shared: SharedClock = clock.clone();
        let sandbox = Sandbox::new(&config, shared.clone()).unwrap();
        let credentials = generate_credentials("JR-FORMS", "SY-FORMS").unwrap();
        sandbox.register(credentials.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, sandbox.clone(), async move {
            let _ = stopped.await;
        }));
        let client = HttpPlatform::new(&base, credentials, Duration::from_secs(5), "202007")
            .unwrap()
            .with_clock(shared);
        Self {
            clock,
            sandbox,
            base,
            client,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.admin(reqwest::Method::POST, path, body).await
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
        response.json().await.unwrap()
    }

    /// Uploads a blue invoice of the seller (recorded at once), used by the buyer as given.
    async fn blue(&self, kind: InvoiceKind, used: bool) -> (InvoiceNumber, InvoiceContent) {
        let range = self.client.reserve_numbers(&seller(), 1).await.unwrap();
        let content = blue_content(&format!("BLUE-{}", range.first), kind);
        self.upload(range.first, content.clone()).await;
        let (status, _) = self
            .admin(
                reqwest::Method::PUT,
                &format!("/admin/invoices/{}/usage", range.first),
                json!({"used_for_deduction": used, "booked": used}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        (range.first, content)
    }

    async fn upload(&self, number: InvoiceNumber, content: InvoiceContent) -> UploadOutcome {
        let invoice = IssuedInvoice {
            number,
            issued_at: self.clock.now(),
            content,
        };
        let receipt = self.client.upload(&seller(), &[invoice]).await.unwrap();
        match self
            .client
            .upload_result(&seller(), &receipt)
            .await
            .unwrap()
        {
            UploadResult::Done(mut items) => items.remove(0).outcome,
            other => panic!("expected a result, got {other:?}"),
        }
    }

    async fn file(
        &self,
        request_id: &str,
        blue: InvoiceNumber,
        lines: Vec<RedLine>,
    ) -> Result<RemoteForm, CallError> {
        let request = FormRequest {
            request_id: request_id.into(),
            blue_number: blue,
            reason: RedLetterReason::SalesReturn,
            lines,
        };
        self.client.file_red_letter_form(&seller(), &request).await
    }

    async fn query(&self, number: &str) -> RemoteForm {
        self.client
            .red_letter_form(&seller(), number)
            .await
            .unwrap()
            .unwrap()
    }
}

fn form_of(value: Value) -> RemoteForm {
    serde_json::from_value(value).unwrap()
}

fn refused_code(error: CallError) -> String {
    match error {
        CallError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn platform_forms_are_filed_queried_listed_and_answered_over_http() {
    let env = Env::start(SandboxConfig::default()).await;
    let (used, _) = env.blue(InvoiceKind::General, true).await;
    let (fresh, _) = env.blue(InvoiceKind::Special, false).await;

    let form = env
        .file("REQ-1", used, vec![line(1, "10.00", "0.60")])
        .await
        .unwrap();
    assert_eq!(form.status, FormStatus::AwaitingBuyer);
    assert_eq!(form.initiator, Initiator::Seller);
    assert_eq!(form.seller, seller());
    assert_eq!(form.request_id, "REQ-1");
    assert_eq!(form.created_at, start_time());
    assert_eq!(
        form.expires_at,
        Some(start_time() + chrono::Duration::hours(72))
    );
    let again = env
        .file("REQ-1", used, vec![line(1, "10.00", "0.60")])
        .await
        .unwrap();
    assert_eq!(again, form);
    assert_eq!(env.query(&form.number).await, form);
    assert_eq!(
        env.client
            .red_letter_form(&seller(), "26310000000000000000")
            .await
            .unwrap(),
        None
    );
    let direct = env
        .file("REQ-2", fresh, vec![line(2, "50", "3")])
        .await
        .unwrap();
    assert_eq!(direct.status, FormStatus::NoConfirmationNeeded);
    assert_eq!(direct.expires_at, None);

    // Refusals travel as codes.
    let pending = env.file("REQ-3", used, vec![line(2, "1", "0.06")]).await;
    assert_eq!(refused_code(pending.unwrap_err()), "HZQRXX_PENDING");
    let exceeding = env.file("REQ-4", fresh, vec![line(2, "0.01", "0")]).await;
    assert_eq!(refused_code(exceeding.unwrap_err()), "HZCXJE_EXCEEDED");
    let unknown_blue = env
        .file(
            "REQ-5",
            "26312000000999999999".parse().unwrap(),
            vec![line(1, "1", "0.06")],
        )
        .await;
    assert_eq!(refused_code(unknown_blue.unwrap_err()), "LZFP_NOT_FOUND");
    let conflict = env.file("REQ-1", used, vec![line(1, "9", "0.54")]).await;
    assert_eq!(refused_code(conflict.unwrap_err()), "YWLSH_CONFLICT");
    let answer = env
        .client
        .answer_red_letter_form(&seller(), "26310000000000000000", FormAnswer::Agree)
        .await;
    assert_eq!(refused_code(answer.unwrap_err()), "HZQRXX_NOT_FOUND");
    let answer = env
        .client
        .answer_red_letter_form(&seller(), &form.number, FormAnswer::Agree)
        .await;
    assert_eq!(refused_code(answer.unwrap_err()), "HZQRXXZT_INVALID");

    // The buyer confirms through the admin API; confirming again is a conflict naming the status.
    env.clock.advance(chrono::Duration::minutes(30));
    let (status, body) = env
        .post(&format!("/admin/forms/{}/confirm", form.number), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let confirmed = form_of(body);
    assert_eq!(confirmed.status, FormStatus::Confirmed);
    assert_eq!(env.query(&form.number).await, confirmed);
    let (status, body) = env
        .post(&format!("/admin/forms/{}/deny", form.number), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("04"), "{body}");
    let (status, _) = env
        .post("/admin/forms/26310000000000000000/confirm", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The seller files again, the buyer denies.
    let denied = env
        .file("REQ-6", used, vec![line(2, "5", "0.30")])
        .await
        .unwrap();
    let (status, body) = env
        .post(&format!("/admin/forms/{}/deny", denied.number), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(form_of(body).status, FormStatus::VoidBuyerDisagreed);

    // The buyer files what remains; the seller agrees, then revokes the unused confirmation.
    let (status, body) = env
        .post(
            "/admin/forms",
            json!({"seller": seller().to_string(), "blue_number": used.to_string(),
                   "reason": "04", "full": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let buyers = form_of(body);
    assert_eq!(buyers.status, FormStatus::AwaitingSeller);
    assert_eq!(buyers.initiator, Initiator::Buyer);
    assert_eq!(buyers.request_id, "");
    assert_eq!(
        buyers.lines,
        vec![line(1, "90", "5.40"), line(2, "50", "3")]
    );
    let (status, body) = env
        .post(
            "/admin/forms",
            json!({"seller": seller().to_string(), "blue_number": used.to_string(),
                   "reason": "04", "lines": [{"blue_line": 2, "amount": "1.00", "tax": "0.06", "quantity": null}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "HZQRXX_PENDING");
    let agreed = env
        .client
        .answer_red_letter_form(&seller(), &buyers.number, FormAnswer::Agree)
        .await
        .unwrap();
    assert_eq!(agreed.status, FormStatus::Confirmed);
    let revoked = env
        .client
        .answer_red_letter_form(&seller(), &buyers.number, FormAnswer::Withdraw)
        .await
        .unwrap();
    assert_eq!(revoked.status, FormStatus::VoidRevokedAfterConfirmation);

    // Listing by change: everything since the start, then only what changed after the filing.
    let page = env
        .client
        .list_red_letter_forms(&seller(), start_time(), 0, 100)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.next_page, None);
    assert!(
        page.items
            .windows(2)
            .all(|w| w[0].status_changed_at <= w[1].status_changed_at)
    );
    let first = env
        .client
        .list_red_letter_forms(&seller(), start_time(), 0, 3)
        .await
        .unwrap();
    assert_eq!(first.next_page, Some(1));
    let rest = env
        .client
        .list_red_letter_forms(&seller(), start_time(), 1, 3)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    let later = env
        .client
        .list_red_letter_forms(
            &seller(),
            start_time() + chrono::Duration::minutes(1),
            0,
            100,
        )
        .await
        .unwrap();
    let numbers: Vec<&str> = later.items.iter().map(|f| f.number.as_str()).collect();
    assert!(!numbers.contains(&direct.number.as_str()), "{numbers:?}");
    assert!(numbers.contains(&form.number.as_str()), "{numbers:?}");
    let too_big = env
        .client
        .list_red_letter_forms(&seller(), start_time(), 0, 0)
        .await;
    assert_eq!(refused_code(too_big.unwrap_err()), "REQUEST_INVALID");

    let listing = env.get(&format!("/admin/forms?seller={}", seller())).await;
    let all: Vec<RemoteForm> = serde_json::from_value(listing["forms"].clone()).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].number, buyers.number, "newest first");
    assert_eq!(all[3].number, form.number);
    let stats = env.sandbox.stats();
    assert_eq!(stats.forms.get("01"), Some(&1));
    assert_eq!(stats.forms.get("04"), Some(&1));
    assert_eq!(stats.forms.get("05"), Some(&1));
    assert_eq!(stats.forms.get("09"), Some(&1));
    assert_eq!(stats.requests.get("HZQRXXLR"), Some(&8));
}

#[tokio::test]
async fn platform_business_clock_expires_pending_forms_without_breaking_signatures() {
    let env = Env::start(SandboxConfig::default()).await;
    let clock = env.get("/admin/clock").await;
    assert_eq!(clock["now"], json!(start_time()));
    let (used, _) = env.blue(InvoiceKind::General, true).await;
    let form = env
        .file("REQ-1", used, vec![line(1, "10", "0.60")])
        .await
        .unwrap();
    let deadline = form.expires_at.unwrap();

    let (status, body) = env
        .post("/admin/clock", json!({"advance_seconds": 72 * 3600 - 1}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["now"], json!(deadline - chrono::Duration::seconds(1)));
    assert_eq!(
        env.query(&form.number).await.status,
        FormStatus::AwaitingBuyer
    );
    let (status, body) = env
        .post("/admin/clock", json!({"advance_seconds": 1}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["now"], json!(deadline));
    assert_eq!(env.get("/admin/clock").await, body);
    // The client still signs with the unshifted clock, and the platform accepts it.
    let expired = env.query(&form.number).await;
    assert_eq!(expired.status, FormStatus::VoidExpired);
    assert_eq!(expired.status_changed_at, deadline);
    let (status, body) = env
        .post(&format!("/admin/forms/{}/confirm", form.number), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("07"), "{body}");
    let (status, _) = env
        .post("/admin/clock", json!({"advance_seconds": -5}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // New forms are dated in business time.
    let next = env
        .file("REQ-2", used, vec![line(1, "10", "0.60")])
        .await
        .unwrap();
    assert_eq!(next.created_at, deadline);
    assert_eq!(env.sandbox.stats().forms.get("07"), Some(&1));
}

#[tokio::test]
async fn platform_red_uploads_need_their_form_and_the_platform_may_issue_them_itself() {
    let env = Env::start(SandboxConfig::default()).await;
    let (fresh, fresh_content) = env.blue(InvoiceKind::General, false).await;
    let direct = env
        .file("REQ-1", fresh, vec![line(1, "100", "6")])
        .await
        .unwrap();
    let red_number = env
        .client
        .reserve_numbers(&seller(), 1)
        .await
        .unwrap()
        .first;
    let red = red_content(
        &fresh_content,
        fresh,
        &direct.number,
        &direct.lines,
        "RED-1",
    );
    assert_eq!(
        env.upload(red_number, red.clone()).await,
        UploadOutcome::Recorded
    );
    assert_eq!(
        env.upload(red_number, red).await,
        UploadOutcome::Recorded,
        "idempotent"
    );
    assert_eq!(env.query(&direct.number).await.red_number, Some(red_number));

    let (used, used_content) = env.blue(InvoiceKind::Special, true).await;
    let pending = env
        .file("REQ-2", used, vec![line(2, "50", "3")])
        .await
        .unwrap();
    let number = env
        .client
        .reserve_numbers(&seller(), 1)
        .await
        .unwrap()
        .first;
    let red = red_content(
        &used_content,
        used,
        &pending.number,
        &pending.lines,
        "RED-2",
    );
    match env.upload(number, red).await {
        UploadOutcome::Rejected { code, message } => {
            assert_eq!(code, "HZQRXX_INVALID");
            assert!(message.contains("02"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    // With the fault on, the buyer's confirmation makes the platform issue the red invoice.
    let (status, _) = env
        .admin(
            reqwest::Method::PUT,
            "/admin/faults",
            json!({"self_issued_red_rate": "100%"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        env.sandbox.faults().self_issued_red_rate,
        super::FaultRate::ALWAYS
    );
    let (status, body) = env
        .post(
            &format!("/admin/forms/{}/confirm", pending.number),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let confirmed = form_of(body);
    assert_eq!(confirmed.status, FormStatus::Confirmed);
    let issued = confirmed
        .red_number
        .expect("the platform issued the red invoice");
    assert_eq!(env.query(&pending.number).await.red_number, Some(issued));
    let day = china_day(start_time());
    let listing = env
        .client
        .list_invoices(&seller(), day, 0, 100)
        .await
        .unwrap();
    let row = listing
        .items
        .iter()
        .find(|row| row.number == issued)
        .expect("listed like any recorded invoice");
    assert_eq!(row.request_id, "REQ-2");
    assert_eq!(row.amount, -pending.amount);
    let remote = env
        .client
        .query_invoice(&seller(), &issued)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        remote.content.red.as_ref().unwrap().form_number,
        pending.number
    );
    assert_eq!(
        row.content_sm3,
        crate::platform::protocol::platform_digest(&remote.content)
    );
    let blue = env
        .client
        .query_invoice(&seller(), &used)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(blue.state, RemoteState::PartiallyReversed);
    assert_eq!(env.sandbox.stats().faults.get("self_issued_red"), Some(&1));
    // The seller's own red invoice for that form is now refused.
    let red = red_content(
        &used_content,
        used,
        &pending.number,
        &pending.lines,
        "RED-3",
    );
    let number = env
        .client
        .reserve_numbers(&seller(), 1)
        .await
        .unwrap()
        .first;
    assert!(matches!(
        env.upload(number, red).await,
        UploadOutcome::Rejected { code, .. } if code == "HZQRXX_USED"
    ));
}

fn journaled(path: &Path) -> SandboxConfig {
    SandboxConfig {
        state_file: Some(path.to_owned()),
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn platform_forms_and_the_clock_offset_survive_a_restart_with_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox.jsonl");
    let (number, offset_now) = {
        let env = Env::start(journaled(&path)).await;
        let (used, _) = env.blue(InvoiceKind::General, true).await;
        let form = env
            .file("REQ-1", used, vec![line(1, "10", "0.60")])
            .await
            .unwrap();
        let (_, body) = env
            .post("/admin/clock", json!({"advance_seconds": 3600}))
            .await;
        (form.number, body["now"].clone())
    };
    let env = Env::start(journaled(&path)).await;
    assert_eq!(env.get("/admin/clock").await["now"], offset_now);
    let form = env.query(&number).await;
    assert_eq!(form.status, FormStatus::AwaitingBuyer);
    assert_eq!(form.request_id, "REQ-1");
    let (_, body) = env
        .post("/admin/clock", json!({"advance_seconds": 71 * 3600}))
        .await;
    assert_eq!(body["now"], json!(form.expires_at.unwrap()));
    assert_eq!(env.query(&number).await.status, FormStatus::VoidExpired);
}
