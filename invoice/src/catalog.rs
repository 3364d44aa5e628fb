//! The catalog of 19-digit tax classification codes (商品和服务税收分类编码): short name (简称) and
//! allowed rates per code. A default catalog is bundled from `data/tax_codes.toml`; operators can
//! replace it without a rebuild by handing another file's text to [`TaxCodeCatalog::from_toml_str`].
//!
//! It owns the code's syntax, the class encoded in its first digit, the catalog file format and
//! the consistency rules a catalog must meet to be loaded (see [`TaxCodeCatalog::from_toml_str`]).
//! It must not read files: whoever loads an operator's replacement passes its text in.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::rate::TaxRate;

/// Number of digits of a tax classification code.
const CODE_LEN: usize = 19;

/// A 19-digit tax classification code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaxCode([u8; CODE_LEN]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxCodeError {
    #[error("tax classification code must be 19 digits")]
    Format,
}

impl TaxCodeError {
    /// Stable machine code, the suffix of the violation codes built from it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format => "TAX_CODE_FORMAT",
        }
    }

    /// The message shown to a Chinese-speaking operator.
    pub fn message_zh(&self) -> String {
        match self {
            Self::Format => "税收分类编码必须为19位数字".to_owned(),
        }
    }
}

/// The top-level class of a code, from its first digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxCodeClass {
    /// 1 货物.
    Goods,
    /// 2 劳务 (processing, repair and replacement).
    Labour,
    /// 3 销售服务.
    Services,
    /// 4 无形资产.
    Intangibles,
    /// 5 不动产.
    RealEstate,
    /// 6 未发生销售行为的不征税项目.
    NonTaxable,
}

impl TaxCode {
    /// Exactly 19 ASCII digits once surrounding whitespace is trimmed.
    pub fn parse(text: &str) -> Result<Self, TaxCodeError> {
        let digits: [u8; CODE_LEN] = text
            .trim()
            .as_bytes()
            .try_into()
            .map_err(|_| TaxCodeError::Format)?;
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(Self(digits))
        } else {
            Err(TaxCodeError::Format)
        }
    }

    pub fn as_str(&self) -> &str {
        // `parse` admits ASCII digits only, so this never falls back; the fallback keeps the
        // function total without an unwrap.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn class(&self) -> Option<TaxCodeClass> {
        match self.0[0] {
            b'1' => Some(TaxCodeClass::Goods),
            b'2' => Some(TaxCodeClass::Labour),
            b'3' => Some(TaxCodeClass::Services),
            b'4' => Some(TaxCodeClass::Intangibles),
            b'5' => Some(TaxCodeClass::RealEstate),
            b'6' => Some(TaxCodeClass::NonTaxable),
            _ => None,
        }
    }
}

impl std::fmt::Display for TaxCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One code of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub code: TaxCode,
    /// 商品和服务名称 (the full name of the code).
    pub name: String,
    /// 商品和服务分类简称, printed between asterisks.
    pub short_name: String,
    /// Rates a taxpayer may use with this code.
    pub rates: Vec<TaxRate>,
}

impl CatalogEntry {
    pub fn allows(&self, rate: &TaxRate) -> bool {
        self.rates.contains(rate)
    }

    /// `*简称*名称`: the item name as printed, trimmed. A name that already carries this entry's
    /// `*简称*` prefix (a re-issued or copied line) is not prefixed twice.
    pub fn printed_item_name(&self, item_name: &str) -> String {
        let name = item_name.trim();
        let prefix = format!("*{}*", self.short_name);
        if name.starts_with(&prefix) {
            name.to_owned()
        } else {
            format!("{prefix}{name}")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog file is not valid: {0}")]
    Parse(String),
}

/// The codes a deployment accepts.
#[derive(Debug, Clone, Default)]
pub struct TaxCodeCatalog {
    // Ordered so that iteration, and anything listed from it, is stable across runs.
    entries: BTreeMap<TaxCode, CatalogEntry>,
    version: Option<String>,
}

/// The catalog shipped with the crate; see the header of the file for its rules.
const BUNDLED_TOML: &str = include_str!("../data/tax_codes.toml");

/// The file format: an optional `version`, then one `[[code]]` table per code.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: Option<String>,
    #[serde(default)]
    code: Vec<RawEntry>,
}

/// One `[[code]]` table as written; checked by [`check_entry`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    code: String,
    name: String,
    short_name: String,
    rates: Vec<String>,
}

impl TaxCodeCatalog {
    /// The catalog shipped with the crate, parsed once per process.
    pub fn bundled() -> Self {
        static BUNDLED: OnceLock<TaxCodeCatalog> = OnceLock::new();
        BUNDLED
            .get_or_init(|| {
                // The text is compiled in, not user input: a failure is a build defect, and the
                // `bundled_catalog_parses` test fails first.
                Self::from_toml_str(BUNDLED_TOML)
                    .expect("the bundled data/tax_codes.toml must be a valid catalog")
            })
            .clone()
    }

