//! Taxpayer ids and resident id numbers: the real codes, every error, normalisation.

use fapiao_invoice::taxpayer::*;

const REAL_USCC: [&str; 6] = [
    "91350100M000100Y43",
    "91110302MA01NP925M",
    "92420100MA4JMP6D4P",
    "91320111339366503A",
    "91440300708461136T",
    "915300007194052520",
];

#[test]
fn real_unified_social_credit_codes_parse_as_uscc() {
    for code in REAL_USCC {
        let id = TaxpayerId::parse(code).unwrap_or_else(|e| panic!("{code}: {e:?}"));
        assert_eq!(id.kind(), TaxpayerIdKind::Uscc, "{code}");
        assert_eq!(id.as_str(), code);
        assert!(is_valid_uscc(code), "{code}");
    }
}

#[test]
fn check_char_of_real_codes_matches_their_last_character() {
    for code in REAL_USCC {
        let (first17, last) = code.split_at(17);
        assert_eq!(uscc_check_char(first17), last.chars().next(), "{code}");
    }
}

#[test]
fn classic_resident_id_parses_as_resident_id_and_resident_id_number() {
    let id = TaxpayerId::parse("11010519491231002X").unwrap();
    assert_eq!(id.kind(), TaxpayerIdKind::ResidentId);
    assert!(is_resident_id_number("11010519491231002X"));
    assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
    let r = ResidentIdNumber::parse("11010519491231002X").unwrap();
    assert_eq!(r.as_str(), "11010519491231002X");
}

#[test]
fn lower_case_x_is_normalised() {
    let r = ResidentIdNumber::parse(" 11010519491231002x ").unwrap();
    assert_eq!(r.as_str(), "11010519491231002X");
    assert_eq!(
        TaxpayerId::parse("11010519491231002x").unwrap().kind(),
        TaxpayerIdKind::ResidentId
    );
}

#[test]
fn full_width_input_normalises_and_passes() {
    let raw = "\u{3000} ９１３５０１００Ｍ０００１００Ｙ４３\u{3000} ";
    assert_eq!(normalize(raw), "91350100M000100Y43");
    let id = TaxpayerId::parse(raw).unwrap();
    assert_eq!(id.as_str(), "91350100M000100Y43");
    assert_eq!(id.kind(), TaxpayerIdKind::Uscc);
    assert_eq!(id.to_string(), "91350100M000100Y43");
}

#[test]
fn normalize_upper_cases_and_converts_full_width_lower_case() {
    assert_eq!(normalize("ｍａ01np925m"), "MA01NP925M");
    assert_eq!(normalize("a\u{3000}b"), "A B");
}

#[test]
fn empty_and_blank_ids_are_refused_with_empty() {
    for raw in ["", "   ", "\u{3000}\u{3000}"] {
        let e = TaxpayerId::parse(raw).unwrap_err();
        assert_eq!(e, TaxpayerIdError::Empty);
        assert_eq!(e.code(), "TAX_ID_REQUIRED");
        assert_eq!(e.message_zh(), "纳税人识别号不能为空");
    }
}

#[test]
fn wrong_lengths_are_refused_with_length() {
    for len in [1, 14, 16, 19, 21, 30] {
        let e = TaxpayerId::parse(&"1".repeat(len)).unwrap_err();
        assert_eq!(e, TaxpayerIdError::Length { len });
        assert_eq!(e.code(), "TAX_ID_LENGTH");
        assert_eq!(
            e.message_zh(),
            format!("纳税人识别号应为15、17、18或20位，实际{len}位")
        );
    }
}

#[test]
fn lengths_15_17_and_20_are_accepted_with_their_kind() {
    let cases = [
        ("110105123456789", TaxpayerIdKind::Legacy15),
        ("11010519491231001", TaxpayerIdKind::Individual17),
        ("11010519491231002X01", TaxpayerIdKind::Individual20),
        ("44030071234567X", TaxpayerIdKind::Legacy15),
    ];
    for (raw, kind) in cases {
        assert_eq!(TaxpayerId::parse(raw).unwrap().kind(), kind, "{raw}");
    }
}

#[test]
fn characters_outside_0_9_a_z_are_refused_with_their_position() {
    let e = TaxpayerId::parse("9135010-M000100Y43").unwrap_err();
    assert_eq!(
        e,
        TaxpayerIdError::Charset {
            position: 8,
            found: '-'
        }
    );
    assert_eq!(e.code(), "TAX_ID_CHARSET");
    assert_eq!(e.message_zh(), "纳税人识别号第8位字符“-”不合法");
    let e = TaxpayerId::parse("11010512345678é").unwrap_err();
    assert_eq!(
        e,
        TaxpayerIdError::Charset {
            position: 15,
            found: 'é'
        }
    );
}

