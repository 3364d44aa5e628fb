//! Behaviour of `diff`.

use super::*;
use proptest::prelude::*;
use std::str::FromStr;

const SELLER: &str = "91440300MA5EXAMPLE";

fn number(sequence: u64) -> InvoiceNumber {
    InvoiceNumber::new(25, 44, 2, sequence).unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

fn ago(minutes: i64) -> DateTime<Utc> {
    now() - TimeDelta::minutes(minutes)
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// An invoice issued and last changed `minutes` ago.
fn local(sequence: u64, state: LocalState, minutes: i64) -> LocalInvoice {
    LocalInvoice {
        number: number(sequence),
        seller: SELLER.to_owned(),
        request_id: format!("req-{sequence}"),
        issued_at: ago(minutes),
        colour: Colour::Blue,
        state,
        state_since: ago(minutes),
        buyer_name: "深圳市某某科技有限公司".to_owned(),
        buyer_tax_id: Some("91440300MA5BUYER01".to_owned()),
        amount: dec("100.00"),
        tax: dec("13.00"),
        content_sm3: format!("{sequence:064x}"),
        reconcile_attempts: 0,
    }
}

/// The platform's row for the same invoice.
fn twin(here: &LocalInvoice, state: PlatformState) -> PlatformInvoice {
    PlatformInvoice {
        number: here.number,
        seller: here.seller.clone(),
        request_id: here.request_id.clone(),
        issued_at: here.issued_at,
        colour: here.colour,
        state,
        buyer_name: here.buyer_name.clone(),
        buyer_tax_id: here.buyer_tax_id.clone(),
        amount: here.amount,
        tax: here.tax,
        content_sm3: here.content_sm3.clone(),
    }
}

fn nobody_known(_: &str, _: &str) -> bool {
    false
}

fn run(local: &[LocalInvoice], remote: &[PlatformInvoice]) -> Comparison {
    compare(local, remote, &nobody_known, &Settings::default(), now())
}

/// The single drift of a one-invoice comparison.
fn only_drift(local: &[LocalInvoice], remote: &[PlatformInvoice]) -> Drift {
    let result = run(local, remote);
    assert_eq!(result.in_agreement, 0, "{result:?}");
    assert_eq!(result.drifts.len(), 1, "{result:?}");
    result.drifts.into_iter().next().unwrap()
}

fn assert_agrees(local: &[LocalInvoice], remote: &[PlatformInvoice]) {
    let result = run(local, remote);
    assert_eq!(result.drifts, vec![]);
    assert_eq!(result.in_agreement, 1);
}

const CRITICAL: Repair = Repair::Alert {
    severity: Urgency::Critical,
};
const WARNING: Repair = Repair::Alert {
    severity: Urgency::Warning,
};

#[test]
fn recorded_locally_but_absent_on_platform_is_missing_and_reuploaded() {
    for state in [
        LocalState::Recorded,
        LocalState::PartiallyReversed,
        LocalState::FullyReversed,
    ] {
        let drift = only_drift(&[local(1, state, 60)], &[]);
        assert_eq!(drift.class, DriftClass::MissingOnPlatform);
        assert_eq!(drift.repair, Repair::Reupload);
        assert_eq!(drift.local_state, Some(state));
        assert_eq!(drift.platform_state, None);
        assert_eq!(drift.seller, SELLER);
        assert!(drift.detail.starts_with("issued locally but not recorded"));
    }
}

#[test]
fn missing_on_platform_alerts_critical_once_reuploads_are_exhausted() {
    let mut here = local(1, LocalState::Recorded, 60);
    here.reconcile_attempts = 2;
    assert_eq!(
        only_drift(std::slice::from_ref(&here), &[]).repair,
        Repair::Reupload
    );
    here.reconcile_attempts = 3;
    let drift = only_drift(&[here], &[]);
    assert_eq!(drift.class, DriftClass::MissingOnPlatform);
    assert_eq!(drift.repair, CRITICAL);
    assert!(
        drift.detail.contains("after 3 re-uploads"),
        "{}",
        drift.detail
    );
}

#[test]
fn issued_at_least_grace_ago_and_absent_on_platform_is_missing() {
    for minutes in [2, 600] {
        let drift = only_drift(&[local(1, LocalState::Issued, minutes)], &[]);
        assert_eq!(drift.class, DriftClass::MissingOnPlatform);
        assert_eq!(drift.repair, Repair::Reupload);
    }
    let mut here = local(1, LocalState::Issued, 600);
    here.reconcile_attempts = 5;
    assert_eq!(only_drift(&[here], &[]).repair, CRITICAL);
}

#[test]
fn issued_within_grace_and_absent_on_platform_is_in_flight() {
    let mut here = local(1, LocalState::Issued, 0);
    here.issued_at = now() - TimeDelta::seconds(119);
    here.state_since = here.issued_at;
    assert_agrees(&[here], &[]);
}

#[test]
fn uploading_past_stuck_after_is_stuck_and_queried_then_reuploaded() {
    let drift = only_drift(&[local(1, LocalState::Uploading, 15)], &[]);
    assert_eq!(drift.class, DriftClass::Stuck);
    assert_eq!(drift.repair, Repair::QueryThenReupload);
    assert_eq!(
        drift.detail,
        "uploading here for 15 min, absent on the platform"
    );
}

#[test]
fn stuck_alerts_critical_once_reuploads_are_exhausted() {
    let mut here = local(1, LocalState::Uploading, 180);
    here.reconcile_attempts = 3;
    let drift = only_drift(&[here], &[]);
    assert_eq!(drift.class, DriftClass::Stuck);
    assert_eq!(drift.repair, CRITICAL);
    assert!(
        drift.detail.starts_with("uploading here for 3 h"),
        "{}",
        drift.detail
    );
}

#[test]
fn uploading_younger_than_stuck_after_is_not_drift() {
    let mut here = local(1, LocalState::Uploading, 60);
    here.state_since = ago(14);
    assert_agrees(&[here], &[]);
}

#[test]
fn rejected_and_absent_on_platform_agrees() {
    assert_agrees(&[local(1, LocalState::Rejected, 600)], &[]);
}

#[test]
fn each_differing_content_field_is_a_critical_content_mismatch() {
    let here = local(1, LocalState::Recorded, 600);
    type Change = fn(&mut PlatformInvoice);
    let changes: [(&str, Change); 7] = [
        ("seller", |p| p.seller = "91110000OTHER00000".to_owned()),
        ("colour", |p| p.colour = Colour::Red),
        ("amount", |p| p.amount = dec("90.00")),
        ("tax", |p| p.tax = dec("11.70")),
        ("buyer name", |p| p.buyer_name = "别的公司".to_owned()),
        ("buyer tax id", |p| p.buyer_tax_id = None),
        ("content digest", |p| p.content_sm3 = "ff".repeat(32)),
    ];
    for (field, change) in changes {
        let mut there = twin(&here, PlatformState::Normal);
        change(&mut there);
        let drift = only_drift(std::slice::from_ref(&here), &[there]);
        assert_eq!(drift.class, DriftClass::ContentMismatch, "{field}");
        assert_eq!(drift.repair, CRITICAL, "{field}");
        assert_eq!(drift.platform_state, Some(PlatformState::Normal));
        assert!(drift.detail.starts_with(field), "{field}: {}", drift.detail);
    }
}

#[test]
fn content_mismatch_detail_lists_every_differing_field() {
    let here = local(1, LocalState::Recorded, 600);
    let mut there = twin(&here, PlatformState::Normal);
    there.amount = dec("90.00");
    there.buyer_tax_id = Some("91440300MA5OTHER9".to_owned());
    let drift = only_drift(&[here], &[there]);
    assert_eq!(
        drift.detail,
        "amount 100.00 here, 90.00 on the platform; \
         buyer tax id 91440300MA5BUYER01 here, 91440300MA5OTHER9 on the platform"
    );
}

#[test]
fn content_comparison_ignores_whitespace_case_scale_and_empty_tax_ids() {
    let mut here = local(1, LocalState::Recorded, 600);
    let mut there = twin(&here, PlatformState::Normal);
    there.buyer_name = format!("  {}\u{3000}", here.buyer_name);
    there.buyer_tax_id = Some(" 91440300ma5buyer01 ".to_owned());
    there.content_sm3 = here.content_sm3.to_uppercase();
    there.amount = dec("100.0");
    assert_agrees(std::slice::from_ref(&here), std::slice::from_ref(&there));

    here.buyer_tax_id = Some("   ".to_owned());
    there.buyer_tax_id = None;
    assert_agrees(&[here], &[there]);
}

#[test]
fn content_mismatch_is_reported_even_within_grace_and_over_a_status_mismatch() {
    let here = local(1, LocalState::Uploading, 0);
    let mut there = twin(&here, PlatformState::FullyReversed);
    there.tax = dec("0");
    let drift = only_drift(&[here], &[there]);
    assert_eq!(drift.class, DriftClass::ContentMismatch);
    assert_eq!(drift.repair, CRITICAL);
}

#[test]
fn not_recorded_locally_but_normal_on_platform_adopts_recorded() {
    for state in [
        LocalState::Issued,
        LocalState::Uploading,
        LocalState::Rejected,
    ] {
        let here = local(1, state, 30);
        let drift = only_drift(
            std::slice::from_ref(&here),
            &[twin(&here, PlatformState::Normal)],
        );
        assert_eq!(drift.class, DriftClass::StatusMismatch);
        assert_eq!(drift.repair, Repair::AdoptState(LocalState::Recorded));
        assert_eq!(drift.local_state, Some(state));
        assert_eq!(drift.platform_state, Some(PlatformState::Normal));
    }
}

#[test]
fn status_mismatch_within_grace_of_the_state_change_is_in_flight() {
    let mut here = local(1, LocalState::Uploading, 600);
    here.state_since = ago(1);
    assert_agrees(
        std::slice::from_ref(&here),
        &[twin(&here, PlatformState::Normal)],
    );
    here.state = LocalState::FullyReversed;
    assert_agrees(
        std::slice::from_ref(&here),
        &[twin(&here, PlatformState::Normal)],
    );
}

#[test]
fn recorded_locally_but_reversed_on_platform_adopts_the_platform_state() {
    for (state, adopted) in [
        (
            PlatformState::PartiallyReversed,
            LocalState::PartiallyReversed,
        ),
        (PlatformState::FullyReversed, LocalState::FullyReversed),
    ] {
        let here = local(1, LocalState::Recorded, 60);
        let drift = only_drift(std::slice::from_ref(&here), &[twin(&here, state)]);
        assert_eq!(drift.class, DriftClass::StatusMismatch);
        assert_eq!(drift.repair, Repair::AdoptState(adopted));
    }
    let here = local(1, LocalState::Recorded, 60);
    let drift = only_drift(
        std::slice::from_ref(&here),
        &[twin(&here, PlatformState::FullyReversed)],
    );
    assert_eq!(
        drift.detail,
        "recorded here, fully reversed on the platform"
    );
}

#[test]
fn partially_reversed_locally_fully_reversed_on_platform_adopts_fully_reversed() {
    let here = local(1, LocalState::PartiallyReversed, 60);
    let drift = only_drift(
        std::slice::from_ref(&here),
        &[twin(&here, PlatformState::FullyReversed)],
    );
    assert_eq!(drift.class, DriftClass::StatusMismatch);
    assert_eq!(drift.repair, Repair::AdoptState(LocalState::FullyReversed));
}

#[test]
fn local_further_along_than_the_platform_alerts_a_warning() {
    for (ours, theirs) in [
        (LocalState::FullyReversed, PlatformState::Normal),
        (LocalState::PartiallyReversed, PlatformState::Normal),
        (LocalState::FullyReversed, PlatformState::PartiallyReversed),
    ] {
        let here = local(1, ours, 60);
        let drift = only_drift(std::slice::from_ref(&here), &[twin(&here, theirs)]);
        assert_eq!(drift.class, DriftClass::StatusMismatch);
        assert_eq!(drift.repair, WARNING);
    }
}

#[test]
fn equal_states_agree() {
    for (ours, theirs) in [
        (LocalState::Recorded, PlatformState::Normal),
        (
            LocalState::PartiallyReversed,
            PlatformState::PartiallyReversed,
        ),
        (LocalState::FullyReversed, PlatformState::FullyReversed),
    ] {
        let here = local(1, ours, 600);
        assert_agrees(std::slice::from_ref(&here), &[twin(&here, theirs)]);
    }
}

#[test]
fn remote_only_with_a_known_request_is_adopted() {
    let there = twin(&local(7, LocalState::Recorded, 60), PlatformState::Normal);
    let known = |seller: &str, request: &str| seller == SELLER && request == "req-7";
    let result = compare(&[], &[there], &known, &Settings::default(), now());
    assert_eq!(result.in_agreement, 0);
    let drift = &result.drifts[0];
    assert_eq!(drift.class, DriftClass::RemoteOnly);
    assert_eq!(drift.repair, Repair::AdoptRemote);
    assert_eq!(drift.local_state, None);
    assert_eq!(drift.platform_state, Some(PlatformState::Normal));
}

#[test]
fn remote_only_with_an_unknown_request_alerts_critical() {
    let there = twin(&local(7, LocalState::Recorded, 60), PlatformState::Normal);
    let drift = only_drift(&[], &[there]);
    assert_eq!(drift.class, DriftClass::RemoteOnly);
    assert_eq!(drift.repair, CRITICAL);
    assert!(drift.detail.contains("not one we know"), "{}", drift.detail);
}

#[test]
fn remote_only_issued_within_grace_is_in_flight() {
    let there = twin(&local(7, LocalState::Recorded, 1), PlatformState::Normal);
    assert_agrees(&[], &[there]);
}

#[test]
fn known_requests_can_be_a_set_of_pairs() {
    let there = twin(&local(7, LocalState::Recorded, 60), PlatformState::Normal);
    let mut known = HashSet::new();
    known.insert((SELLER.to_owned(), "req-7".to_owned()));
    let result = compare(
        &[],
        std::slice::from_ref(&there),
        &known,
        &Settings::default(),
        now(),
    );
    assert_eq!(result.drifts[0].repair, Repair::AdoptRemote);
    known.clear();
    let dynamic: &dyn KnownRequests = &known;
    let result = compare(&[], &[there], dynamic, &Settings::default(), now());
    assert_eq!(result.drifts[0].repair, CRITICAL);
}

#[test]
fn drifts_are_ordered_by_number_whatever_the_input_order() {
    let locals: Vec<_> = (0..50)
        .rev()
        .map(|n| local(n, LocalState::Recorded, 60))
        .collect();
    let result = run(&locals, &[]);
    let numbers: Vec<_> = result.drifts.iter().map(|d| d.number).collect();
    let expected: Vec<_> = (0..50).map(number).collect();
    assert_eq!(numbers, expected);
}

#[test]
fn a_repeated_number_counts_once_and_the_later_entry_wins() {
    let first = local(1, LocalState::Uploading, 60);
    let later = local(1, LocalState::Recorded, 60);
    let there = twin(&later, PlatformState::Normal);
    assert_agrees(&[first.clone(), later], &[there.clone(), there.clone()]);
    let drift = only_drift(&[first], &[there]);
    assert_eq!(drift.class, DriftClass::StatusMismatch);

    let missing = local(2, LocalState::Recorded, 600);
    let rejected = local(2, LocalState::Rejected, 600);
    assert_agrees(&[missing.clone(), rejected.clone()], &[]);
    let drift = only_drift(&[rejected, missing], &[]);
    assert_eq!(drift.class, DriftClass::MissingOnPlatform);
}

#[test]
fn codes_are_stable_snake_case_and_survive_serde() {
    assert_eq!(
        DriftClass::MissingOnPlatform.as_str(),
        "missing_on_platform"
    );
    assert_eq!(DriftClass::ContentMismatch.as_str(), "content_mismatch");
    for class in [
        DriftClass::MissingOnPlatform,
        DriftClass::Stuck,
        DriftClass::StatusMismatch,
        DriftClass::RemoteOnly,
        DriftClass::ContentMismatch,
    ] {
        let json = serde_json::to_string(&class).unwrap();
        assert_eq!(json, format!("\"{}\"", class.as_str()));
    }
    let drift = only_drift(&[local(1, LocalState::PartiallyReversed, 60)], &[]);
    let json = serde_json::to_value(&drift).unwrap();
    assert_eq!(json["class"], "missing_on_platform");
    assert_eq!(json["local_state"], "partially_reversed");
    assert_eq!(json["number"], "25442000000000000001");
    let back: Drift = serde_json::from_value(json).unwrap();
    assert_eq!(back, drift);
    let repair = Repair::AdoptState(LocalState::FullyReversed);
    assert_eq!(
        serde_json::to_string(&repair).unwrap(),
        r#"{"adopt_state":"fully_reversed"}"#
    );
    assert_eq!(
        serde_json::to_string(&CRITICAL).unwrap(),
        r#"{"alert":{"severity":"critical"}}"#
    );
}

#[test]
fn ten_thousand_invoices_with_planted_drifts_yield_exactly_those() {
    let mut locals: Vec<_> = (0..10_000)
        .map(|n| local(n, LocalState::Recorded, 600))
        .collect();
    let mut remotes: Vec<_> = locals
        .iter()
        .map(|l| twin(l, PlatformState::Normal))
        .collect();
    let (mut no_remote, mut no_local) = (HashSet::new(), HashSet::new());
    let mut expected = Vec::new();
    for n in [11, 2_222, 9_999] {
        no_remote.insert(number(n));
        expected.push((number(n), DriftClass::MissingOnPlatform));
    }
    for n in [31, 3_333] {
        locals[n as usize] = local(n, LocalState::Uploading, 60);
        no_remote.insert(number(n));
        expected.push((number(n), DriftClass::Stuck));
    }
    for n in [44, 4_444] {
        remotes[n as usize].state = PlatformState::FullyReversed;
        expected.push((number(n), DriftClass::StatusMismatch));
    }
    for n in [55, 5_555, 8_888] {
        remotes[n as usize].amount = dec("99.99");
        expected.push((number(n), DriftClass::ContentMismatch));
    }
    for n in [66, 6_666] {
        no_local.insert(number(n));
        expected.push((number(n), DriftClass::RemoteOnly));
    }
    // In flight or consistent with the platform's silence: never drift.
    locals[77] = local(77, LocalState::Issued, 1);
    locals[78] = local(78, LocalState::Uploading, 5);
    locals[79] = local(79, LocalState::Rejected, 600);
    no_remote.extend([77, 78, 79].map(number));

    locals.retain(|l| !no_local.contains(&l.number));
    remotes.retain(|r| !no_remote.contains(&r.number));
    remotes.reverse();
    let known = |_: &str, request: &str| request == "req-66";
    let result = compare(&locals, &remotes, &known, &Settings::default(), now());

    expected.sort();
    let found: Vec<_> = result.drifts.iter().map(|d| (d.number, d.class)).collect();
    assert_eq!(found, expected);
    assert_eq!(result.in_agreement, 10_000 - 12);
    assert_eq!(result.count(DriftClass::ContentMismatch), 3);
    let repair_of = |n| {
        result
            .drifts
            .iter()
            .find(|d| d.number == number(n))
            .unwrap()
            .repair
    };
    assert_eq!(repair_of(66), Repair::AdoptRemote);
    assert_eq!(repair_of(6_666), CRITICAL);
    assert_eq!(repair_of(31), Repair::QueryThenReupload);
    assert_eq!(repair_of(44), Repair::AdoptState(LocalState::FullyReversed));
}

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        8 => (-600i64..600).prop_map(ago),
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
    ]
}