    /// Parse a catalog file's text (the format of `data/tax_codes.toml`).
    ///
    /// The whole file is refused, with a message naming the entry, when a code is not 19 digits
    /// or appears twice, a name or short name is empty, the rate list is empty, repeats a rate or
    /// holds a rate not in force, 不征税 is listed for a code outside class 6, or a class-6 code
    /// lists anything but 不征税. A file without any code is refused too: loading it would reject
    /// every invoice.
    pub fn from_toml_str(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        if file.code.is_empty() {
            return Err(CatalogError::Parse(
                "the file has no [[code]] entry".to_owned(),
            ));
        }
        let mut entries = BTreeMap::new();
        for (index, raw) in file.code.into_iter().enumerate() {
            let entry = check_entry(raw).map_err(|(code, why)| {
                CatalogError::Parse(format!(
                    "[[code]] entry {} (code {code:?}): {why}",
                    index + 1
                ))
            })?;
            let code = entry.code;
            if entries.insert(code, entry).is_some() {
                return Err(CatalogError::Parse(format!(
                    "[[code]] entry {} (code \"{code}\"): duplicate code",
                    index + 1
                )));
            }
        }
        let version = file
            .version
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        Ok(Self { entries, version })
    }

    /// The `version` line of the file, if it has one (e.g. the date of the official table).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    pub fn get(&self, code: &TaxCode) -> Option<&CatalogEntry> {
        self.entries.get(code)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in code order.
    pub fn iter(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }
}

/// Validate one raw entry; on failure, the code as written and the reason.
fn check_entry(raw: RawEntry) -> Result<CatalogEntry, (String, String)> {
    let fail = |why: String| (raw.code.clone(), why);
    let code = TaxCode::parse(&raw.code).map_err(|_| fail("code must be 19 digits".to_owned()))?;
    let class = code
        .class()
        .ok_or_else(|| fail("code must start with a class digit 1 to 6".to_owned()))?;
    let name = raw.name.trim();
    if name.is_empty() {
        return Err(fail("name is empty".to_owned()));
    }
    let short_name = raw.short_name.trim();
    if short_name.is_empty() {
        return Err(fail("short_name is empty".to_owned()));
    }
    if short_name.contains('*') {
        return Err(fail(
            "short_name must not contain '*', which delimits it on the invoice".to_owned(),
        ));
    }
    if raw.rates.is_empty() {
        return Err(fail("rates is empty".to_owned()));
    }
    let mut rates = Vec::with_capacity(raw.rates.len());
    for text in &raw.rates {
        let rate = TaxRate::parse(text).map_err(|e| fail(format!("rate {text:?}: {e}")))?;
        if rates.contains(&rate) {
            return Err(fail(format!("rate {text:?} is listed twice")));
        }
        match (
            class == TaxCodeClass::NonTaxable,
            rate == TaxRate::NonTaxable,
        ) {
            (true, false) => {
                return Err(fail(format!(
                    "a class-6 code allows only 不征税, not {text:?}"
                )));
            }
            (false, true) => {
                return Err(fail("不征税 is allowed only on class-6 codes".to_owned()));
            }
            _ => {}
        }
        rates.push(rate);
    }
    Ok(CatalogEntry {
        code,
        name: name.to_owned(),
        short_name: short_name.to_owned(),
        rates,
    })
}

serde_as_text!(TaxCode, TaxCode::as_str, TaxCode::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_catalog_parses() {
        let parsed = TaxCodeCatalog::from_toml_str(BUNDLED_TOML);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert_eq!(
            TaxCodeCatalog::bundled().len(),
            parsed.map(|c| c.len()).unwrap_or_default()
        );
    }

    #[test]
    fn code_parses_nineteen_digits_only() {
        let code = TaxCode::parse(" 3040201010000000000\n").unwrap();
        assert_eq!(code.as_str(), "3040201010000000000");
        assert_eq!(code.to_string(), "3040201010000000000");
        for bad in [
            "",
            "304020101000000000",
            "30402010100000000000",
            "304020101000000000a",
            "3040201010 000000000",
            "３040201010000000000",
            "-304020101000000000",
        ] {
            assert_eq!(TaxCode::parse(bad), Err(TaxCodeError::Format), "{bad:?}");
        }
        assert_eq!(TaxCodeError::Format.code(), "TAX_CODE_FORMAT");
        assert!(TaxCodeError::Format.message_zh().contains("19"));
    }

    #[test]
    fn class_follows_the_first_digit() {
        let class = |s: &str| TaxCode::parse(s).unwrap().class();
        assert_eq!(class("1090509010000000000"), Some(TaxCodeClass::Goods));
        assert_eq!(class("2010100000000000000"), Some(TaxCodeClass::Labour));
        assert_eq!(class("3070401000000000000"), Some(TaxCodeClass::Services));
        assert_eq!(
            class("4010100000000000000"),
            Some(TaxCodeClass::Intangibles)
        );
        assert_eq!(class("5010101000000000000"), Some(TaxCodeClass::RealEstate));
        assert_eq!(class("6010000000000000000"), Some(TaxCodeClass::NonTaxable));
        assert_eq!(class("0000000000000000000"), None);
        assert_eq!(class("7000000000000000000"), None);
    }

    #[test]
    fn a_code_outside_the_classes_is_refused_by_the_catalog() {
        let text = "[[code]]\ncode = \"9000000000000000000\"\nname = \"x\"\nshort_name = \"x\"\nrates = [\"6%\"]\n";
        let err = TaxCodeCatalog::from_toml_str(text).unwrap_err();
        assert!(err.to_string().contains("class digit"), "{err}");
    }
}
