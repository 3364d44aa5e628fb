//! Property tests for taxpayer ids: the GB 32100 and GB 11643 check characters catch every
//! single-character substitution, and nothing panics on arbitrary input.

use fapiao_invoice::taxpayer::{
    ResidentIdNumber, TaxpayerId, TaxpayerIdKind, is_resident_id_number, is_valid_uscc, normalize,
    resident_id_check_char, uscc_check_char,
};
use proptest::prelude::*;

const USCC_CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const TAX_ID_CHARSET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn uscc() -> impl Strategy<Value = String> {
    let chars: Vec<char> = USCC_CHARSET.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), 17).prop_map(|first| {
        let first17: String = first.into_iter().collect();
        let check = uscc_check_char(&first17).expect("17 USCC characters");
        format!("{first17}{check}")
    })
}

/// A resident id number with a real birth date (1900..=2100, days 1..=28 so every month is valid).
fn resident_id() -> impl Strategy<Value = String> {
    (
        0u32..1_000_000,
        1900u32..=2100,
        1u32..=12,
        1u32..=28,
        0u32..1000,
    )
        .prop_map(|(region, year, month, day, seq)| {
            let first17 = format!("{region:06}{year:04}{month:02}{day:02}{seq:03}");
            let check = resident_id_check_char(&first17).expect("17 digits");
            format!("{first17}{check}")
        })
}

fn replace_at(s: &str, position: usize, c: char) -> String {
    s.chars()
        .enumerate()
        .map(|(i, old)| if i == position { c } else { old })
        .collect()
}

/// The character `shift` places after `c` in `set`, cyclically: a different character of the set
/// for every shift in 1..len, so no generated case is rejected.
fn shifted(set: &str, c: char, shift: usize) -> char {
    let chars: Vec<char> = set.chars().collect();
    let at = chars
        .iter()
        .position(|&x| x == c)
        .expect("character of the set");
    chars[(at + shift) % chars.len()]
}

proptest! {
    #[test]
    fn generated_uscc_parses_as_uscc(code in uscc()) {
        prop_assert!(is_valid_uscc(&code));
        let id = TaxpayerId::parse(&code);
        // A generated code made only of digits may also be a valid resident id number, which wins.
        let kind = id.as_ref().map(TaxpayerId::kind);
        if is_resident_id_number(&code) {
            prop_assert_eq!(kind, Ok(TaxpayerIdKind::ResidentId));
        } else {
            prop_assert_eq!(kind, Ok(TaxpayerIdKind::Uscc));
        }
    }

    #[test]
    fn any_single_substitution_breaks_a_uscc(
        code in uscc(),
        position in 0usize..18,
        shift in 1usize..36,
    ) {
        let original = code.chars().nth(position).expect("18 characters");
        let replacement = shifted(TAX_ID_CHARSET, original, shift);
        let changed = replace_at(&code, position, replacement);
        prop_assert!(!is_valid_uscc(&changed), "{} -> {}", code, changed);
        match TaxpayerId::parse(&changed) {
            Err(_) => {}
            Ok(id) => prop_assert_eq!(id.kind(), TaxpayerIdKind::ResidentId),
        }
    }

    #[test]
    fn generated_resident_ids_pass(id in resident_id()) {
        prop_assert!(is_resident_id_number(&id));
        prop_assert_eq!(
            TaxpayerId::parse(&id).map(|t| t.kind()),
            Ok(TaxpayerIdKind::ResidentId)
        );
        let parsed = ResidentIdNumber::parse(&id.to_lowercase());
        prop_assert_eq!(parsed.map(|r| r.as_str().to_owned()), Ok(id));
    }

    #[test]
    fn a_single_digit_change_breaks_a_resident_id(
        id in resident_id(),
        position in 0usize..17,
        shift in 1usize..10,
    ) {
        let original = id.chars().nth(position).expect("18 characters");
        let replacement = shifted("0123456789", original, shift);
        let changed = replace_at(&id, position, replacement);
        prop_assert!(!is_resident_id_number(&changed), "{} -> {}", id, changed);
        prop_assert!(ResidentIdNumber::parse(&changed).is_err());
    }

    #[test]
    fn a_changed_check_character_breaks_a_resident_id(
        id in resident_id(),
        shift in 1usize..11,
    ) {
        let original = id.chars().last().expect("18 characters");
        let check = shifted("0123456789X", original, shift);
        let changed = replace_at(&id, 17, check);
        prop_assert!(!is_resident_id_number(&changed));
        let is_check_digit_error = matches!(
            ResidentIdNumber::parse(&changed),
            Err(fapiao_invoice::taxpayer::ResidentIdError::CheckDigit { .. })
        );
        prop_assert!(is_check_digit_error);
    }

    #[test]
    fn normalize_is_idempotent(raw in any::<String>()) {
        let once = normalize(&raw);
        prop_assert_eq!(normalize(&once), once);
    }

    #[test]
    fn normalize_is_idempotent_on_full_width_text(raw in "[\u{3000}\u{FF01}-\u{FF5E} a-z0-9]{0,30}") {
        let once = normalize(&raw);
        let is_half_width = once.chars().all(|c| !('\u{FF01}'..='\u{FF5E}').contains(&c) && c != '\u{3000}');
        prop_assert!(is_half_width, "{:?}", once);
        prop_assert_eq!(normalize(&once), once);
    }

    #[test]
    fn parsing_never_panics(raw in any::<String>()) {
        let _ = TaxpayerId::parse(&raw);
        let _ = ResidentIdNumber::parse(&raw);
        let _ = is_valid_uscc(&raw);
        let _ = is_resident_id_number(&raw);
        let _ = uscc_check_char(&raw);
        let _ = resident_id_check_char(&raw);
    }

    #[test]
    fn parsing_never_panics_on_id_shaped_input(raw in "[0-9A-Za-zé\u{3000}\u{FF10}-\u{FF5A} -]{14,21}") {
        if let Ok(id) = TaxpayerId::parse(&raw) {
            prop_assert!(matches!(id.as_str().chars().count(), 15 | 17 | 18 | 20));
        }
        let _ = ResidentIdNumber::parse(&raw);
    }
}
