//! The bundled tax-code catalog and the operators' catalog file format, seen from outside the crate.

use fapiao_invoice::catalog::{CatalogEntry, TaxCode, TaxCodeCatalog, TaxCodeClass};
use fapiao_invoice::rate::TaxRate;
use proptest::prelude::*;

fn code(text: &str) -> TaxCode {
    TaxCode::parse(text).expect("a valid code")
}

fn bundled_entry(text: &str) -> CatalogEntry {
    TaxCodeCatalog::bundled()
        .get(&code(text))
        .cloned()
        .unwrap_or_else(|| panic!("{text} not bundled"))
}

fn rate(text: &str) -> TaxRate {
    TaxRate::parse(text).expect("a rate in force")
}

#[test]
fn bundled_catalog_is_large_and_covers_every_class() {
    let catalog = TaxCodeCatalog::bundled();
    assert!(catalog.len() >= 60, "only {} entries", catalog.len());
    assert!(!catalog.is_empty());
    for class in [
        TaxCodeClass::Goods,
        TaxCodeClass::Labour,
        TaxCodeClass::Services,
        TaxCodeClass::Intangibles,
        TaxCodeClass::RealEstate,
        TaxCodeClass::NonTaxable,
    ] {
        assert!(
            catalog.iter().any(|e| e.code.class() == Some(class)),
            "no {class:?} entry"
        );
    }
    assert!(catalog.version().is_some());
}

#[test]
fn bundled_catalog_covers_the_common_services() {
    let catalog = TaxCodeCatalog::bundled();
    let has = |prefix: &str, short_name: &str| {
        catalog
            .iter()
            .any(|e| e.code.as_str().starts_with(prefix) && e.short_name == short_name)
    };
    assert!(has("3010", "运输服务"), "transport");
    assert!(has("3050", "建筑服务"), "construction");
    assert!(has("5", "不动产"), "real estate");
    assert!(has("30402", "信息技术服务"), "IT services");
    assert!(has("3070401", "餐饮服务"), "catering");
    assert!(has("3070402", "住宿服务"), "lodging");
    assert!(
        catalog.iter().any(|e| e.code.as_str().starts_with("3060")),
        "financial services"
    );
}

#[test]
fn known_codes_have_their_short_names_and_rates() {
    let software = bundled_entry("3040201010000000000");
    assert_eq!(
        (software.name.as_str(), software.short_name.as_str()),
        ("软件开发服务", "信息技术服务")
    );
    assert!(software.allows(&rate("6%")));
    assert!(software.allows(&rate("0.01")));
    assert!(!software.allows(&rate("13%")));

    let catering = bundled_entry("3070401000000000000");
    assert_eq!(catering.short_name, "餐饮服务");
    assert!(catering.allows(&rate("6%")));

    let lodging = bundled_entry("3070402000000000000");
    assert_eq!(lodging.short_name, "住宿服务");

    let goods = bundled_entry("1090501010000000000");
    assert!(goods.allows(&rate("13%")));
    assert!(goods.allows(&rate("0%")));
    assert!(!goods.allows(&rate("6%")));

    let prepaid = bundled_entry("6010000000000000000");
    assert_eq!(prepaid.rates, vec![TaxRate::NonTaxable]);

    let construction = bundled_entry("3050100000000000000");
    assert!(construction.allows(&rate("9%")) && !construction.allows(&rate("6%")));

    let housing = bundled_entry("5010101000000000000");
    assert!(housing.allows(&rate("9%")) && housing.allows(&rate("5%")));
    assert!(!housing.allows(&rate("1%")) && !housing.allows(&rate("3%")));

    let land = bundled_entry("4050101000000000000");
    assert!(land.allows(&rate("9%")) && !land.allows(&rate("6%")));
}

#[test]
fn every_bundled_entry_is_consistent_with_its_class() {
    for entry in TaxCodeCatalog::bundled().iter() {
        let class = entry.code.class();
        assert!(class.is_some(), "{}", entry.code);
        let non_taxable_code = class == Some(TaxCodeClass::NonTaxable);
        assert_eq!(
            entry.allows(&TaxRate::NonTaxable),
            non_taxable_code,
            "{}",
            entry.code
        );
        if non_taxable_code {
            assert_eq!(entry.rates, vec![TaxRate::NonTaxable], "{}", entry.code);
        }
        let statutory = [rate("13%"), rate("9%"), rate("6%")];
        match class {
            Some(TaxCodeClass::Labour) => assert!(entry.allows(&rate("13%")), "{}", entry.code),
            Some(TaxCodeClass::RealEstate) => {
                assert!(entry.allows(&rate("9%")), "{}", entry.code);
                assert!(
                    !entry.allows(&rate("1%")) && !entry.allows(&rate("3%")),
                    "{}",
                    entry.code
                );
            }
            Some(TaxCodeClass::NonTaxable) | None => {}
            _ => assert!(
                statutory.iter().any(|r| entry.allows(r)),
                "{} has no statutory rate",
                entry.code
            ),
        }
        assert!(
            !entry.name.is_empty() && !entry.short_name.is_empty(),
            "{}",
            entry.code
        );
    }
}

