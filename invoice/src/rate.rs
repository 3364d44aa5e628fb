//! VAT rates and levy rates (税率/征收率), including 免税 and 不征税.
//!
//! It owns the set of rates in force, the parsing of every spelling seen in the wild (`0.13`,
//! `0.130000`, `13%`, `13％`, `免税`, `不征税`) into one normalised value, and the two printed
//! forms: the XML `TaxRate` text and the percentage on the layout. Whether a rate may be used with
//! a given tax classification code is the catalog's business ([`crate::catalog`]), not this
//! module's. It does no arithmetic beyond scaling by 100 and never uses floats.

use rust_decimal::Decimal;

/// A rate as printed on an invoice line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxRate {
    /// A percentage rate held as a fraction: `0.13` for 13%, `0.015` for 1.5%, `0` for 0%.
    /// Values built by [`TaxRate::parse`] are normalised (no trailing zeros), so equal rates
    /// print the same.
    Percent(Decimal),
    /// 免税: exempt; the tax is zero and the rate prints as `免税`.
    Exempt,
    /// 不征税: non-taxable item (6-prefix codes); the tax is zero and the rate prints as `不征税`.
    NonTaxable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxRateError {
    #[error("tax rate is empty")]
    Empty,
    #[error("tax rate is not a number, a percentage, 免税 or 不征税")]
    Format,
    #[error("tax rate is not one of the rates in force")]
    Unknown,
}

impl TaxRateError {
    /// Stable machine code, the suffix of the violation codes built from it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "TAX_RATE_REQUIRED",
            Self::Format => "TAX_RATE_FORMAT",
            Self::Unknown => "TAX_RATE_UNKNOWN",
        }
    }

    /// The message shown to a Chinese-speaking operator.
    pub fn message_zh(&self) -> String {
        match self {
            Self::Empty => "税率不能为空".to_owned(),
            Self::Format => {
                "税率格式不正确，应为小数（如0.13）、百分数（如13%）、免税或不征税".to_owned()
            }
            Self::Unknown => {
                "税率不是现行有效的税率或征收率（13%、9%、6%、5%、3%、2%、1.5%、1%、0%）".to_owned()
            }
        }
    }
}

/// Text of the exempt rate, on the layout and in the XML.
const EXEMPT_TEXT: &str = "免税";
/// Text of the non-taxable rate, on the layout and in the XML.
const NON_TAXABLE_TEXT: &str = "不征税";

/// A normalised fraction `mantissa / 10^scale`, usable in constants.
const fn fraction(mantissa: u32, scale: u32) -> TaxRate {
    TaxRate::Percent(Decimal::from_parts(mantissa, 0, 0, false, scale))
}

impl TaxRate {
    /// 13%: goods, processing/repair labour, tangible-movable leasing.
    pub const GENERAL: TaxRate = fraction(13, 2);
    /// 9%: transport, postal, basic telecom, construction, real estate, listed goods.
    pub const REDUCED_9: TaxRate = fraction(9, 2);
    /// 6%: other services and intangibles.
    pub const REDUCED_6: TaxRate = fraction(6, 2);
    /// 5%: levy rate for listed real-estate sales and leases.
    pub const LEVY_5: TaxRate = fraction(5, 2);
    /// 3%: statutory levy rate of the simplified method.
    pub const LEVY_3: TaxRate = fraction(3, 2);
    /// 2%: 3% reduced to 2% (used fixed assets, 旧货).
    pub const LEVY_2: TaxRate = fraction(2, 2);
    /// 1.5%: 5% reduced to 1.5% (individuals renting out housing).
    pub const LEVY_1_5: TaxRate = fraction(15, 3);
    /// 1%: small-scale taxpayers' 3% reduced to 1% (2026–2027).
    pub const LEVY_1: TaxRate = fraction(1, 2);
    /// 0%: exports and listed cross-border services.
    pub const ZERO: TaxRate = fraction(0, 0);

    /// Every rate [`TaxRate::parse`] accepts, highest first, then 免税 and 不征税.
    pub const IN_FORCE: [TaxRate; 11] = [
        Self::GENERAL,
        Self::REDUCED_9,
        Self::REDUCED_6,
        Self::LEVY_5,
        Self::LEVY_3,
        Self::LEVY_2,
        Self::LEVY_1_5,
        Self::LEVY_1,
        Self::ZERO,
        Self::Exempt,
        Self::NonTaxable,
    ];