fn any_local() -> impl Strategy<Value = LocalInvoice> {
    let state = prop::sample::select(vec![
        LocalState::Issued,
        LocalState::Uploading,
        LocalState::Recorded,
        LocalState::Rejected,
        LocalState::PartiallyReversed,
        LocalState::FullyReversed,
    ]);
    (
        0u64..40,
        state,
        any_time(),
        any_time(),
        0u32..6,
        any::<bool>(),
        0i64..3,
    )
        .prop_map(
            |(n, state, issued_at, state_since, attempts, red, cents)| LocalInvoice {
                issued_at,
                state_since,
                reconcile_attempts: attempts,
                colour: if red { Colour::Red } else { Colour::Blue },
                amount: Decimal::new(cents, 2),
                ..local(n, state, 0)
            },
        )
}

fn any_remote() -> impl Strategy<Value = PlatformInvoice> {
    let state = prop::sample::select(vec![
        PlatformState::Normal,
        PlatformState::PartiallyReversed,
        PlatformState::FullyReversed,
    ]);
    let tax_id = prop::option::of("[ a-zA-Z0-9]{0,4}");
    (
        0u64..40,
        state,
        any_time(),
        any::<bool>(),
        0i64..3,
        tax_id,
        "[a-fA-F0-9 ]{0,3}",
    )
        .prop_map(|(n, state, issued_at, red, cents, tax_id, digest)| {
            let here = local(n, LocalState::Recorded, 0);
            PlatformInvoice {
                issued_at,
                colour: if red { Colour::Red } else { Colour::Blue },
                amount: Decimal::new(cents, 2),
                buyer_tax_id: tax_id,
                content_sm3: digest,
                ..twin(&here, state)
            }
        })
}

