//! The page layout of an issued invoice, independent of output format: a fixed template per
//! invoice kind (title, labels, frame) and, per page, the values (text runs tagged with the
//! EInvoice XML element they show) on a 210 × 140 mm page.
//!
//! The OFD and PDF writers both draw from a [`Layout`], so the two files look the same. It owns
//! every position, size, colour and line break; it must not produce bytes of any format, and it
//! never panics on invoice content: values are sanitised, wrapped and shrunk so that nothing
//! overflows its box (the `fit` submodule). Coordinates are integers in hundredths of a
//! millimetre, origin at the top-left corner, y downwards (as in OFD); `y` of a text run is its
//! baseline.
//!
//! Pagination: item rows fill the table of the first page; when the next row does not fit, the
//! table continues on a new page with the same template, header, parties, remark and drawer.
//! 合计 and 价税合计 appear on the last page only; with more than one page each page shows
//! `共N页 第M页`. Runs of values repeated on later pages are not tagged again.

mod fit;
mod table;
mod template;

pub use template::template;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;
use rust_decimal::Decimal;

use crate::{Issued, font};

/// One millimetre in layout units.
pub const MM: i32 = 100;
pub const PAGE_WIDTH: i32 = 210 * MM;
pub const PAGE_HEIGHT: i32 = 140 * MM;

/// A colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// Title, labels and rules: the brown-red of the 数电 layout.
pub const LABEL: Rgb = Rgb(150, 60, 40);
/// Values.
pub const VALUE: Rgb = Rgb(0, 0, 0);

/// The font a run is drawn with. There is one: the bundled font ([`crate::font`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FontRef {
    Bundled,
}

/// What a run shows: an element of the EInvoice XML, by path from the root's children (e.g.
/// `EInvoiceData/BuyerInformation/BuyerName`); for item fields the path runs through
/// `EInvoiceData/IssuItemInformation` and `item` is the line's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    pub path: &'static str,
    pub item: Option<usize>,
}

impl Tag {
    const fn of(path: &'static str) -> Option<Tag> {
        Some(Tag { path, item: None })
    }
}

/// A string drawn on one baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRun {
    pub x: i32,
    pub baseline: i32,
    /// Font size (em height).
    pub size: i32,
    pub colour: Rgb,
    pub font: FontRef,
    pub text: String,
    pub tag: Option<Tag>,
}

impl TextRun {
    fn new(x: i32, baseline: i32, size: i32, colour: Rgb, text: String, tag: Option<Tag>) -> Self {
        Self {
            x,
            baseline,
            size,
            colour,
            font: FontRef::Bundled,
            text,
            tag,
        }
    }

    /// Width of the run.
    pub fn width(&self) -> i32 {
        font::width(&self.text, self.size)
    }

    /// Glyph origins relative to `x`, one per char, then the end of the run.
    pub fn positions(&self) -> Vec<i32> {
        font::positions(&self.text, self.size)
    }
}

/// A straight line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub from: (i32, i32),
    pub to: (i32, i32),
    pub width: i32,
    pub colour: Rgb,
}

/// Text runs and rules drawn together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub texts: Vec<TextRun>,
    pub rules: Vec<Rule>,
}

/// The fixed part of every page of one invoice kind.
#[derive(Debug)]
pub struct Template {
    pub layer: Layer,
    /// The characters of the template, sorted: a document's font gives them its first glyph
    /// ids, so the template's glyph ids never change.
    pub chars: Vec<char>,
}

/// An invoice's pages.
#[derive(Debug)]
pub struct Layout {
    pub template: &'static Template,
    /// The values of each page (drawn over the template).
    pub pages: Vec<Layer>,
    chars: Vec<char>,
}

impl Layout {
    /// Every character drawn, template included, sorted and without repeats.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }
}