    /// Parse a rate as files written by others spell it (surrounding whitespace ignored); what a
    /// caller sends is read with [`TaxRate::parse_strict`]. Accepted spellings:
    /// - a fraction with a leading digit: `0.13`, `0.130000`, `0`, `0.00`;
    /// - a percentage: `13%`, `1.5%`, `0%`, also with the full-width `％` and spaces before the
    ///   sign;
    /// - the texts `免税` and `不征税`.
    ///
    /// A bare leading point (`.13`) and a trailing point (`13.`) are refused as `Format`: no
    /// platform or provider writes them, so they more likely hide a typo than a rate. A
    /// well-formed number that is not a rate in force (13, 9, 6, 5, 3, 2, 1.5, 1, 0 percent),
    /// including a negative one or a fraction above 1, is `Unknown`.
    pub fn parse(text: &str) -> Result<Self, TaxRateError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TaxRateError::Empty);
        }
        if text == EXEMPT_TEXT {
            return Ok(Self::Exempt);
        }
        if text == NON_TAXABLE_TEXT {
            return Ok(Self::NonTaxable);
        }
        let (number, is_percent) = match text.strip_suffix('%').or_else(|| text.strip_suffix('％'))
        {
            Some(number) => (number.trim_end(), true),
            None => (text, false),
        };
        let (negative, digits) = match number.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, number.strip_prefix('+').unwrap_or(number)),
        };
        if !is_plain_decimal(digits) {
            return Err(TaxRateError::Format);
        }
        if negative {
            return Err(TaxRateError::Unknown);
        }
        // A syntactically valid number too long for a Decimal is certainly not a rate in force.
        let value: Decimal = digits.parse().map_err(|_| TaxRateError::Unknown)?;
        let value = if is_percent {
            value
                .checked_div(Decimal::ONE_HUNDRED)
                .ok_or(TaxRateError::Unknown)?
        } else {
            value
        };
        let candidate = Self::Percent(value.normalize());
        Self::IN_FORCE
            .into_iter()
            .find(|rate| *rate == candidate)
            .ok_or(TaxRateError::Unknown)
    }

    /// Parse a rate as the wire contract allows it: the spellings of [`TaxRate::parse`] with no
    /// whitespace anywhere, so `" 6%"` and `"6 %"` are `Format` and what a caller sent is exactly
    /// what was read. Only the empty text is `Empty`.
    pub fn parse_strict(text: &str) -> Result<Self, TaxRateError> {
        if text.is_empty() {
            return Err(TaxRateError::Empty);
        }
        if text.chars().any(char::is_whitespace) {
            return Err(TaxRateError::Format);
        }
        Self::parse(text)
    }

    /// The multiplier used for tax: the fraction, or zero for 免税 and 不征税.
    pub fn fraction(&self) -> Decimal {
        match self {
            Self::Percent(f) => *f,
            Self::Exempt | Self::NonTaxable => Decimal::ZERO,
        }
    }

    /// The text of the XML `TaxRate` element: `0.13`, `0.09`, `0.015`, `0.01`, `0`, `免税`,
    /// `不征税`.
    ///
    /// A non-zero rate always has at least two decimals (`0.13`, never `0.130000`; `0.015` keeps
    /// its third) because that is what the platform's own XML shows; zero is written `0`.
    /// [`TaxRate::parse`] reads every output back to the same value.
    pub fn xml_text(&self) -> String {
        match self {
            Self::Percent(f) => {
                let f = f.normalize();
                if f.is_zero() {
                    "0".to_owned()
                } else if f.scale() < 2 {
                    let mut padded = f;
                    padded.rescale(2);
                    padded.to_string()
                } else {
                    f.to_string()
                }
            }
            Self::Exempt => EXEMPT_TEXT.to_owned(),
            Self::NonTaxable => NON_TAXABLE_TEXT.to_owned(),
        }
    }

    /// The rate as printed on the layout: `13%`, `1.5%`, `0%`, `免税`, `不征税`.
    pub fn display_percent(&self) -> String {
        match self {
            Self::Percent(f) => match f.checked_mul(Decimal::ONE_HUNDRED) {
                Some(percent) => format!("{}%", percent.normalize()),
                // Only a hand-built fraction near Decimal::MAX gets here; show it as a fraction
                // rather than lose it.
                None => f.normalize().to_string(),
            },
            Self::Exempt => EXEMPT_TEXT.to_owned(),
            Self::NonTaxable => NON_TAXABLE_TEXT.to_owned(),
        }
    }
}

