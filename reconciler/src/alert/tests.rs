//! Behaviour of `alert`.

use super::*;
use crate::slo::{Objective, Outcomes, SloSettings, default_rules, evaluate};
use chrono::TimeZone;

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, hour, minute, 0).unwrap()
}

fn seller_alert(seller: &str) -> Alert {
    let mut labels = BTreeMap::new();
    labels.insert("seller".to_owned(), seller.to_owned());
    Alert {
        name: ERROR_BUDGET_BURN.to_owned(),
        severity: Severity::Page,
        labels,
        summary: "burning".to_owned(),
        description: "fast".to_owned(),
        runbook: None,
    }
}

fn kinds(notifications: &[Notification]) -> Vec<&'static str> {
    notifications.iter().map(|n| n.kind.as_str()).collect()
}

#[test]
fn an_alert_fires_once_repeats_after_the_interval_and_resolves() {
    let mut book = AlertBook::new(Duration::hours(1));
    let alert = seller_alert("91310000MA1K3YJ12X");

    let fired = book.step(at(10, 0), vec![alert.clone()]);
    assert_eq!(kinds(&fired), ["fired"]);
    assert_eq!(fired[0].starts_at, at(10, 0));
    assert!(
        book.step(at(10, 0), vec![alert.clone()]).is_empty(),
        "same pass twice"
    );
    assert!(
        book.step(at(10, 59), vec![alert.clone()]).is_empty(),
        "before the interval"
    );

    let repeated = book.step(at(11, 0), vec![alert.clone()]);
    assert_eq!(kinds(&repeated), ["repeated"]);
    assert_eq!(repeated[0].starts_at, at(10, 0), "keeps the original start");
    assert!(
        book.step(at(11, 30), vec![alert.clone()]).is_empty(),
        "interval counts from the repeat"
    );

    let resolved = book.step(at(11, 45), vec![]);
    assert_eq!(kinds(&resolved), ["resolved"]);
    assert_eq!(
        resolved[0].kind,
        NotificationKind::Resolved {
            ends_at: at(11, 45)
        }
    );
    assert_eq!(resolved[0].starts_at, at(10, 0));
    assert_eq!(book.active().count(), 0);
    assert!(book.step(at(12, 0), vec![]).is_empty(), "resolves once");
    assert_eq!(
        kinds(&book.step(at(12, 0), vec![alert])),
        ["fired"],
        "fires anew"
    );
}

#[test]
fn repeated_alerts_carry_the_latest_text() {
    let mut book = AlertBook::new(Duration::minutes(30));
    book.step(at(10, 0), vec![seller_alert("A")]);
    let mut newer = seller_alert("A");
    newer.description = "faster".to_owned();
    let repeated = book.step(at(10, 30), vec![newer.clone()]);
    assert_eq!(repeated[0].alert, newer);
}

#[test]
fn identity_is_the_name_and_labels() {
    let (a, b) = (seller_alert("A"), seller_alert("B"));
    assert_ne!(a.key(), b.key());
    let mut reworded = a.clone();
    reworded.summary = "other words".to_owned();
    assert_eq!(a.key(), reworded.key(), "text is not identity");
    let mut quoted = seller_alert("A\",\"x\"=\"y");
    assert_ne!(quoted.key(), a.key());
    quoted.labels = BTreeMap::from([("seller".to_owned(), "A".to_owned())]);
    assert_eq!(quoted.key(), a.key());
    assert_eq!(
        a.key(),
        r#""FapiaoErrorBudgetBurn"{"alertname"="FapiaoErrorBudgetBurn","seller"="A","severity"="page"}"#
    );

    let mut book = AlertBook::new(Duration::hours(1));
    let fired = book.step(at(10, 0), vec![a.clone(), b, reworded]);
    assert_eq!(kinds(&fired), ["fired", "fired"], "same key counts once");
    let resolved = book.step(at(10, 5), vec![a]);
    assert_eq!(kinds(&resolved), ["resolved"]);
    assert_eq!(resolved[0].alert.labels["seller"], "B");
}

#[test]
fn the_book_round_trips_through_json() {
    let mut book = AlertBook::new(Duration::minutes(90));
    book.step(
        at(10, 0),
        vec![seller_alert("A"), open_critical_drifts(2).unwrap()],
    );
    let text = serde_json::to_string(&book).unwrap();
    let mut restored: AlertBook = serde_json::from_str(&text).unwrap();
    assert_eq!(restored, book);
    assert_eq!(restored.repeat_every(), Duration::minutes(90));
    assert!(
        restored
            .step(
                at(10, 0),
                vec![seller_alert("A"), open_critical_drifts(2).unwrap()]
            )
            .is_empty()
    );
    assert_eq!(
        kinds(&restored.step(at(11, 0), vec![seller_alert("A")])),
        ["resolved"]
    );
}

fn one_firing_one_resolved() -> Vec<Notification> {
    let mut book = AlertBook::new(Duration::hours(1));
    book.step(at(9, 0), vec![open_critical_drifts(3).unwrap()]);
    let firing = seller_alert("A").with_runbook("https://runbooks.example/slo");
    book.step(at(10, 0), vec![firing])
}

