//! Behaviour of `slo`.

use super::*;
use proptest::prelude::*;

fn failing(total: u64, bad: u64) -> Outcomes {
    Outcomes {
        recorded: total - bad,
        rejected: bad / 2,
        failed_attempts: bad - bad / 2,
    }
}

fn fired(counts: impl FnMut(Duration) -> Outcomes) -> Vec<String> {
    let breaches = evaluate(
        &Objective::default(),
        &default_rules(),
        &SloSettings::default(),
        &Scope::Overall,
        counts,
    );
    breaches.into_iter().map(|b| b.rule).collect()
}

#[test]
fn success_rate_is_exact() {
    let outcomes = failing(1000, 1);
    assert_eq!(outcomes.total(), 1000);
    assert_eq!(outcomes.bad(), 1);
    assert_eq!(outcomes.success_rate(), Some(Decimal::new(999, 3)));
    assert_eq!(Outcomes::default().success_rate(), None);
    assert_eq!(
        Objective::default().burn_rate(&outcomes),
        Some(Decimal::ONE)
    );
}

#[test]
fn totals_of_maximal_counts_do_not_overflow() {
    let max = Outcomes {
        recorded: u64::MAX,
        rejected: u64::MAX,
        failed_attempts: u64::MAX,
    };
    assert_eq!(max.total(), 3 * u128::from(u64::MAX));
    assert_eq!(max + max, max);
    let mut sum = failing(10, 1);
    sum += failing(20, 3);
    assert_eq!(
        sum,
        Outcomes {
            recorded: 26,
            rejected: 1,
            failed_attempts: 3
        }
    );
}

#[test]
fn objective_keeps_a_positive_budget() {
    assert!(Objective::new(Decimal::ONE).is_err());
    assert!(Objective::new(Decimal::ZERO).is_err());
    assert_eq!(Objective::default().error_budget(), Decimal::new(1, 3));
    let parsed: Result<Objective, _> = serde_json::from_str("\"1.5\"");
    assert!(parsed.is_err());
    let parsed: Objective = serde_json::from_str("\"0.99\"").unwrap();
    assert_eq!(parsed.target(), Decimal::new(99, 2));
}

#[test]
fn two_percent_failures_fire_every_rule() {
    let rules = fired(|_| failing(10_000, 200));
    assert_eq!(
        rules,
        [
            "page-1h",
            "page-6h",
            "ticket-1d",
            "ticket-3d",
            BELOW_OBJECTIVE
        ]
    );
}

#[test]
fn one_percent_failures_burn_at_ten_times_which_misses_only_the_fast_page() {
    // 1% against a 0.1% budget is a burn rate of 10, below page-1h's 14.4.
    let rules = fired(|_| failing(10_000, 100));
    assert_eq!(
        rules,
        ["page-6h", "ticket-1d", "ticket-3d", BELOW_OBJECTIVE]
    );
}

#[test]
fn a_burn_rate_of_exactly_the_factor_fires() {
    let page_1h = |bad| {
        fired(move |length| {
            if length <= Duration::hours(1) {
                failing(10_000, bad)
            } else {
                failing(10_000, 0)
            }
        })
    };
    assert_eq!(page_1h(144), ["page-1h", BELOW_OBJECTIVE]); // 1.44% = 14.4 × 0.1%
    assert_eq!(page_1h(143), [BELOW_OBJECTIVE]);
}

#[test]
fn half_the_budget_fires_nothing() {
    assert!(fired(|_| failing(20_000, 10)).is_empty());
}

#[test]
fn tiny_volume_fires_nothing() {
    // 1 in 20 is a burn rate of 50, but 20 outcomes are below the guard.
    assert!(fired(|_| failing(20, 1)).is_empty());
}

#[test]
fn a_spike_in_the_short_window_alone_does_not_fire() {
    let rules = fired(|length| {
        if length < Duration::hours(1) {
            failing(1_000, 500)
        } else {
            failing(100_000, 50)
        }
    });
    assert!(rules.is_empty(), "{rules:?}");
}

#[test]
fn a_recovered_short_window_stops_the_page() {
    let rules = fired(|length| {
        if length < Duration::hours(1) {
            failing(1_000, 0)
        } else {
            failing(100_000, 5_000)
        }
    });
    assert!(
        !rules.iter().any(|rule| rule.starts_with("page")),
        "{rules:?}"
    );
    assert!(rules.iter().any(|rule| rule == "ticket-1d"), "{rules:?}");
}