/// `digits` or `digits.digits`, ASCII only: the only number shapes a rate may take.
fn is_plain_decimal(text: &str) -> bool {
    let (whole, decimals) = match text.split_once('.') {
        Some((whole, decimals)) => (whole, Some(decimals)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && decimals.is_none_or(all_digits)
}

impl std::fmt::Display for TaxRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display_percent())
    }
}

impl std::str::FromStr for TaxRate {
    type Err = TaxRateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

serde_as_text!(TaxRate, TaxRate::xml_text, TaxRate::parse);

#[cfg(test)]
mod tests {
    use super::*;

    /// A decimal from its text; the crate does not enable rust_decimal's `dec!` macro.
    fn d(text: &str) -> Decimal {
        text.parse().expect("a decimal literal")
    }

    fn pct(d: Decimal) -> TaxRate {
        TaxRate::Percent(d)
    }

    #[test]
    fn fractions_of_every_rate_in_force_parse() {
        let cases = [
            ("0.13", d("0.13")),
            ("0.09", d("0.09")),
            ("0.06", d("0.06")),
            ("0.05", d("0.05")),
            ("0.03", d("0.03")),
            ("0.02", d("0.02")),
            ("0.015", d("0.015")),
            ("0.01", d("0.01")),
            ("0", d("0")),
            ("0.00", d("0")),
            ("0.130000", d("0.13")),
            ("0.015000", d("0.015")),
            ("+0.06", d("0.06")),
        ];
        for (text, want) in cases {
            assert_eq!(TaxRate::parse(text), Ok(pct(want)), "{text}");
        }
    }

    #[test]
    fn percentages_parse_with_ascii_or_full_width_sign() {
        let cases = [
            ("13%", d("0.13")),
            ("9%", d("0.09")),
            ("6%", d("0.06")),
            ("5%", d("0.05")),
            ("3%", d("0.03")),
            ("2%", d("0.02")),
            ("1.5%", d("0.015")),
            ("1%", d("0.01")),
            ("0%", d("0")),
            ("13.00%", d("0.13")),
            ("13％", d("0.13")),
            ("1.5 %", d("0.015")),
            ("  6%\t", d("0.06")),
        ];
        for (text, want) in cases {
            assert_eq!(TaxRate::parse(text), Ok(pct(want)), "{text}");
        }
    }

    #[test]
    fn exempt_and_non_taxable_texts_parse() {
        assert_eq!(TaxRate::parse("免税"), Ok(TaxRate::Exempt));
        assert_eq!(TaxRate::parse(" 免税 "), Ok(TaxRate::Exempt));
        assert_eq!(TaxRate::parse("不征税"), Ok(TaxRate::NonTaxable));
        assert_eq!(TaxRate::parse("\u{3000}不征税\n"), Ok(TaxRate::NonTaxable));
    }

    #[test]
    fn strict_parsing_refuses_whitespace_anywhere() {
        for text in [
            "6 %",
            " 6%",
            "6% ",
            "\t0.13",
            "0.13\n",
            "1.5 ％",
            " 免税 ",
            "\u{3000}不征税",
            " ",
            "\t",
        ] {
            assert_eq!(
                TaxRate::parse_strict(text),
                Err(TaxRateError::Format),
                "{text:?}"
            );
        }
        assert_eq!(TaxRate::parse_strict(""), Err(TaxRateError::Empty));
        assert_eq!(TaxRate::parse_strict("17%"), Err(TaxRateError::Unknown));
        assert_eq!(TaxRate::parse_strict("abc"), Err(TaxRateError::Format));
        for rate in TaxRate::IN_FORCE {
            assert_eq!(TaxRate::parse_strict(&rate.xml_text()), Ok(rate), "{rate}");
            assert_eq!(
                TaxRate::parse_strict(&rate.display_percent()),
                Ok(rate),
                "{rate}"
            );
        }
        assert_eq!(TaxRate::parse_strict("13％"), Ok(TaxRate::GENERAL));
        assert_eq!(TaxRate::parse_strict("0.130000"), Ok(TaxRate::GENERAL));
    }

    #[test]
    fn spellings_of_one_rate_are_equal_and_print_the_same() {
        let a = TaxRate::parse("0.130000").unwrap();
        let b = TaxRate::parse("13%").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.xml_text(), b.xml_text());
        assert_eq!(a.display_percent(), b.display_percent());
        assert_eq!(a, TaxRate::GENERAL);
    }

    #[test]
    fn empty_text_is_empty() {
        for text in ["", "   ", "\t\n", "\u{3000}"] {
            assert_eq!(TaxRate::parse(text), Err(TaxRateError::Empty), "{text:?}");
        }
    }