#[test]
fn webhook_payload_has_the_generic_shape() {
    let payload = webhook_payload(&one_firing_one_resolved());
    let expected = json!({
        "version": "1",
        "notifications": [
            {
                "status": "firing",
                "kind": "fired",
                "name": "FapiaoErrorBudgetBurn",
                "severity": "page",
                "labels": { "seller": "A" },
                "summary": "burning",
                "description": "fast",
                "runbook": "https://runbooks.example/slo",
                "starts_at": "2025-03-01T10:00:00Z",
                "ends_at": null,
            },
            {
                "status": "resolved",
                "kind": "resolved",
                "name": "FapiaoOpenCriticalDrifts",
                "severity": "critical",
                "labels": {},
                "summary": "invoices disagree with the tax platform and need repair",
                "description": "3 critical drift(s) are open",
                "runbook": null,
                "starts_at": "2025-03-01T09:00:00Z",
                "ends_at": "2025-03-01T10:00:00Z",
            },
        ],
    });
    assert_eq!(payload, expected);
}

#[test]
fn alertmanager_payload_is_a_list_of_postable_alerts() {
    let payload = alertmanager_payload(
        &one_firing_one_resolved(),
        at(10, 0),
        "https://fapiao.example/reconciler",
        Duration::hours(3),
    );
    let expected = json!([
        {
            "labels": { "alertname": "FapiaoErrorBudgetBurn", "severity": "page", "seller": "A" },
            "annotations": {
                "summary": "burning",
                "description": "fast",
                "runbook_url": "https://runbooks.example/slo",
            },
            "startsAt": "2025-03-01T10:00:00Z",
            "endsAt": "2025-03-01T13:00:00Z",
            "generatorURL": "https://fapiao.example/reconciler",
        },
        {
            "labels": { "alertname": "FapiaoOpenCriticalDrifts", "severity": "critical" },
            "annotations": {
                "summary": "invoices disagree with the tax platform and need repair",
                "description": "3 critical drift(s) are open",
            },
            "startsAt": "2025-03-01T09:00:00Z",
            "endsAt": "2025-03-01T10:00:00Z",
            "generatorURL": "https://fapiao.example/reconciler",
        },
    ]);
    assert_eq!(payload, expected);
    let bare = alertmanager_payload(&one_firing_one_resolved(), at(10, 0), "", Duration::MAX);
    assert!(bare[0].get("generatorURL").is_none());
    assert!(
        bare[0].get("endsAt").is_none(),
        "an unrepresentable horizon is left out"
    );
}

#[test]
fn staleness_without_a_pass_counts_from_the_start() {
    let max_age = Duration::minutes(30);
    assert_eq!(stale_reconciler(None, at(10, 0), at(10, 30), max_age), None);
    let stale = stale_reconciler(None, at(10, 0), at(10, 31), max_age).unwrap();
    assert_eq!(stale.name, RECONCILER_STALE);
    assert_eq!(stale.severity, Severity::Ticket);
    assert!(
        stale
            .description
            .contains("since the service started at 2025-03-01T10:00:00Z (31m ago)"),
        "{}",
        stale.description
    );
}

#[test]
fn staleness_counts_from_the_last_finished_pass() {
    let max_age = Duration::minutes(30);
    assert_eq!(
        stale_reconciler(Some(at(11, 0)), at(9, 0), at(11, 20), max_age),
        None
    );
    let stale = stale_reconciler(Some(at(9, 0)), at(11, 0), at(11, 5), max_age).unwrap();
    assert!(
        stale
            .description
            .contains("finished at 2025-03-01T09:00:00Z (125m ago)"),
        "{}",
        stale.description
    );
}

#[test]
fn open_critical_drifts_fire_only_when_some_are_open() {
    assert_eq!(open_critical_drifts(0), None);
    let alert = open_critical_drifts(7).unwrap();
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(
        alert.key(),
        open_critical_drifts(1).unwrap().key(),
        "the count is not identity"
    );
}

#[test]
fn breaches_become_alerts_labelled_by_scope_and_rule() {
    let breaches = evaluate(
        &Objective::default(),
        &default_rules(),
        &SloSettings::default(),
        &Scope::Seller("91310000MA1K3YJ12X".to_owned()),
        |_| Outcomes {
            recorded: 9_800,
            rejected: 150,
            failed_attempts: 50,
        },
    );
    let alerts: Vec<Alert> = breaches.iter().map(from_breach).collect();
    let page = &alerts[0];
    assert_eq!(page.name, ERROR_BUDGET_BURN);
    assert_eq!(page.severity, Severity::Page);
    let label_set = page.label_set();
    let labels: Vec<(&str, &str)> = label_set
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("alertname", "FapiaoErrorBudgetBurn"),
            ("rule", "page-1h"),
            ("scope", "seller"),
            ("seller", "91310000MA1K3YJ12X"),
            ("severity", "page"),
        ]
    );
    assert_eq!(
        page.summary,
        "seller 91310000MA1K3YJ12X: issuance error budget burning at 20× over 1h"
    );
    assert!(
        page.description.starts_with(
            "over the last 1h, 98% of 10000 issuance attempts succeeded (objective 99.9%)"
        ),
        "{}",
        page.description
    );
    let below = alerts.last().unwrap();
    assert_eq!(below.name, SUCCESS_BELOW_OBJECTIVE);
    assert_eq!(below.severity, Severity::Warning);
    assert_eq!(below.labels["rule"], "below-objective");
    let keys: std::collections::BTreeSet<String> = alerts.iter().map(Alert::key).collect();
    assert_eq!(keys.len(), alerts.len(), "every rule is its own alert");
}