#[test]
fn below_objective_check_uses_its_own_window_and_the_guard() {
    let settings = SloSettings {
        objective_window: Duration::minutes(10),
        ..SloSettings::default()
    };
    let check = |total, bad| {
        evaluate(
            &Objective::default(),
            &[],
            &settings,
            &Scope::Seller("91310000MA1K3YJ12X".into()),
            |length| {
                if length == Duration::minutes(10) {
                    failing(total, bad)
                } else {
                    Outcomes::default()
                }
            },
        )
    };
    let breaches = check(1_000, 2);
    assert_eq!(breaches.len(), 1);
    let breach = &breaches[0];
    assert_eq!(breach.rule, BELOW_OBJECTIVE);
    assert_eq!(breach.severity, Severity::Warning);
    assert_eq!(breach.scope, Scope::Seller("91310000MA1K3YJ12X".into()));
    assert_eq!(breach.kind, BreachKind::BelowObjective);
    assert_eq!(breach.window.success_rate, Some(Decimal::new(998, 3)));
    assert_eq!(breach.window.burn_rate, Some(Decimal::from(2)));
    assert!(check(1_000, 1).is_empty(), "99.9% meets a 99.9% objective");
    assert!(check(99, 50).is_empty(), "below the volume guard");
}

#[test]
fn breach_carries_rounded_rates_of_both_windows() {
    let breaches = evaluate(
        &Objective::default(),
        &default_rules()[..1],
        &SloSettings::default(),
        &Scope::Overall,
        |length| {
            if length == Duration::hours(1) {
                failing(30_000, 1_000)
            } else {
                failing(3_000, 300)
            }
        },
    );
    assert_eq!(breaches.len(), 2);
    let BreachKind::Burn { factor, short } = &breaches[0].kind else {
        panic!("expected a burn breach, got {:?}", breaches[0].kind);
    };
    assert_eq!(*factor, Decimal::new(144, 1));
    assert_eq!(
        breaches[0].window.success_rate,
        Some(Decimal::new(966_667, 6))
    );
    assert_eq!(breaches[0].window.burn_rate, Some(Decimal::new(333_333, 4)));
    assert_eq!(breaches[0].window.outcomes.total(), 30_000);
    assert_eq!(short.length, Duration::minutes(5));
    assert_eq!(short.burn_rate, Some(Decimal::from(100)));
}

#[test]
fn each_window_is_counted_once() {
    let windows = windows_needed(&default_rules(), &SloSettings::default());
    let expected = [
        Duration::minutes(5),
        Duration::minutes(30),
        Duration::hours(1),
        Duration::hours(2),
        Duration::hours(6),
        Duration::days(1),
        Duration::days(3),
    ];
    assert_eq!(windows, expected);
    let mut asked = Vec::new();
    evaluate(
        &Objective::default(),
        &default_rules(),
        &SloSettings::default(),
        &Scope::Overall,
        |length| {
            asked.push(length);
            Outcomes::default()
        },
    );
    assert_eq!(asked, expected);
}

#[test]
fn durations_read_like_people_write_them() {
    assert_eq!(human_duration(Duration::minutes(5)), "5m");
    assert_eq!(human_duration(Duration::hours(6)), "6h");
    assert_eq!(human_duration(Duration::days(3)), "3d");
    assert_eq!(human_duration(Duration::seconds(90)), "90s");
    assert_eq!(human_duration(Duration::zero()), "0s");
}

fn any_outcomes() -> impl Strategy<Value = Outcomes> {
    let count = prop_oneof![
        Just(0u64),
        0u64..1_000,
        Just(u64::MAX),
        u64::MAX - 10..=u64::MAX,
        any::<u64>()
    ];
    (count.clone(), count.clone(), count).prop_map(|(recorded, rejected, failed_attempts)| {
        Outcomes {
            recorded,
            rejected,
            failed_attempts,
        }
    })
}

proptest! {
    #[test]
    fn evaluation_never_panics_and_respects_the_guard(
        windows in proptest::collection::vec(any_outcomes(), 7),
        target in 1i64..1_000_000,
        factor in prop_oneof![Just(Decimal::MAX), Just(Decimal::ZERO), (0i64..i64::MAX).prop_map(|n| Decimal::new(n, 3))],
        min_volume in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
    ) {
        let objective = Objective::new(Decimal::new(target, 6)).unwrap();
        let mut rules = default_rules();
        rules[0].factor = factor;
        let settings = SloSettings { min_volume, ..SloSettings::default() };
        let needed = windows_needed(&rules, &settings);
        let over = |length: Duration| {
            needed.iter().position(|w| *w == length).map(|i| windows[i]).unwrap_or_default()
        };
        let breaches = evaluate(&objective, &rules, &settings, &Scope::Overall, over);
        for breach in &breaches {
            prop_assert!(breach.window.outcomes.total() >= u128::from(min_volume));
            prop_assert!(breach.window.outcomes.bad() > 0);
            if let BreachKind::Burn { short, .. } = &breach.kind {
                prop_assert!(short.outcomes.bad() > 0);
            }
        }
    }
}
