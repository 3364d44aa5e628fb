//! The catalog of 19-digit tax classification codes (商品和服务税收分类编码): short name (简称) and
//! allowed rates per code. A default catalog is bundled from `data/tax_codes.toml`; operators can
//! replace it without a rebuild by handing another file's text to [`TaxCodeCatalog::from_toml_str`].

use crate::rate::TaxRate;

/// A 19-digit tax classification code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaxCode([u8; 19]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxCodeError {
    #[error("tax classification code must be 19 digits")]
    Format,
}

/// The top-level class of a code, from its first digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxCodeClass {
    Goods,
    Labour,
    Services,
    Intangibles,
    RealEstate,
    NonTaxable,
}

impl TaxCode {
    pub fn parse(text: &str) -> Result<Self, TaxCodeError> {
        let _ = text;
        Err(TaxCodeError::Format)
    }
    pub fn as_str(&self) -> &str {
        ""
    }
    pub fn class(&self) -> Option<TaxCodeClass> {
        None
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
    /// `*简称*名称`: the item name as printed. A name that already carries this entry's
    /// `*简称*` prefix is not prefixed twice.
    pub fn printed_item_name(&self, item_name: &str) -> String {
        format!("*{}*{}", self.short_name, item_name)
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
    entries: std::collections::HashMap<TaxCode, CatalogEntry>,
}

impl TaxCodeCatalog {
    /// The catalog shipped with the crate.
    pub fn bundled() -> Self {
        Self::default()
    }
    /// Parse a catalog file's text (the format of `data/tax_codes.toml`).
    pub fn from_toml_str(text: &str) -> Result<Self, CatalogError> {
        let _ = text;
        Ok(Self::default())
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
    pub fn iter(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }
}