    #[test]
    fn garbage_is_format() {
        for text in [
            "abc", "%", "％", "13%%", ".13", "13.", "0..1", "0.1.3", "1e-1", "0,13", "十三%", "免",
            "免税%", "--0.13", "- 0.13", "0x0D", "１３%", "13 %%", "NaN", "inf",
        ] {
            assert_eq!(TaxRate::parse(text), Err(TaxRateError::Format), "{text:?}");
        }
    }

    #[test]
    fn numbers_not_in_force_are_unknown() {
        for text in [
            "17%",
            "11%",
            "16%",
            "10%",
            "4%",
            "0.17",
            "0.11",
            "0.04",
            "-0.13",
            "-13%",
            "-0",
            "1",
            "1.3",
            "13",
            "100%",
            "0.5%",
            "0.131",
            "0.0130",
            "99999999999999999999999999999999999",
        ] {
            assert_eq!(TaxRate::parse(text), Err(TaxRateError::Unknown), "{text:?}");
        }
    }

    #[test]
    fn error_codes_and_messages() {
        assert_eq!(TaxRateError::Empty.code(), "TAX_RATE_REQUIRED");
        assert_eq!(TaxRateError::Format.code(), "TAX_RATE_FORMAT");
        assert_eq!(TaxRateError::Unknown.code(), "TAX_RATE_UNKNOWN");
        for e in [
            TaxRateError::Empty,
            TaxRateError::Format,
            TaxRateError::Unknown,
        ] {
            assert!(e.message_zh().contains("税率"), "{e:?}");
        }
    }

    #[test]
    fn xml_text_of_every_rate() {
        let want = [
            "0.13",
            "0.09",
            "0.06",
            "0.05",
            "0.03",
            "0.02",
            "0.015",
            "0.01",
            "0",
            "免税",
            "不征税",
        ];
        let got: Vec<String> = TaxRate::IN_FORCE.iter().map(TaxRate::xml_text).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn xml_text_pads_a_hand_built_fraction_to_two_decimals() {
        assert_eq!(pct(d("0.1")).xml_text(), "0.10");
        assert_eq!(pct(d("0.130000")).xml_text(), "0.13");
        assert_eq!(pct(d("0.000")).xml_text(), "0");
    }

    #[test]
    fn display_percent_of_every_rate() {
        let want = [
            "13%",
            "9%",
            "6%",
            "5%",
            "3%",
            "2%",
            "1.5%",
            "1%",
            "0%",
            "免税",
            "不征税",
        ];
        let got: Vec<String> = TaxRate::IN_FORCE
            .iter()
            .map(TaxRate::display_percent)
            .collect();
        assert_eq!(got, want);
        assert_eq!(TaxRate::LEVY_1_5.to_string(), "1.5%");
    }

    #[test]
    fn every_printed_form_parses_back() {
        for rate in TaxRate::IN_FORCE {
            assert_eq!(TaxRate::parse(&rate.xml_text()), Ok(rate), "{rate}");
            assert_eq!(TaxRate::parse(&rate.display_percent()), Ok(rate), "{rate}");
        }
    }

    #[test]
    fn in_force_constants_are_normalised() {
        for rate in TaxRate::IN_FORCE {
            if let TaxRate::Percent(f) = rate {
                assert_eq!(f, f.normalize());
                assert_eq!(f.scale(), f.normalize().scale(), "{rate}");
            }
        }
    }

    #[test]
    fn fraction_is_zero_for_exempt_and_non_taxable() {
        assert_eq!(TaxRate::Exempt.fraction(), Decimal::ZERO);
        assert_eq!(TaxRate::NonTaxable.fraction(), Decimal::ZERO);
        assert_eq!(TaxRate::LEVY_1_5.fraction(), d("0.015"));
    }

    #[test]
    fn serde_uses_the_xml_text() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Line {
            rate: TaxRate,
        }
        let text = toml::to_string(&Line {
            rate: TaxRate::GENERAL,
        })
        .unwrap();
        assert_eq!(text.trim(), r#"rate = "0.13""#);
        for rate in TaxRate::IN_FORCE {
            let back: Line = toml::from_str(&toml::to_string(&Line { rate }).unwrap()).unwrap();
            assert_eq!(back.rate, rate);
        }
        let spelled: Line = toml::from_str(r#"rate = "13%""#).unwrap();
        assert_eq!(spelled.rate, TaxRate::GENERAL);
        assert!(toml::from_str::<Line>(r#"rate = "17%""#).is_err());
        assert!(toml::from_str::<Line>("rate = 0.13").is_err());
    }
}