#[test]
fn uscc_with_excluded_letters_is_refused_with_charset() {
    // Position 9 of a real code replaced by each excluded letter.
    for (letter, code) in [
        ('I', "91350100I000100Y43"),
        ('O', "91350100O000100Y43"),
        ('S', "91350100S000100Y43"),
        ('V', "91350100V000100Y43"),
        ('Z', "91350100Z000100Y43"),
    ] {
        let e = TaxpayerId::parse(code).unwrap_err();
        assert_eq!(
            e,
            TaxpayerIdError::Charset {
                position: 9,
                found: letter
            },
            "{code}"
        );
        assert!(!is_valid_uscc(code));
    }
    assert_eq!(uscc_check_char("91350100I000100Y4"), None);
}

#[test]
fn wrong_check_char_reports_the_expected_one() {
    let e = TaxpayerId::parse("91350100M000100Y44").unwrap_err();
    assert_eq!(
        e,
        TaxpayerIdError::CheckDigit {
            expected: '3',
            found: '4'
        }
    );
    assert_eq!(e.code(), "TAX_ID_CHECK_DIGIT");
    assert_eq!(e.message_zh(), "统一社会信用代码校验位应为3，实际为4");
}

#[test]
fn check_char_helpers_refuse_wrong_lengths() {
    assert_eq!(uscc_check_char("9135"), None);
    assert_eq!(uscc_check_char("91350100M000100Y43"), None);
    assert_eq!(resident_id_check_char("1101051949123100"), None);
    assert_eq!(resident_id_check_char("1101051949123100A"), None);
    assert!(!is_resident_id_number("11010519491231002"));
    assert!(!is_resident_id_number("11010519491231002X1"));
    assert!(!is_resident_id_number("1101051949123100é"));
    assert!(!is_valid_uscc("91350100M000100Y4"));
}

#[test]
fn resident_id_errors_have_their_codes_and_messages() {
    let cases = [
        ("", ResidentIdError::Empty, "ID_NUMBER_REQUIRED"),
        (
            "1101051949123100",
            ResidentIdError::Length { len: 16 },
            "ID_NUMBER_LENGTH",
        ),
        (
            "1101051949123A002X",
            ResidentIdError::Charset {
                position: 14,
                found: 'A',
            },
            "ID_NUMBER_CHARSET",
        ),
        (
            "X10105194912310021",
            ResidentIdError::Charset {
                position: 1,
                found: 'X',
            },
            "ID_NUMBER_CHARSET",
        ),
        (
            "11010519491331002X",
            ResidentIdError::BirthDate,
            "ID_NUMBER_BIRTH_DATE",
        ),
        (
            "110105194912310021",
            ResidentIdError::CheckDigit {
                expected: 'X',
                found: '1',
            },
            "ID_NUMBER_CHECK_DIGIT",
        ),
    ];
    for (raw, error, code) in cases {
        let e = ResidentIdNumber::parse(raw).unwrap_err();
        assert_eq!(e, error, "{raw}");
        assert_eq!(e.code(), code, "{raw}");
        assert!(!e.message_zh().is_empty());
    }
    assert_eq!(
        ResidentIdError::CheckDigit {
            expected: 'X',
            found: '1'
        }
        .message_zh(),
        "居民身份证号码校验位应为X，实际为1"
    );
    assert_eq!(
        ResidentIdError::Length { len: 16 }.message_zh(),
        "居民身份证号码应为18位，实际16位"
    );
}

/// A resident id with the given birth date and a correct check character.
fn resident_id_born(yyyymmdd: &str) -> String {
    let first17 = format!("110105{yyyymmdd}002");
    let check = resident_id_check_char(&first17).expect("17 digits have a check character");
    format!("{first17}{check}")
}

#[test]
fn birth_dates_follow_the_calendar() {
    for ok in ["20000229", "19000101", "21001231", "19960229", "20241130"] {
        assert!(
            ResidentIdNumber::parse(&resident_id_born(ok)).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "19000229", "21000229", "20230229", "18991231", "21010101", "20240431", "20240001",
        "20241300", "20240100",
    ] {
        assert_eq!(
            ResidentIdNumber::parse(&resident_id_born(bad)),
            Err(ResidentIdError::BirthDate),
            "{bad}"
        );
    }
}
