//! The item table of the page layout: its columns, one row per invoice line (cells fitted to
//! their columns, names wrapped or shrunk), and the placement of rows on a page.
//!
//! It decides row contents and heights; which page a row goes on is [`crate::layout`]'s
//! business. Nothing it places is wider than its column.

use fapiao_invoice::model::Line;

use super::fit::{self, Fitted};
use super::{Layer, Tag, TextRun, VALUE, baseline_in_slot, money, plain};

/// Horizontal alignment of a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    Centre,
    Right,
}

/// A column of the item table: its edges, alignment, header and the XML element its values show.
#[derive(Debug, Clone, Copy)]
pub(super) struct Column {
    pub left: i32,
    pub right: i32,
    pub align: Align,
    pub header: &'static str,
    pub element: &'static str,
}

impl Column {
    /// The width available to a value (the column less its padding).
    pub fn inner(&self) -> i32 {
        self.right - self.left - 2 * PAD
    }

    /// Where a run `width` wide starts in this column.
    pub fn x(&self, width: i32) -> i32 {
        match self.align {
            Align::Left => self.left + PAD,
            Align::Centre => self.left + (self.right - self.left - width) / 2,
            Align::Right => self.right - PAD - width,
        }
    }
}

/// Horizontal padding inside a column: 1.5 mm.
pub(super) const PAD: i32 = 150;
/// Vertical padding inside a row.
const VPAD: i32 = 40;
/// Font size of item values: 2.7 mm.
pub(super) const SIZE: i32 = 270;
/// Smallest size a name is shrunk to before it takes more than two lines.
const CELL_FLOOR: i32 = 180;
/// Smallest size a figure is shrunk to.
const FIGURE_FLOOR: i32 = fit::FLOOR_SIZE;

pub(super) const COLUMNS: [Column; 8] = [
    column(
        500,
        5500,
        Align::Left,
        "项目名称",
        concat!("EInvoiceData/IssuItemInformation/", "ItemName"),
    ),
    column(
        5500,
        8000,
        Align::Left,
        "规格型号",
        concat!("EInvoiceData/IssuItemInformation/", "SpecMod"),
    ),
    column(
        8000,
        9200,
        Align::Centre,
        "单位",
        concat!("EInvoiceData/IssuItemInformation/", "MeaUnits"),
    ),
    column(
        9200,
        11300,
        Align::Right,
        "数量",
        concat!("EInvoiceData/IssuItemInformation/", "Quantity"),
    ),
    column(
        11300,
        13800,
        Align::Right,
        "单价",
        concat!("EInvoiceData/IssuItemInformation/", "UnPrice"),
    ),
    column(
        13800,
        16300,
        Align::Right,
        "金额",
        concat!("EInvoiceData/IssuItemInformation/", "Amount"),
    ),
    column(
        16300,
        18200,
        Align::Centre,
        "税率/征收率",
        concat!("EInvoiceData/IssuItemInformation/", "TaxRate"),
    ),
    column(
        18200,
        20500,
        Align::Right,
        "税额",
        concat!("EInvoiceData/IssuItemInformation/", "ComTaxAm"),
    ),
];

const fn column(
    left: i32,
    right: i32,
    align: Align,
    header: &'static str,
    element: &'static str,
) -> Column {
    Column {
        left,
        right,
        align,
        header,
        element,
    }
}

/// Index of the 金额 column.
pub(super) const AMOUNT: usize = 5;
/// Index of the 税额 column.
pub(super) const TAX: usize = 7;

/// One fitted cell.
#[derive(Debug, Clone)]
struct Cell {
    column: usize,
    fitted: Fitted,
}

/// One invoice line, fitted.
#[derive(Debug, Clone)]
pub(super) struct Row {
    /// Index of the line in the invoice.
    pub line: usize,
    pub height: i32,
    cells: Vec<Cell>,
}

