//! The world every cell of the table runs in: two configured sellers (A, the caller's, and B,
//! another one), a well-formed seller that is not configured (U), and for A and for B invoices,
//! archived files, pending red-letter forms, drifts, reconciliation runs and access records.
//! Everything of B is made by a caller of every seller; the callers under test see only A.

use fapiao_proto::v1;
use fapiao_services::auth::Role;
use fapiao_services::config::Config;
use fapiao_services::sellers::SellerProfile;
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::{TestApp, quick_config, sample, spawn_app_on, token};
use serde_json::json;
use std::collections::HashMap;

/// The caller's seller (the demo seller).
pub const A: &str = sample::DEMO_SELLER;
/// Another configured seller.
pub const B: &str = "91350100M000100Y43";
/// A well-formed tax id this deployment does not have.
pub const U: &str = "91110302MA01NP925M";
/// A number no invoice has.
pub const NO_INVOICE: &str = "26310000000099999999";
/// A number no form has.
pub const NO_FORM: &str = "99999999999999999999";

/// Tokens: a caller of every seller with every role, and one caller per role limited to A (and
/// an operator limited to B, to check what A's operator starts).
pub const ADMIN: &str = "scope-admin-token-0001";
pub const ISSUER_A: &str = "scope-issuer-a-token-01";
pub const AUDITOR_A: &str = "scope-auditor-a-token-1";
pub const OPERATOR_A: &str = "scope-operator-a-token1";
pub const OPERATOR_B: &str = "scope-operator-b-token1";

/// The running server and what was made in it.
pub struct World {
    pub app: TestApp,
    /// Seller of every invoice made, by number.
    pub sellers_of: HashMap<String, String>,
    pub a_invoice: String,
    pub b_invoice: String,
    /// Pending forms: one of A to read, one of A to withdraw, one of B.
    pub a_form: String,
    pub a_form_to_withdraw: String,
    pub b_form: String,
    /// Open drifts: one of A to resolve (another stays open to be listed), one of B.
    pub a_drift_to_resolve: String,
    pub b_drift: String,
    /// Runs over A only, over B only, and over every seller.
    pub a_run: String,
    pub b_run: String,
    pub all_run: String,
}

fn config() -> Config {
    let mut config = quick_config();
    config.sellers = vec![
        SellerProfile::demo(),
        SellerProfile {
            tax_id: B.into(),
            name: "福州另一家科技有限公司".into(),
            ..SellerProfile::demo()
        },
    ];
    let all = vec![Role::Issuer, Role::Auditor, Role::Operator];
    config.tokens = vec![
        token("admin", ADMIN, all, &["*"]),
        token("issuer-a", ISSUER_A, vec![Role::Issuer], &[A]),
        token("auditor-a", AUDITOR_A, vec![Role::Auditor], &[A]),
        token("operator-a", OPERATOR_A, vec![Role::Operator], &[A]),
        token("operator-b", OPERATOR_B, vec![Role::Operator], &[B]),
    ];
    config
}

/// The sample invoice for `seller`.
pub fn invoice_of(seller: &str, request_id: &str) -> v1::InvoiceInput {
    v1::InvoiceInput {
        seller_tax_id: seller.into(),
        ..sample::input(request_id, "100.00")
    }
}

async fn issue(app: &TestApp, seller: &str, request_id: &str) -> String {
    app.issuance_as(ADMIN)
        .issue_invoice(v1::IssueInvoiceRequest {
            invoice: Some(invoice_of(seller, request_id)),
            ..Default::default()
        })
        .await
        .expect("the admin issues")
        .into_inner()
        .invoice
        .expect("an invoice")
        .invoice_number
}

/// A red-letter request of `seller` reversing `blue` in full.
pub fn reversal(seller: &str, request_id: &str, blue: &str) -> v1::RedLetterInput {
    v1::RedLetterInput {
        seller_tax_id: seller.into(),
        request_id: request_id.into(),
        blue_invoice_number: blue.into(),
        reason: v1::RedLetterReason::SalesReturn.into(),
        drawer: "张三".into(),
        scope: Some(v1::red_letter_input::Scope::Full(v1::FullReversal {})),
        ..Default::default()
    }
}

/// File a form for `blue` that waits for the buyer (the buyer has booked the invoice).
async fn pending_form(app: &TestApp, seller: &str, request_id: &str, blue: &str) -> String {
    app.sandbox_call(
        reqwest::Method::PUT,
        &format!("invoices/{blue}/usage"),
        Some(json!({"used_for_deduction": true, "booked": true})),
    )
    .await;
    let form = app
        .issuance_as(ADMIN)
        .request_red_letter(v1::RequestRedLetterRequest {
            red_letter: Some(reversal(seller, request_id, blue)),
        })
        .await
        .expect("the admin files a form")
        .into_inner()
        .form
        .expect("a form");
    assert_eq!(
        form.status(),
        v1::RedLetterFormStatus::AwaitingBuyer,
        "{form:?}"
    );
    form.form_number
}