// Frame geometry.
const X0: i32 = 5 * MM;
const X1: i32 = 205 * MM;
const MID: i32 = 105 * MM;
/// Width of the vertical label columns (购买方信息, 销售方信息, 备注).
const LABEL_COLUMN: i32 = 6 * MM;
const Y_TOP: i32 = 23 * MM;
const Y_PARTIES: i32 = 45 * MM;
const Y_TABLE: i32 = 100 * MM;
const Y_TOTAL: i32 = 108 * MM;
const Y_BOTTOM: i32 = 128 * MM;
const HEADER_BASELINE: i32 = 49 * MM;
const ROWS_TOP: i32 = 5150;
const ROWS_BOTTOM: i32 = 9450;
const TOTALS_BASELINE: i32 = 9750;
const THIN: i32 = 20;

const TITLE_SIZE: i32 = 540;
const TITLE_BASELINE: i32 = 1500;
const TEXT: i32 = 300;
const SMALL: i32 = 280;
const NUMBER_X: i32 = 146 * MM;
const NUMBER_BASELINE: i32 = 1150;
const DATE_BASELINE: i32 = 1700;
/// Party blocks: the name box, the id line.
const NAME_TOP: i32 = 2450;
const NAME_HEIGHT: i32 = 950;
const ID_BASELINE: i32 = 3850;
const TOTAL_BASELINE: i32 = 10500;
const WORDS_X: i32 = 38 * MM;
const FIGURES_LABEL_X: i32 = 143 * MM;
const REMARK_TOP: i32 = 10950;
const REMARK_HEIGHT: i32 = 1700;
const DRAWER_TOP: i32 = 13100;

const NUMBER_LABEL: &str = "发票号码：";
const DATE_LABEL: &str = "开票日期：";
const NAME_LABEL: &str = "名称：";
const ID_LABEL: &str = "统一社会信用代码/纳税人识别号：";
const TOTAL_LABEL: &str = "价税合计（大写）";
const FIGURES_LABEL: &str = "（小写）";
const DRAWER_LABEL: &str = "开票人：";
const YEN: &str = "¥";

/// Baseline of a line of `size` in a slot one [`fit::pitch`] high, from the slot's top.
pub(crate) fn baseline_in_slot(size: i32) -> i32 {
    (fit::pitch(size) - size) / 2 + size * 85 / 100
}

/// Baseline of one line of `size` centred in a box.
fn centred_baseline(top: i32, height: i32, size: i32) -> i32 {
    top + (height - fit::pitch(size)) / 2 + baseline_in_slot(size)
}

/// An amount as printed: two decimals, a minus sign when negative, no grouping.
pub fn money(amount: Decimal) -> String {
    let mut d = amount.round_dp(2);
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    d.rescale(2);
    d.to_string()
}

/// A quantity or unit price as printed: as given, without trailing zeros.
pub fn plain(value: Decimal) -> String {
    let mut d = value.normalize();
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    d.to_string()
}

/// The element paths of an item line's fields, in column order.
pub fn item_elements() -> [&'static str; 8] {
    table::COLUMNS.map(|c| c.element)
}

/// The layout of `issued`, shared: the OFD and PDF writers of one invoice (on any thread) lay it
/// out once. Recent layouts are kept with a copy of what they were made from and reused only for
/// an identical invoice.
pub fn shared(issued: &Issued<'_>) -> Arc<Layout> {
    const KEPT: usize = 4;
    let same = |(number, at, content): &(InvoiceNumber, NaiveDateTime, InvoiceContent)| {
        *number == issued.number && *at == issued.issued_at && content == issued.content
    };
    if let Ok(recent) = RECENT.lock()
        && let Some((_, hit)) = recent.iter().find(|(key, _)| same(key))
    {
        return Arc::clone(hit);
    }
    let made = Arc::new(layout(issued));
    if let Ok(mut recent) = RECENT.lock() {
        if recent.len() >= KEPT {
            recent.pop_back();
        }
        let key = (issued.number, issued.issued_at, issued.content.clone());
        recent.push_front((key, Arc::clone(&made)));
    }
    made
}

/// Forget shared layouts (benchmarks measure the uncached cost with it).
#[doc(hidden)]
pub fn clear_shared() {
    if let Ok(mut recent) = RECENT.lock() {
        recent.clear();
    }
}

type Recent = VecDeque<((InvoiceNumber, NaiveDateTime, InvoiceContent), Arc<Layout>)>;
static RECENT: Mutex<Recent> = Mutex::new(VecDeque::new());