#[test]
fn bundled_is_the_same_catalog_each_time() {
    let a: Vec<CatalogEntry> = TaxCodeCatalog::bundled().iter().cloned().collect();
    let b: Vec<CatalogEntry> = TaxCodeCatalog::bundled().iter().cloned().collect();
    assert_eq!(a, b);
    assert!(
        a.windows(2).all(|w| w[0].code < w[1].code),
        "iteration is in code order"
    );
}

const CUSTOM: &str = r#"
version = "operator 2026-03"

[[code]]
code = "3040201010000000000"
name = "软件开发服务"
short_name = "信息技术服务"
rates = ["6%", "1%"]

[[code]]
code = " 6010000000000000000 "
name = " 预付卡销售和充值 "
short_name = "预付卡销售和充值"
rates = ["不征税"]
"#;

#[test]
fn an_operators_replacement_file_loads() {
    let catalog = TaxCodeCatalog::from_toml_str(CUSTOM).unwrap();
    assert_eq!(catalog.len(), 2);
    assert_eq!(catalog.version(), Some("operator 2026-03"));
    let software = catalog.get(&code("3040201010000000000")).unwrap();
    assert_eq!(software.rates, vec![rate("0.06"), rate("0.01")]);
    assert!(
        !software.allows(&rate("3%")),
        "the replacement, not the bundled file, decides"
    );
    let prepaid = catalog.get(&code("6010000000000000000")).unwrap();
    assert_eq!(prepaid.name, "预付卡销售和充值", "names are trimmed");
    assert!(catalog.get(&code("3070401000000000000")).is_none());
}

fn one(code: &str, name: &str, short_name: &str, rates: &str) -> String {
    format!(
        "[[code]]\ncode = \"{code}\"\nname = \"{name}\"\nshort_name = \"{short_name}\"\nrates = {rates}\n"
    )
}

