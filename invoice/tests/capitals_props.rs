//! Property tests for amounts in Chinese capitals: the canonical form round-trips through the
//! parser and keeps its shape rules over the whole number(18,2) range.

use fapiao_invoice::capitals::{amount_in_capitals, parse_capitals};
use proptest::prelude::*;
use rust_decimal::Decimal;

const CENTS_LIMIT: i64 = 1_000_000_000_000_000_000; // 10^16 yuan in cents
const ALLOWED: &str = "零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆角分整（负数）";

/// Amounts in (−10^16, 10^16) with 2 decimals, biased towards the shapes with zeros that make
/// capitals hard: small values, round values, and values with runs of zeros.
fn amount() -> impl Strategy<Value = Decimal> {
    let cents = prop_oneof![
        (-CENTS_LIMIT + 1)..CENTS_LIMIT,
        -100_000i64..100_000,
        // Sparse digits: each of the 18 places is zero with high probability.
        proptest::collection::vec(prop_oneof![3 => Just(0i64), 1 => 1i64..10], 18)
            .prop_map(|digits| { digits.into_iter().fold(0i64, |n, d| n * 10 + d) }),
        (1i64..10, 0u32..18).prop_map(|(d, p)| d * 10i64.pow(p)),
    ];
    (cents, any::<bool>()).prop_map(|(c, negate)| Decimal::new(if negate { -c } else { c }, 2))
}

proptest! {
    #[test]
    fn parse_inverts_amount_in_capitals(x in amount()) {
        let text = amount_in_capitals(x).expect("in range");
        prop_assert_eq!(parse_capitals(&text), Some(x), "{}", text);
    }

    #[test]
    fn never_two_zeros_in_a_row(x in amount()) {
        let text = amount_in_capitals(x).expect("in range");
        prop_assert!(!text.contains("零零"), "{}", text);
    }

    #[test]
    fn starts_with_zero_only_for_zero(x in amount()) {
        let text = amount_in_capitals(x).expect("in range");
        prop_assert_eq!(text.starts_with('零'), x.is_zero(), "{}", text);
    }

    #[test]
    fn ends_with_zheng_exactly_when_the_fen_digit_is_zero(x in amount()) {
        let text = amount_in_capitals(x).expect("in range");
        let fen_is_zero = (x * Decimal::ONE_HUNDRED % Decimal::TEN).is_zero();
        prop_assert_eq!(text.ends_with('整'), fen_is_zero, "{}", text);
    }

    #[test]
    fn yuan_appears_exactly_for_one_or_more_or_zero(x in amount()) {
        let text = amount_in_capitals(x).expect("in range");
        prop_assert_eq!(text.contains('圆'), x.abs() >= Decimal::ONE || x.is_zero(), "{}", text);
        prop_assert!(text.matches('圆').count() <= 1);
    }

    #[test]
    fn negative_exactly_when_prefixed(x in amount()) {
        let text = amount_in_capitals(x).expect("in range");
        prop_assert_eq!(text.starts_with("（负数）"), x.is_sign_negative() && !x.is_zero(), "{}", text);
    }

    #[test]
    fn only_allowed_characters_appear(x in amount()) {
        let text = amount_in_capitals(x).expect("in range");
        prop_assert!(text.chars().all(|c| ALLOWED.contains(c)), "{}", text);
    }

    #[test]
    fn amounts_round_half_up_to_cents(x in amount(), extra in 0i64..10) {
        // x with a third decimal: 5..9 rounds away from zero, 0..4 towards it.
        let third = Decimal::new(extra, 3);
        let longer = if x.is_sign_negative() { x - third } else { x + third };
        let expected = if extra >= 5 {
            if x.is_sign_negative() { x - Decimal::new(1, 2) } else { x + Decimal::new(1, 2) }
        } else {
            x
        };
        prop_assume!(expected.abs() < Decimal::new(CENTS_LIMIT, 2));
        let text = amount_in_capitals(longer).expect("in range");
        prop_assert_eq!(parse_capitals(&text), Some(expected), "{}", text);
    }

    #[test]
    fn out_of_range_amounts_have_no_capitals(cents in CENTS_LIMIT..i64::MAX, negate in any::<bool>()) {
        let x = Decimal::new(if negate { -cents } else { cents }, 2);
        prop_assert_eq!(amount_in_capitals(x), None);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = parse_capitals(&s);
    }

    #[test]
    fn parse_never_panics_on_capital_like_strings(s in "[零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆元角分整正（负数）()]{0,40}") {
        if let Some(x) = parse_capitals(&s) {
            prop_assert!(x.abs() < Decimal::new(CENTS_LIMIT, 2));
        }
    }
}
