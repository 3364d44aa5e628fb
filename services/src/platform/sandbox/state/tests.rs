//! The state's own rules: number ranges, regions, the sequence floor and quota grants.

use super::*;
use chrono::TimeZone;

fn settings() -> Settings {
    Settings {
        channel: 2,
        default_region: 31,
        numbers_per_seller: 25,
        max_range: 10,
        monthly_quota: Decimal::new(100_000, 2),
        overrides: HashMap::new(),
        scratch_dir: None,
    }
}

fn id(text: &str) -> TaxpayerId {
    TaxpayerId::parse(text).unwrap()
}

fn reserve(
    state: &mut State,
    seller: &TaxpayerId,
    count: u32,
    now: DateTime<Utc>,
) -> (InvoiceNumber, InvoiceNumber) {
    let (first, last) = state.reserve(seller, count, now).unwrap();
    state.apply(Event::Reserved {
        seller: seller.clone(),
        first,
        last,
    });
    (first, last)
}

#[test]
fn reservations_share_a_sequence_and_stop_at_the_allotment() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap();
    let mut state = State::new(settings());
    let a = id("91310000MA1FP00011");
    let (first, last) = reserve(&mut state, &a, 50, now);
    assert_eq!((first.year(), first.region(), first.channel()), (26, 31, 2));
    assert_eq!(
        last.sequence() - first.sequence() + 1,
        10,
        "capped by max_range"
    );
    let (next, _) = reserve(&mut state, &a, 5, now);
    assert_eq!(next.sequence(), last.sequence() + 1);
    let (_, end) = reserve(&mut state, &a, 50, now);
    assert_eq!(state.seller_view(&a).numbers_remaining, 0);
    assert_eq!(
        state.reserve(&a, 1, now).unwrap_err().code,
        "FPHM_EXHAUSTED"
    );
    assert!(state.assigned_to(&end) == Some(&a));
    assert!(state.assigned_to(&end.next().unwrap()).is_none());
}

#[test]
fn regions_come_from_the_tax_id() {
    assert_eq!(region_of(&id("91310000MA1FP00011"), 99), 31);
    assert_eq!(region_of(&id("110101199003074477"), 99), 11);
}

#[test]
fn the_sequence_floor_grows_through_the_year() {
    let early = Utc.with_ymd_and_hms(2025, 12, 31, 16, 0, 1).unwrap();
    let later = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    assert_eq!(sequence_floor(early), 1_000_000);
    assert!(sequence_floor(later) > sequence_floor(early));
    assert!(sequence_floor(later) < InvoiceNumber::SEQUENCE_MAX / 2);
}

#[test]
fn quota_is_granted_once_per_serial() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap();
    let mut state = State::new(settings());
    let a = id("91310000MA1FP00011");
    let Grant::New(granted, event) = state
        .download(&a, Decimal::new(60_000, 2), "S1", now)
        .unwrap()
    else {
        panic!("expected a new grant");
    };
    assert_eq!(granted, Decimal::new(60_000, 2));
    state.apply(event);
    assert_eq!(
        state.download(&a, Decimal::ONE, "S1", now).unwrap(),
        Grant::Repeat(Decimal::new(60_000, 2))
    );
    let Grant::New(rest, event) = state
        .download(&a, Decimal::new(60_000, 2), "S2", now)
        .unwrap()
    else {
        panic!("expected a new grant");
    };
    assert_eq!(rest, Decimal::new(40_000, 2));
    state.apply(event);
    assert_eq!(
        state
            .download(&a, Decimal::ONE, "S3", now)
            .unwrap_err()
            .code,
        "SXED_INSUFFICIENT"
    );
    assert_eq!(state.quota(&a, now).month, 202603);
}
