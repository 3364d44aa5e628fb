//! Builders shared by the integration tests of the domain crate.
#![allow(dead_code)]

use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::model::{
    BuyerDraft, InvoiceDraft, InvoiceKind, LineDraft, LineNature, PricingMode, SellerDraft,
};

/// Goods at the general rate (电子计算机整机). The codes are real ones from the bundled catalog.
pub const GOODS: &str = "1090509010000000000";
/// Software development, an IT service.
pub const SOFTWARE: &str = "3040201010000000000";
/// Catering.
pub const CATERING: &str = "3070401000000000000";
/// Agricultural produce, which may be exempt.
pub const VEGETABLES: &str = "1010112020000000000";

/// A small catalog whose contents the tests control, in the operators' file format.
pub fn catalog() -> TaxCodeCatalog {
    TaxCodeCatalog::from_toml_str(&format!(
        r#"
[[code]]
code = "{GOODS}"
name = "电子计算机整机"
short_name = "电子计算机"
rates = ["13%", "3%", "1%", "0%"]

[[code]]
code = "{SOFTWARE}"
name = "软件开发服务"
short_name = "信息技术服务"
rates = ["6%", "3%", "1%", "0%"]

[[code]]
code = "{CATERING}"
name = "餐饮服务"
short_name = "餐饮服务"
rates = ["6%", "3%", "1%"]

[[code]]
code = "{VEGETABLES}"
name = "山药等薯芋类蔬菜"
short_name = "蔬菜"
rates = ["9%", "3%", "1%", "免税"]
"#
    ))
    .expect("the test catalog parses")
}

pub const SELLER_TAX_ID: &str = "91350100M000100Y43";
pub const BUYER_TAX_ID: &str = "91110302MA01NP925M";

pub fn line(code: &str, name: &str, amount: &str, rate: &str) -> LineDraft {
    LineDraft {
        item_name: name.into(),
        tax_code: code.into(),
        amount: amount.into(),
        tax_rate: rate.into(),
        nature: LineNature::Normal,
        ..Default::default()
    }
}

pub fn priced(
    code: &str,
    name: &str,
    qty: &str,
    price: &str,
    amount: &str,
    rate: &str,
) -> LineDraft {
    LineDraft {
        quantity: qty.into(),
        unit_price: price.into(),
        unit: "台".into(),
        ..line(code, name, amount, rate)
    }
}

/// A valid 普票, tax-exclusive, with the given lines.
pub fn draft(lines: Vec<LineDraft>) -> InvoiceDraft {
    InvoiceDraft {
        request_id: "ORDER-20261121-0001".into(),
        kind: Some(InvoiceKind::General),
        seller: SellerDraft {
            tax_id: SELLER_TAX_ID.into(),
            name: "福州某某科技有限公司".into(),
            address: "福州市鼓楼区某路1号".into(),
            phone: "0591-88888888".into(),
            bank_name: "某银行福州分行".into(),
            bank_account: "6222000000000000".into(),
        },
        buyer: BuyerDraft {
            name: "北京某某信息技术有限公司".into(),
            tax_id: BUYER_TAX_ID.into(),
            email: "finance@example.com".into(),
            ..Default::default()
        },
        pricing: Some(PricingMode::TaxExclusive),
        lines,
        remark: String::new(),
        drawer: "张三".into(),
        payee: String::new(),
        reviewer: String::new(),
    }
}
