//! The domain's hot path: what every IssueInvoice pays before any I/O.
//!
//! `cargo bench -p fapiao-invoice --bench domain`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fapiao_invoice::capitals::amount_in_capitals;
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{
    BuyerDraft, InvoiceDraft, InvoiceKind, LineDraft, LineNature, PricingMode, SellerDraft,
};
use fapiao_invoice::redletter::{ReversalScope, plan_reversal};
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_invoice::validate::Validator;
use rust_decimal::Decimal;
use std::hint::black_box;

/// A typical e-commerce invoice: five lines, one of them discounted.
fn typical_draft() -> InvoiceDraft {
    let line =
        |name: &str, code: &str, qty: &str, price: &str, amount: &str, rate: &str| LineDraft {
            item_name: name.into(),
            tax_code: code.into(),
            quantity: qty.into(),
            unit_price: price.into(),
            amount: amount.into(),
            tax_rate: rate.into(),
            unit: "件".into(),
            ..Default::default()
        };
    let mut lines = vec![
        line(
            "软件开发",
            "3040201010000000000",
            "1",
            "10000",
            "10000.00",
            "6%",
        ),
        line(
            "软件维护",
            "3040201030000000000",
            "12",
            "833.33",
            "9999.96",
            "6%",
        ),
        line("餐费", "3070401000000000000", "", "", "356.50", "6%"),
        line("住宿费", "3070402000000000000", "2", "398", "796.00", "6%"),
    ];
    lines.push(LineDraft {
        nature: LineNature::Discounted,
        ..line(
            "技术咨询",
            "3040603000000000000",
            "1",
            "2000",
            "2000.00",
            "6%",
        )
    });
    lines.push(LineDraft {
        nature: LineNature::Discount,
        ..line("技术咨询", "3040603000000000000", "", "", "-200.00", "6%")
    });
    InvoiceDraft {
        request_id: "ORDER-20261121-000001".into(),
        kind: Some(InvoiceKind::Special),
        seller: SellerDraft {
            tax_id: "91310000MA1FP00011".into(),
            name: "上海发票示例科技有限公司".into(),
            ..Default::default()
        },
        buyer: BuyerDraft {
            name: "北京某某信息技术有限公司".into(),
            tax_id: "91110302MA01NP925M".into(),
            email: "finance@example.com".into(),
            ..Default::default()
        },
        pricing: Some(PricingMode::TaxExclusive),
        lines,
        drawer: "张三".into(),
        ..Default::default()
    }
}

fn domain(c: &mut Criterion) {
    let catalog = TaxCodeCatalog::bundled();
    let limits = Limits::default();
    let validator = Validator::new(&catalog, &limits);
    let draft = typical_draft();
    let content = validator
        .validate(&draft)
        .expect("the benchmark invoice is valid");

    let mut group = c.benchmark_group("domain");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate_6_line_invoice", |b| {
        b.iter(|| validator.validate(black_box(&draft)))
    });
    group.bench_function("taxpayer_id_parse_uscc", |b| {
        b.iter(|| TaxpayerId::parse(black_box("91110302MA01NP925M")))
    });
    group.bench_function("amount_in_capitals", |b| {
        b.iter(|| amount_in_capitals(black_box(Decimal::new(123_456_789_012, 2))))
    });
    group.bench_function("plan_full_reversal", |b| {
        b.iter(|| plan_reversal(black_box(&content), &[], &ReversalScope::Full))
    });
    group.bench_function("load_bundled_catalog_text", |b| {
        b.iter(|| TaxCodeCatalog::from_toml_str(black_box(include_str!("../data/tax_codes.toml"))))
    });
    group.finish();
}

criterion_group!(benches, domain);
criterion_main!(benches);