#[test]
fn malformed_files_are_refused_with_a_message_naming_the_entry() {
    let good = one("3070401000000000000", "餐饮服务", "餐饮服务", r#"["6%"]"#);
    let cases: Vec<(String, &str)> = vec![
        (
            one("307040100000000000", "餐饮服务", "餐饮服务", r#"["6%"]"#),
            "19 digits",
        ),
        (
            one("30704010000000000X0", "餐饮服务", "餐饮服务", r#"["6%"]"#),
            "19 digits",
        ),
        (format!("{good}\n{good}"), "duplicate code"),
        (
            one("3070401000000000000", " ", "餐饮服务", r#"["6%"]"#),
            "name is empty",
        ),
        (
            one("3070401000000000000", "餐饮服务", "", r#"["6%"]"#),
            "short_name is empty",
        ),
        (
            one("3070401000000000000", "餐饮服务", "餐饮服务", "[]"),
            "rates is empty",
        ),
        (
            one("3070401000000000000", "餐饮服务", "餐饮服务", r#"["17%"]"#),
            "not one of the rates in force",
        ),
        (
            one("3070401000000000000", "餐饮服务", "餐饮服务", r#"["six"]"#),
            "not a number",
        ),
        (
            one(
                "3070401000000000000",
                "餐饮服务",
                "餐饮服务",
                r#"["6%", "0.06"]"#,
            ),
            "listed twice",
        ),
        (
            one(
                "3070401000000000000",
                "餐饮服务",
                "餐饮服务",
                r#"["6%", "不征税"]"#,
            ),
            "only on class-6",
        ),
        (
            one(
                "6010000000000000000",
                "预付卡销售和充值",
                "预付卡",
                r#"["不征税", "6%"]"#,
            ),
            "allows only 不征税",
        ),
        (
            one(
                "6010000000000000000",
                "预付卡销售和充值",
                "预付卡",
                r#"["免税"]"#,
            ),
            "allows only 不征税",
        ),
        (
            one("3070401000000000000", "餐饮服务", "*餐饮服务*", r#"["6%"]"#),
            "must not contain",
        ),
    ];
    for (text, want) in cases {
        let err = TaxCodeCatalog::from_toml_str(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{text}\n=> {err}");
        assert!(err.contains("entry"), "the message names the entry: {err}");
    }
    let second_bad = format!(
        "{good}\n{}",
        one("3070402000000000000", "住宿服务", "", r#"["6%"]"#)
    );
    let err = TaxCodeCatalog::from_toml_str(&second_bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("entry 2") && err.contains("3070402000000000000"),
        "{err}"
    );
}

#[test]
fn files_that_are_not_catalogs_are_refused() {
    for text in [
        "",
        "version = \"x\"",
        "not toml at all [",
        "[[code]]\ncode = 3070401000000000000\nname = \"a\"\nshort_name = \"a\"\nrates = [\"6%\"]",
        "[[code]]\ncode = \"3070401000000000000\"\nname = \"a\"\nrates = [\"6%\"]",
        "[[code]]\ncode = \"3070401000000000000\"\nname = \"a\"\nshort_name = \"a\"\nrates = [\"6%\"]\nrate = \"6%\"",
        "[[codes]]\ncode = \"3070401000000000000\"\nname = \"a\"\nshort_name = \"a\"\nrates = [\"6%\"]",
    ] {
        assert!(TaxCodeCatalog::from_toml_str(text).is_err(), "{text:?}");
    }
}

#[test]
fn printed_item_name_prefixes_the_short_name_once() {
    let software = bundled_entry("3040201010000000000");
    assert_eq!(
        software.printed_item_name("软件维护服务费"),
        "*信息技术服务*软件维护服务费"
    );
    assert_eq!(
        software.printed_item_name("  软件维护服务费 "),
        "*信息技术服务*软件维护服务费"
    );
    assert_eq!(
        software.printed_item_name("*信息技术服务*软件维护服务费"),
        "*信息技术服务*软件维护服务费"
    );
    assert_eq!(
        software.printed_item_name(" *信息技术服务*开发费"),
        "*信息技术服务*开发费"
    );
    // Another code's prefix is part of the name, not this entry's prefix.
    assert_eq!(
        software.printed_item_name("*餐饮服务*餐费"),
        "*信息技术服务**餐饮服务*餐费"
    );
    assert_eq!(
        bundled_entry("3070401000000000000").printed_item_name("餐费"),
        "*餐饮服务*餐费"
    );
}

proptest! {
    #[test]
    fn code_parse_never_panics_and_accepts_only_nineteen_digits(text in "\\PC{0,25}") {
        let parsed = TaxCode::parse(&text);
        let trimmed = text.trim();
        let valid = trimmed.len() == 19 && trimmed.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(parsed.is_ok(), valid);
        if let Ok(code) = parsed {
            prop_assert_eq!(code.as_str(), trimmed);
        }
    }

    #[test]
    fn any_nineteen_digits_round_trip(digits in "[0-9]{19}") {
        let code = TaxCode::parse(&digits).unwrap();
        prop_assert_eq!(code.to_string(), digits.clone());
        let want = match digits.as_bytes()[0] {
            b'1' => Some(TaxCodeClass::Goods),
            b'2' => Some(TaxCodeClass::Labour),
            b'3' => Some(TaxCodeClass::Services),
            b'4' => Some(TaxCodeClass::Intangibles),
            b'5' => Some(TaxCodeClass::RealEstate),
            b'6' => Some(TaxCodeClass::NonTaxable),
            _ => None,
        };
        prop_assert_eq!(code.class(), want);
    }

    #[test]
    fn catalog_parse_never_panics(text in "\\PC{0,200}") {
        let _ = TaxCodeCatalog::from_toml_str(&text);
    }

    #[test]
    fn printed_name_is_idempotent(name in "[^*\\s][^*]{0,20}") {
        let entry = bundled_entry("3070402000000000000");
        let once = entry.printed_item_name(&name);
        prop_assert_eq!(entry.printed_item_name(&once), once.clone());
        prop_assert!(once.starts_with("*住宿服务*"));
    }

    #[test]
    fn rate_parse_never_panics(text in "\\PC{0,30}") {
        if let Ok(rate) = TaxRate::parse(&text) {
            prop_assert!(TaxRate::IN_FORCE.contains(&rate));
            prop_assert_eq!(TaxRate::parse(&rate.xml_text()), Ok(rate));
        }
    }
}