/// Lay out `issued`.
pub fn layout(issued: &Issued<'_>) -> Layout {
    let content = issued.content;
    let template = template(content.kind);
    let rows = table::rows(&content.lines, ROWS_BOTTOM - ROWS_TOP);
    // Split rows into pages.
    let mut pages_rows: Vec<Vec<(i32, &table::Row)>> = vec![Vec::new()];
    let mut y = ROWS_TOP;
    for row in &rows {
        if y + row.height > ROWS_BOTTOM && pages_rows.last().is_some_and(|p| !p.is_empty()) {
            pages_rows.push(Vec::new());
            y = ROWS_TOP;
        }
        if let Some(page) = pages_rows.last_mut() {
            page.push((y, row));
        }
        y += row.height;
    }
    let count = pages_rows.len();
    let mut pages = Vec::with_capacity(count);
    // Number, date, parties, remark and drawer: the same on every page, tagged on the first.
    let mut header = Layer::default();
    header_values(issued, &mut header);
    for (index, page_rows) in pages_rows.iter().enumerate() {
        let last = index + 1 == count;
        let mut page = Layer::default();
        page.texts.extend(header.texts.iter().map(|run| TextRun {
            tag: run.tag.filter(|_| index == 0),
            ..run.clone()
        }));
        for (top, row) in page_rows {
            table::place(row, *top, &mut page);
        }
        if last {
            totals(issued, &mut page);
        }
        if count > 1 {
            let text = format!("共{count}页 第{}页", index + 1);
            let x = X1 - font::width(&text, SMALL);
            page.texts.push(TextRun::new(
                x,
                DRAWER_TOP + baseline_in_slot(TEXT),
                SMALL,
                LABEL,
                text,
                None,
            ));
        }
        pages.push(page);
    }
    let mut chars: Vec<char> = template.chars.clone();
    for page in &pages {
        for run in &page.texts {
            chars.extend(run.text.chars());
        }
    }
    chars.sort_unstable();
    chars.dedup();
    Layout {
        template,
        pages,
        chars,
    }
}

/// Push `text` as a value run (nothing if it is empty).
fn value(page: &mut Layer, x: i32, baseline: i32, size: i32, text: String, tag: Option<Tag>) {
    if text.is_empty() {
        return;
    }
    page.texts
        .push(TextRun::new(x, baseline, size, VALUE, text, tag));
}

/// Lines of a fitted box from `top`, `x`-aligned.
fn boxed(
    page: &mut Layer,
    x: i32,
    top: i32,
    fitted: fit::Fitted,
    centre_in: Option<i32>,
    tag: Option<Tag>,
) {
    let mut baseline = match centre_in {
        Some(height) => top + (height - fitted.height()) / 2 + baseline_in_slot(fitted.size),
        None => top + baseline_in_slot(fitted.size),
    };
    for line in fitted.lines {
        value(page, x, baseline, fitted.size, line, tag);
        baseline += fit::pitch(fitted.size);
    }
}