/// The texts of a line, by column; empty where the line has no value.
fn values(line: &Line) -> [String; 8] {
    [
        fit::one_line(&line.printed_name),
        fit::one_line(&line.specification),
        fit::one_line(&line.unit),
        line.quantity.map(plain).unwrap_or_default(),
        line.unit_price.map(plain).unwrap_or_default(),
        money(line.amount),
        line.rate.display_percent(),
        money(line.tax),
    ]
}

/// Fit every line into a row no taller than `max_height`.
pub(super) fn rows(lines: &[Line], max_height: i32) -> Vec<Row> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| row(i, line, max_height))
        .collect()
}

fn row(index: usize, line: &Line, max_height: i32) -> Row {
    let inner_max = max_height - 2 * VPAD;
    let mut cells = Vec::with_capacity(8);
    for (column, text) in values(line).into_iter().enumerate() {
        if text.is_empty() {
            continue;
        }
        let width = COLUMNS[column].inner();
        let fitted = if column <= 2 {
            fit::fit_cell(&text, width, SIZE, CELL_FLOOR, 2, inner_max)
        } else {
            let size = fit::shrink_to_width(&text, width, SIZE, FIGURE_FLOOR);
            let lines = if crate::font::width(&text, size) <= width {
                vec![text]
            } else {
                // Even the smallest size is too wide (absurd figures): wrap at it.
                fit::fit_box(&text, width, inner_max, FIGURE_FLOOR, FIGURE_FLOOR).lines
            };
            Fitted { size, lines }
        };
        cells.push(Cell { column, fitted });
    }
    let content = cells
        .iter()
        .map(|c| c.fitted.height())
        .max()
        .unwrap_or(0)
        .max(fit::pitch(SIZE));
    Row {
        line: index,
        height: content + 2 * VPAD,
        cells,
    }
}

/// Draw `row` with its top at `top`, each run tagged with its item field.
pub(super) fn place(row: &Row, top: i32, out: &mut Layer) {
    let first = top + VPAD + baseline_in_slot(SIZE);
    for cell in &row.cells {
        let column = &COLUMNS[cell.column];
        let size = cell.fitted.size;
        // First baselines line up across the row unless a taller cell needs its top.
        let lowest = top + row.height - VPAD - cell.fitted.height() + baseline_in_slot(size);
        let mut baseline = first.min(lowest);
        for text in &cell.fitted.lines {
            let width = crate::font::width(text, size);
            out.texts.push(TextRun::new(
                column.x(width),
                baseline,
                size,
                VALUE,
                text.clone(),
                Some(Tag {
                    path: column.element,
                    item: Some(row.line),
                }),
            ));
            baseline += fit::pitch(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn columns_tile_the_frame() {
        for pair in COLUMNS.windows(2) {
            assert_eq!(pair[0].right, pair[1].left);
        }
        for c in &COLUMNS {
            assert!(
                crate::font::width(c.header, 280) <= c.inner(),
                "{}",
                c.header
            );
        }
    }

    #[test]
    fn cells_stay_inside_their_columns_even_with_huge_values() {
        let mut content = sample::blue();
        content.lines[0].printed_name = format!("*类别*{}", "超长的项目名称".repeat(40));
        content.lines[0].specification = "SPEC-".repeat(30);
        content.lines[0].unit = "单位".repeat(150);
        content.lines[0].quantity = Some("12345678901234567.123456".parse().unwrap());
        content.lines[0].unit_price = Some("-98765432109876.54321".parse().unwrap());
        let rows = rows(&content.lines, 4300);
        for row in &rows {
            assert!(row.height <= 4300);
            let mut layer = Layer::default();
            place(row, 1000, &mut layer);
            for run in &layer.texts {
                let tag = run.tag.as_ref().unwrap();
                let column = COLUMNS.iter().find(|c| c.element == tag.path).unwrap();
                assert!(
                    run.x >= column.left && run.x + run.width() <= column.right,
                    "{run:?}"
                );
                assert!(
                    run.baseline > 1000 && run.baseline < 1000 + row.height,
                    "{run:?}"
                );
            }
        }
    }
}