proptest! {
    #[test]
    fn compare_never_panics_and_accounts_for_every_number_exactly_once(
        locals in prop::collection::vec(any_local(), 0..30),
        remotes in prop::collection::vec(any_remote(), 0..30),
        grace in -5i64..30,
        stuck_after in -5i64..60,
        max_reuploads in 0u32..5,
        known_bit in any::<bool>(),
    ) {
        let settings = Settings {
            stuck_after: TimeDelta::minutes(stuck_after),
            grace: TimeDelta::minutes(grace),
            max_reuploads,
        };
        let known = |_: &str, _: &str| known_bit;
        let result = compare(&locals, &remotes, &known, &settings, now());

        let all: HashSet<_> = locals
            .iter()
            .map(|l| l.number)
            .chain(remotes.iter().map(|r| r.number))
            .collect();
        prop_assert_eq!(result.in_agreement + result.drifts.len() as u64, all.len() as u64);
        let numbers: Vec<_> = result.drifts.iter().map(|d| d.number).collect();
        prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]), "unordered or repeated");
        prop_assert!(numbers.iter().all(|n| all.contains(n)));
        for drift in &result.drifts {
            prop_assert!(!drift.detail.is_empty());
            if drift.class == DriftClass::ContentMismatch {
                prop_assert_eq!(drift.repair, CRITICAL);
            }
        }
    }
}