/// Number, date, parties, remark and drawer.
fn header_values(issued: &Issued<'_>, page: &mut Layer) {
    let content = issued.content;
    let x = NUMBER_X + font::width(NUMBER_LABEL, TEXT);
    value(
        page,
        x,
        NUMBER_BASELINE,
        TEXT,
        issued.number.to_string(),
        Tag::of("TaxSupervisionInfo/InvoiceNumber"),
    );
    let date = issued.issued_at.format("%Y年%m月%d日").to_string();
    value(
        page,
        x,
        DATE_BASELINE,
        TEXT,
        date,
        Tag::of("TaxSupervisionInfo/IssueTime"),
    );

    let parties = [
        (
            X0,
            &content.buyer.party,
            "EInvoiceData/BuyerInformation/BuyerName",
            "EInvoiceData/BuyerInformation/BuyerIdNum",
        ),
        (
            MID,
            &content.seller,
            "EInvoiceData/SellerInformation/SellerName",
            "EInvoiceData/SellerInformation/SellerIdNum",
        ),
    ];
    for (left, party, name_path, id_path) in parties {
        let start = left + LABEL_COLUMN + table::PAD;
        let right = left + MID - X0 - table::PAD;
        let name_x = start + font::width(NAME_LABEL, TEXT);
        let name = fit::one_line(&party.name);
        let fitted = fit::fit_box(&name, right - name_x, NAME_HEIGHT, TEXT, 200);
        boxed(
            page,
            name_x,
            NAME_TOP,
            fitted,
            Some(NAME_HEIGHT),
            Tag::of(name_path),
        );
        let id = party
            .tax_id
            .as_ref()
            .map(|id| fit::one_line(id.as_str()))
            .unwrap_or_default();
        let id_x = start + font::width(ID_LABEL, TEXT);
        let size = fit::shrink_to_width(&id, right - id_x, TEXT, fit::FLOOR_SIZE);
        value(page, id_x, ID_BASELINE, size, id, Tag::of(id_path));
    }

    let remark: String = content
        .remark
        .split('\n')
        .map(fit::one_line)
        .collect::<Vec<_>>()
        .join("\n");
    let remark = remark.trim_matches('\n').to_owned();
    let left = X0 + LABEL_COLUMN + table::PAD;
    let fitted = fit::fit_box(&remark, X1 - table::PAD - left, REMARK_HEIGHT, SMALL, 180);
    boxed(
        page,
        left,
        REMARK_TOP,
        fitted,
        None,
        Tag::of("EInvoiceData/AdditionalInformation/Remark"),
    );

    let drawer_x = X0 + 5 * MM + font::width(DRAWER_LABEL, TEXT);
    let drawer = fit::one_line(&content.drawer);
    let fitted = fit::fit_box(
        &drawer,
        MID - drawer_x,
        PAGE_HEIGHT - DRAWER_TOP - 2 * MM,
        TEXT,
        200,
    );
    boxed(
        page,
        drawer_x,
        DRAWER_TOP,
        fitted,
        None,
        Tag::of("EInvoiceData/BasicInformation/Drawer"),
    );
}

/// 合计 and 价税合计 (last page only).
fn totals(issued: &Issued<'_>, page: &mut Layer) {
    let totals = &issued.content.totals;
    for (column, amount, path) in [
        (
            table::AMOUNT,
            totals.amount,
            "EInvoiceData/BasicInformation/TotalAmWithoutTax",
        ),
        (
            table::TAX,
            totals.tax,
            "EInvoiceData/BasicInformation/TotalTaxAm",
        ),
    ] {
        let column = &table::COLUMNS[column];
        let text = money(amount);
        let yen = font::width(YEN, table::SIZE);
        let size = fit::shrink_to_width(&text, column.inner() - yen, table::SIZE, fit::FLOOR_SIZE);
        let x = column.x(font::width(&text, size));
        value(
            page,
            x - yen,
            TOTALS_BASELINE,
            table::SIZE,
            YEN.to_owned(),
            None,
        );
        value(page, x, TOTALS_BASELINE, size, text, Tag::of(path));
    }
    let words = fit::one_line(&issued.content.total_in_words);
    let size = fit::shrink_to_width(
        &words,
        FIGURES_LABEL_X - WORDS_X - 2 * MM,
        TEXT,
        fit::FLOOR_SIZE,
    );
    value(
        page,
        WORDS_X,
        TOTAL_BASELINE,
        size,
        words,
        Tag::of("EInvoiceData/BasicInformation/TotalTax-includedAmountInChinese"),
    );
    let yen_x = FIGURES_LABEL_X + font::width(FIGURES_LABEL, TEXT);
    value(page, yen_x, TOTAL_BASELINE, TEXT, YEN.to_owned(), None);
    let x = yen_x + font::width(YEN, TEXT);
    let text = money(totals.total);
    let size = fit::shrink_to_width(&text, X1 - table::PAD - x, TEXT, fit::FLOOR_SIZE);
    value(
        page,
        x,
        TOTAL_BASELINE,
        size,
        text,
        Tag::of("EInvoiceData/BasicInformation/TotalTax-includedAmount"),
    );
}

#[cfg(test)]
mod tests;
