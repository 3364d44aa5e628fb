//! Tests of the page layout: every sample fits, nothing overflows its box, pagination and tags.

use super::*;
use crate::sample;

fn issued(content: &fapiao_invoice::model::InvoiceContent) -> Issued<'_> {
    Issued {
        number: sample::number(),
        issued_at: sample::issued_at(),
        content,
    }
}

fn texts(layout: &Layout) -> Vec<&TextRun> {
    layout
        .template
        .layer
        .texts
        .iter()
        .chain(layout.pages.iter().flat_map(|p| &p.texts))
        .collect()
}

/// Every run lies on the page, inside the frame's columns where it belongs.
fn assert_inside(layout: &Layout) {
    for run in texts(layout) {
        let right = run.x + run.width();
        assert!(run.x >= 0 && right <= PAGE_WIDTH, "{run:?}");
        assert!(
            run.baseline - run.size >= 0 && run.baseline <= PAGE_HEIGHT,
            "{run:?}"
        );
        assert!(!run.text.is_empty());
        assert!(!run.text.chars().any(char::is_control), "{run:?}");
        if let Some(tag) = run.tag {
            let (left, right_edge) = match tag.path {
                p if p.contains("BuyerInformation") => (X0, MID),
                p if p.contains("SellerInformation") => (MID, X1),
                p if p.contains("IssuItemInformation") => {
                    let c = table::COLUMNS.iter().find(|c| c.element == p).unwrap();
                    (c.left, c.right)
                }
                _ => (X0, X1),
            };
            assert!(run.x >= left && right <= right_edge, "{run:?}");
            if p_is_row(tag.path) {
                assert!(
                    run.baseline > ROWS_TOP && run.baseline < ROWS_BOTTOM,
                    "{run:?}"
                );
            }
        }
    }
}

fn p_is_row(path: &str) -> bool {
    path.contains("IssuItemInformation")
}

fn tagged_text(layout: &Layout, path: &'static str, item: Option<usize>) -> String {
    layout
        .pages
        .iter()
        .flat_map(|p| &p.texts)
        .filter(|r| r.tag == Some(Tag { path, item }))
        .map(|r| r.text.as_str())
        .collect()
}

#[test]
fn the_blue_sample_fits_one_page_with_every_value_tagged() {
    let content = sample::blue();
    let layout = layout(&issued(&content));
    assert_eq!(layout.pages.len(), 1);
    assert_inside(&layout);
    assert_eq!(
        tagged_text(&layout, "TaxSupervisionInfo/InvoiceNumber", None),
        sample::number().to_string()
    );
    assert_eq!(
        tagged_text(&layout, "TaxSupervisionInfo/IssueTime", None),
        "2025年03月07日"
    );
    assert_eq!(
        tagged_text(
            &layout,
            "EInvoiceData/BasicInformation/TotalAmWithoutTax",
            None
        ),
        "49391.58"
    );
    assert_eq!(
        tagged_text(&layout, "EInvoiceData/BuyerInformation/BuyerIdNum", None),
        sample::BUYER
    );
    for (i, line) in content.lines.iter().enumerate() {
        assert_eq!(
            tagged_text(
                &layout,
                "EInvoiceData/IssuItemInformation/ItemName",
                Some(i)
            ),
            line.printed_name
        );
        assert_eq!(
            tagged_text(&layout, "EInvoiceData/IssuItemInformation/Amount", Some(i)),
            money(line.amount)
        );
    }
    assert_eq!(
        tagged_text(
            &layout,
            "EInvoiceData/IssuItemInformation/Quantity",
            Some(0)
        ),
        "3"
    );
    assert_eq!(
        tagged_text(&layout, "EInvoiceData/AdditionalInformation/Remark", None),
        content.remark
    );
    // The template's characters are exactly those of its runs.
    let mut template_chars: Vec<char> = layout
        .template
        .layer
        .texts
        .iter()
        .flat_map(|r| r.text.chars())
        .collect();
    template_chars.sort_unstable();
    template_chars.dedup();
    assert_eq!(template_chars, layout.template.chars);
}

