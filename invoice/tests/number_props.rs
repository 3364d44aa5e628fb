//! Property tests for the 20-digit invoice number: parts round-trip through the text form, and
//! only exactly 20 ASCII digits parse.

use fapiao_invoice::number::{InvoiceNumber, InvoiceNumberError};
use proptest::prelude::*;

fn is_twenty_ascii_digits(s: &str) -> bool {
    s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit())
}

proptest! {
    #[test]
    fn parts_round_trip_through_text(
        year in 0u8..=99,
        region in 0u8..=99,
        channel in 0u8..=9,
        sequence in 0u64..=InvoiceNumber::SEQUENCE_MAX,
    ) {
        let n = InvoiceNumber::new(year, region, channel, sequence).expect("in range");
        let text = n.to_string();
        prop_assert!(is_twenty_ascii_digits(&text));
        let parsed: InvoiceNumber = text.parse().expect("20 digits");
        prop_assert_eq!(parsed, n);
        prop_assert_eq!(
            (parsed.year(), parsed.region(), parsed.channel(), parsed.sequence()),
            (year, region, channel, sequence)
        );
    }

    #[test]
    fn any_20_digit_string_parses_and_displays_unchanged(s in "[0-9]{20}") {
        let n: InvoiceNumber = s.parse().expect("20 digits");
        prop_assert_eq!(n.to_string(), s);
    }

    #[test]
    fn anything_but_exactly_20_ascii_digits_is_refused(s in any::<String>()) {
        prop_assume!(!is_twenty_ascii_digits(&s));
        prop_assert_eq!(s.parse::<InvoiceNumber>(), Err(InvoiceNumberError::Format));
    }

    #[test]
    fn near_misses_are_refused(
        digits in "[0-9]{20}",
        position in 0usize..20,
        c in prop_oneof![Just(' '), Just('+'), Just('-'), Just('x'), Just('０'), Just('٣'), Just('\u{3000}')],
    ) {
        let changed: String = digits
            .chars()
            .enumerate()
            .map(|(i, d)| if i == position { c } else { d })
            .collect();
        prop_assert_eq!(changed.parse::<InvoiceNumber>(), Err(InvoiceNumberError::Format));
        let longer = format!("{digits}{c}");
        prop_assert_eq!(longer.parse::<InvoiceNumber>(), Err(InvoiceNumberError::Format));
        let shorter = digits.get(1..).unwrap_or_default();
        prop_assert_eq!(shorter.parse::<InvoiceNumber>(), Err(InvoiceNumberError::Format));
    }

    #[test]
    fn out_of_range_parts_are_refused(
        year in 100u8..,
        sequence in (InvoiceNumber::SEQUENCE_MAX + 1)..,
    ) {
        prop_assert_eq!(InvoiceNumber::new(year, 44, 2, 0), Err(InvoiceNumberError::OutOfRange));
        prop_assert_eq!(InvoiceNumber::new(24, year, 2, 0), Err(InvoiceNumberError::OutOfRange));
        prop_assert_eq!(InvoiceNumber::new(24, 44, 2, sequence), Err(InvoiceNumberError::OutOfRange));
    }

    #[test]
    fn next_keeps_the_prefix_and_adds_one(
        year in 0u8..=99,
        region in 0u8..=99,
        channel in 0u8..=9,
        sequence in 0u64..=InvoiceNumber::SEQUENCE_MAX,
    ) {
        let n = InvoiceNumber::new(year, region, channel, sequence).expect("in range");
        match n.next() {
            Some(next) => {
                prop_assert_eq!((next.year(), next.region(), next.channel()), (year, region, channel));
                prop_assert_eq!(next.sequence(), sequence + 1);
            }
            None => prop_assert_eq!(sequence, InvoiceNumber::SEQUENCE_MAX),
        }
    }
}
