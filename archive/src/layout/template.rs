//! The fixed part of the page for each invoice kind: title, labels and frame, built once.
//!
//! It only places the fixed texts and rules; values are [`super`]'s business.

use std::sync::LazyLock;

use fapiao_invoice::model::InvoiceKind;

use super::*;

/// The template of `kind`, built once.
pub fn template(kind: InvoiceKind) -> &'static Template {
    static SPECIAL: LazyLock<Template> = LazyLock::new(|| build_template(InvoiceKind::Special));
    static GENERAL: LazyLock<Template> = LazyLock::new(|| build_template(InvoiceKind::General));
    match kind {
        InvoiceKind::Special => &SPECIAL,
        InvoiceKind::General => &GENERAL,
    }
}

pub(super) fn label(layer: &mut Layer, x: i32, baseline: i32, size: i32, text: &str) {
    layer.texts.push(TextRun::new(
        x,
        baseline,
        size,
        LABEL,
        text.to_owned(),
        None,
    ));
}

fn rule(layer: &mut Layer, from: (i32, i32), to: (i32, i32)) {
    layer.rules.push(Rule {
        from,
        to,
        width: THIN,
        colour: LABEL,
    });
}

/// One character per line, centred in a column `left..left + LABEL_COLUMN`, spread over
/// `top..bottom` at a pitch of at most `max_pitch`.
fn vertical_label(layer: &mut Layer, left: i32, top: i32, bottom: i32, text: &str) {
    let count = i32::try_from(text.chars().count()).unwrap_or(1).max(1);
    let pitch = ((bottom - top) / count).min(600);
    let start = top + (bottom - top - pitch * count) / 2;
    for (i, c) in (0..).zip(text.chars()) {
        let s = c.to_string();
        let x = left + (LABEL_COLUMN - font::width(&s, TEXT)) / 2;
        label(
            layer,
            x,
            start + pitch * i + pitch / 2 + TEXT * 35 / 100,
            TEXT,
            &s,
        );
    }
}

fn build_template(kind: InvoiceKind) -> Template {
    let mut t = Layer::default();
    let title = kind.title_zh();
    let title_width = font::width(title, TITLE_SIZE);
    let title_x = (PAGE_WIDTH - title_width) / 2;
    label(&mut t, title_x, TITLE_BASELINE, TITLE_SIZE, title);
    for y in [1740, 1830] {
        rule(
            &mut t,
            (title_x - 3 * MM, y),
            (title_x + title_width + 3 * MM, y),
        );
    }
    label(&mut t, NUMBER_X, NUMBER_BASELINE, TEXT, NUMBER_LABEL);
    label(&mut t, NUMBER_X, DATE_BASELINE, TEXT, DATE_LABEL);

    // Frame: outer box, rows, label columns.
    for y in [Y_TOP, Y_PARTIES, Y_TABLE, Y_TOTAL, Y_BOTTOM] {
        rule(&mut t, (X0, y), (X1, y));
    }
    for x in [X0, X1] {
        rule(&mut t, (x, Y_TOP), (x, Y_BOTTOM));
    }
    for x in [X0 + LABEL_COLUMN, MID, MID + LABEL_COLUMN] {
        rule(&mut t, (x, Y_TOP), (x, Y_PARTIES));
    }
    rule(
        &mut t,
        (WORDS_X - 3 * MM, Y_TABLE),
        (WORDS_X - 3 * MM, Y_TOTAL),
    );
    rule(
        &mut t,
        (X0 + LABEL_COLUMN, Y_TOTAL),
        (X0 + LABEL_COLUMN, Y_BOTTOM),
    );

    vertical_label(&mut t, X0, Y_TOP, Y_PARTIES, "购买方信息");
    vertical_label(&mut t, MID, Y_TOP, Y_PARTIES, "销售方信息");
    vertical_label(&mut t, X0, Y_TOTAL, Y_BOTTOM, "备注");
    let name_baseline = centred_baseline(NAME_TOP, NAME_HEIGHT, TEXT);
    for left in [X0, MID] {
        let x = left + LABEL_COLUMN + table::PAD;
        label(&mut t, x, name_baseline, TEXT, NAME_LABEL);
        label(&mut t, x, ID_BASELINE, TEXT, ID_LABEL);
    }
    for column in &table::COLUMNS {
        let x = column.left + (column.right - column.left - font::width(column.header, SMALL)) / 2;
        label(&mut t, x, HEADER_BASELINE, SMALL, column.header);
    }
    let first = &table::COLUMNS[0];
    let total = "合　　计";
    label(
        &mut t,
        first.left + (first.right - first.left - font::width(total, SMALL)) / 2,
        TOTALS_BASELINE,
        SMALL,
        total,
    );
    let words_cell = WORDS_X - 3 * MM - X0;
    label(
        &mut t,
        X0 + (words_cell - font::width(TOTAL_LABEL, TEXT)) / 2,
        TOTAL_BASELINE,
        TEXT,
        TOTAL_LABEL,
    );
    label(&mut t, FIGURES_LABEL_X, TOTAL_BASELINE, TEXT, FIGURES_LABEL);
    label(
        &mut t,
        X0 + 5 * MM,
        DRAWER_TOP + baseline_in_slot(TEXT),
        TEXT,
        DRAWER_LABEL,
    );

    let mut chars: Vec<char> = t.texts.iter().flat_map(|r| r.text.chars()).collect();
    chars.sort_unstable();
    chars.dedup();
    Template { layer: t, chars }
}