/// Wait (at most 30 s) until `number` is recorded and its three files are archived.
async fn settled(app: &TestApp, number: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let invoice = app
            .issuance_as(ADMIN)
            .get_invoice(v1::GetInvoiceRequest {
                key: Some(v1::get_invoice_request::Key::InvoiceNumber(number.into())),
                ..Default::default()
            })
            .await
            .expect("the admin reads")
            .into_inner()
            .invoice
            .expect("an invoice");
        if invoice.state() == v1::InvoiceState::Recorded && invoice.files.len() == 3 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{number} did not settle"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn plant_drift(pool: &sqlx::AnyPool, seller: &str, number: &str, class: &str) -> String {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO drifts (invoice_number, seller_tax_id, issued_at, class, urgency, detail, \
         repair, outcome, first_run_id, last_run_id, first_seen_at, last_seen_at, status) \
         VALUES ($1, $2, 0, $3, 'warning', 'planted', '{}', '{}', 0, 0, 0, 0, 'open') \
         RETURNING id",
    )
    .bind(number.to_owned())
    .bind(seller.to_owned())
    .bind(class.to_owned())
    .fetch_one(pool)
    .await
    .expect("planting a drift");
    id.to_string()
}

async fn run_over(app: &TestApp, sellers: &[&str]) -> String {
    let now = chrono::Utc::now();
    let stamp = |at: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    };
    app.ops_as(ADMIN)
        .trigger_reconciliation(v1::TriggerReconciliationRequest {
            window: Some(v1::TimeRange {
                from: Some(stamp(now - chrono::TimeDelta::hours(1))),
                to: Some(stamp(now)),
            }),
            seller_tax_ids: sellers.iter().map(|s| (*s).to_owned()).collect(),
            reason: "the scope table".into(),
        })
        .await
        .expect("the admin starts a pass")
        .into_inner()
        .run
        .expect("a run")
        .run_id
}

impl World {
    pub async fn build(db: TestDatabase) -> World {
        let url = db.url.clone();
        let app = spawn_app_on(db, config()).await.expect("the server starts");
        let mut sellers_of = HashMap::new();
        let mut made = Vec::new();
        for (seller, request_id) in [(A, "a-1"), (A, "a-2"), (A, "a-3"), (B, "b-1"), (B, "b-2")] {
            let number = issue(&app, seller, request_id).await;
            sellers_of.insert(number.clone(), seller.to_owned());
            made.push(number);
        }
        for number in &made {
            // Recorded by the platform and archived, so every read has something to read.
            settled(&app, number).await;
        }
        let (a_invoice, b_invoice) = (made[0].clone(), made[3].clone());
        let a_form = pending_form(&app, A, "red-a-1", &made[1]).await;
        let a_form_to_withdraw = pending_form(&app, A, "red-a-2", &made[2]).await;
        let b_form = pending_form(&app, B, "red-b-1", &made[4]).await;

        let pool = db::raw_pool(&url).await;
        plant_drift(&pool, A, &made[1], "stuck").await;
        let a_drift_to_resolve = plant_drift(&pool, A, &made[2], "stuck").await;
        let b_drift = plant_drift(&pool, B, &made[4], "stuck").await;

        let a_run = run_over(&app, &[A]).await;
        let b_run = run_over(&app, &[B]).await;
        let all_run = run_over(&app, &[]).await;

        // The admin reads B's evidence: trail entries about B, one naming the invoice, one the
        // seller only.
        let mut audit = app.audit_as(ADMIN);
        let mut file = audit
            .get_archived_file(v1::GetArchivedFileRequest {
                invoice_number: b_invoice.clone(),
                format: v1::FileFormat::Xml.into(),
                purpose: "b-secret".into(),
            })
            .await
            .expect("the admin reads B's file")
            .into_inner();
        while file.message().await.expect("the file streams").is_some() {}
        audit
            .search_invoices(v1::SearchInvoicesRequest {
                seller_tax_id: B.into(),
                ..Default::default()
            })
            .await
            .expect("the admin searches B");
        World {
            app,
            sellers_of,
            a_invoice,
            b_invoice,
            a_form,
            a_form_to_withdraw,
            b_form,
            a_drift_to_resolve,
            b_drift,
            a_run,
            b_run,
            all_run,
        }
    }

    /// The seller of invoice `number` as this world knows it ("?" for one it did not make).
    pub fn seller_of(&self, number: &str) -> String {
        self.sellers_of
            .get(number)
            .cloned()
            .unwrap_or_else(|| "?".into())
    }

    /// Whose a run is: the sellers it was started for, `*` for every seller.
    pub fn run_owner(&self, run_id: &str) -> String {
        if run_id == self.a_run {
            A.into()
        } else if run_id == self.b_run {
            B.into()
        } else if run_id == self.all_run {
            "*".into()
        } else {
            // Runs the cells started; the trigger cells checked they concern A only.
            A.into()
        }
    }
}