#[test]
fn the_red_sample_prints_negative_figures() {
    let content = sample::red();
    let mut issued = issued(&content);
    issued.number = sample::red_number();
    let layout = layout(&issued);
    assert_inside(&layout);
    assert_eq!(
        tagged_text(
            &layout,
            "EInvoiceData/BasicInformation/TotalAmWithoutTax",
            None
        ),
        "-49391.58"
    );
    assert!(
        tagged_text(
            &layout,
            "EInvoiceData/BasicInformation/TotalTax-includedAmountInChinese",
            None
        )
        .starts_with("（负数）")
    );
}

#[test]
fn a_person_without_tax_id_shows_no_id() {
    let content = sample::to_person();
    let layout = layout(&issued(&content));
    assert_inside(&layout);
    assert_eq!(
        tagged_text(&layout, "EInvoiceData/BuyerInformation/BuyerIdNum", None),
        ""
    );
    assert_eq!(
        tagged_text(&layout, "EInvoiceData/BuyerInformation/BuyerName", None),
        "王小明"
    );
    assert!(
        layout
            .template
            .layer
            .texts
            .iter()
            .any(|r| r.text == "电子发票（普通发票）")
    );
}

#[test]
fn forty_lines_continue_on_further_pages() {
    let content = sample::with_lines("X", 40);
    let layout = layout(&issued(&content));
    let n = layout.pages.len();
    assert!(n >= 3, "{n} pages");
    assert_inside(&layout);
    for (i, page) in layout.pages.iter().enumerate() {
        let counter = format!("共{n}页 第{}页", i + 1);
        assert!(page.texts.iter().any(|r| r.text == counter), "{counter}");
        // Header values repeat on every page.
        assert!(page.texts.iter().any(|r| r.text == content.seller.name));
        let has_total = page.texts.iter().any(|r| {
            r.tag
                .is_some_and(|t| t.path == "EInvoiceData/BasicInformation/TotalTax-includedAmount")
        });
        assert_eq!(has_total, i + 1 == n);
    }
    // Every line once, in order.
    let items: Vec<usize> = layout
        .pages
        .iter()
        .flat_map(|p| &p.texts)
        .filter(|r| r.tag.is_some_and(|t| t.path.ends_with("/Amount")))
        .filter_map(|r| r.tag.and_then(|t| t.item))
        .collect();
    assert_eq!(items, (0..40).collect::<Vec<_>>());
    // Repeated header values are tagged once.
    let numbers = layout
        .pages
        .iter()
        .flat_map(|p| &p.texts)
        .filter(|r| {
            r.tag
                .is_some_and(|t| t.path == "TaxSupervisionInfo/InvoiceNumber")
        })
        .count();
    assert_eq!(numbers, 1);
}

#[test]
fn absurd_content_still_fits() {
    let mut content = sample::blue();
    content.buyer.party.name = "超长的购买方名称".repeat(40);
    content.seller.name = "X".repeat(300);
    content.remark = format!("第一行\n{}\r\n\t末行", "备注内容".repeat(120));
    content.drawer = "开票人".repeat(100);
    content.total_in_words = "壹".repeat(200);
    content.lines[0].printed_name = "*类*名\u{0}称\u{7}".repeat(60);
    content.lines[1].unit = "☃".repeat(50);
    let layout = layout(&issued(&content));
    assert_inside(&layout);
    let buyer = tagged_text(&layout, "EInvoiceData/BuyerInformation/BuyerName", None);
    assert_eq!(buyer, content.buyer.party.name);
    // The remark keeps its text (line breaks and control characters aside).
    let remark = tagged_text(&layout, "EInvoiceData/AdditionalInformation/Remark", None);
    assert!(remark.starts_with("第一行备注内容"));
    assert!(remark.ends_with("末行"));
}

#[test]
fn an_invoice_without_lines_has_one_page() {
    let mut content = sample::blue();
    content.lines.clear();
    let layout = layout(&issued(&content));
    assert_eq!(layout.pages.len(), 1);
    assert_inside(&layout);
}

#[test]
fn figures_are_formatted_as_printed() {
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    assert_eq!(money(d("49391.58")), "49391.58");
    assert_eq!(money(d("-200")), "-200.00");
    assert_eq!(money(d("-0.001")), "0.00");
    assert_eq!(plain(d("8850.00")), "8850");
    assert_eq!(plain(d("-3")), "-3");
    assert_eq!(plain(d("1.2500")), "1.25");
    assert_eq!(plain(d("0.000")), "0");
}
