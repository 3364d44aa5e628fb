//! Seller profiles: the sellers this deployment issues for, with the name, address, phone and bank
//! details printed on their invoices. A request names only the seller's tax id; the rest comes from
//! here, so callers cannot print someone else's details.

use fapiao_invoice::model::SellerDraft;
use fapiao_invoice::taxpayer::TaxpayerId;
use serde::Deserialize;
use std::collections::HashMap;

/// One seller as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SellerProfile {
    /// 统一社会信用代码/纳税人识别号.
    pub tax_id: String,
    /// 销售方名称.
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub bank_name: String,
    #[serde(default)]
    pub bank_account: String,
}

impl SellerProfile {
    /// The sandbox seller of the embedded defaults. Its tax id passes the GB 32100 check but is
    /// made up; it exists so that a fresh `fapiao serve` can be tried without configuration.
    pub fn demo() -> Self {
        Self {
            tax_id: "91310000MA1FP00011".into(),
            name: "上海发票示例科技有限公司".into(),
            address: "上海市浦东新区示例路1号".into(),
            phone: "021-00000000".into(),
            bank_name: "示例银行上海分行".into(),
            bank_account: "310000000000000000".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SellerConfigError {
    #[error("seller profile {index} has an invalid tax id: {reason}")]
    TaxId { index: usize, reason: String },
    #[error("seller profile {index} has no name")]
    Name { index: usize },
    #[error("seller {tax_id} is configured twice")]
    Duplicate { tax_id: String },
}

/// The configured sellers, by normalised tax id.
#[derive(Debug, Clone, Default)]
pub struct SellerDirectory {
    by_tax_id: HashMap<TaxpayerId, SellerProfile>,
}

impl SellerDirectory {
    /// Check every profile once, at start-up, so a bad profile stops the service instead of
    /// failing requests later.
    pub fn new(profiles: &[SellerProfile]) -> Result<Self, SellerConfigError> {
        let mut by_tax_id = HashMap::with_capacity(profiles.len());
        for (index, profile) in profiles.iter().enumerate() {
            let id = TaxpayerId::parse(&profile.tax_id).map_err(|e| SellerConfigError::TaxId {
                index,
                reason: e.to_string(),
            })?;
            if profile.name.trim().is_empty() {
                return Err(SellerConfigError::Name { index });
            }
            let normalised = SellerProfile {
                tax_id: id.as_str().to_owned(),
                ..profile.clone()
            };
            if by_tax_id.insert(id.clone(), normalised).is_some() {
                return Err(SellerConfigError::Duplicate {
                    tax_id: id.to_string(),
                });
            }
        }
        Ok(Self { by_tax_id })
    }

    pub fn get(&self, tax_id: &TaxpayerId) -> Option<&SellerProfile> {
        self.by_tax_id.get(tax_id)
    }

    /// The configured sellers' tax ids, in order.
    pub fn tax_ids(&self) -> Vec<TaxpayerId> {
        let mut ids: Vec<TaxpayerId> = self.by_tax_id.keys().cloned().collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids
    }

    pub fn len(&self) -> usize {
        self.by_tax_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tax_id.is_empty()
    }
}

impl From<&SellerProfile> for SellerDraft {
    fn from(p: &SellerProfile) -> Self {
        SellerDraft {
            tax_id: p.tax_id.clone(),
            name: p.name.clone(),
            address: p.address.clone(),
            phone: p.phone.clone(),
            bank_name: p.bank_name.clone(),
            bank_account: p.bank_account.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_checked_and_found_by_normalised_id() {
        let dir = SellerDirectory::new(&[SellerProfile::demo()]).unwrap();
        let id = TaxpayerId::parse(" 91310000ma1fp00011 ").unwrap();
        assert_eq!(
            dir.get(&id).map(|p| p.name.as_str()),
            Some("上海发票示例科技有限公司")
        );

        let bad_id = SellerProfile {
            tax_id: "91310000MA1FP00012".into(),
            ..SellerProfile::demo()
        };
        assert!(matches!(
            SellerDirectory::new(&[bad_id]),
            Err(SellerConfigError::TaxId { index: 0, .. })
        ));
        let no_name = SellerProfile {
            name: " ".into(),
            ..SellerProfile::demo()
        };
        assert!(matches!(
            SellerDirectory::new(&[no_name]),
            Err(SellerConfigError::Name { index: 0 })
        ));
        assert!(matches!(
            SellerDirectory::new(&[SellerProfile::demo(), SellerProfile::demo()]),
            Err(SellerConfigError::Duplicate { .. })
        ));
    }
}
