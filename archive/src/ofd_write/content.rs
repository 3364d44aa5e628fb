//! Page content of the OFD: a [`Layer`] as `ofd:TextObject`s and `ofd:PathObject`s, millimetre
//! numbers from layout units, XML escaping.
//!
//! It writes XML text only; object ids are handed to it, and which page or template a layer
//! belongs to is [`super`]'s business.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::layout::{Layer, PAGE_HEIGHT, PAGE_WIDTH, Rgb, Rule, TextRun};

pub(super) const NS: &str = "http://www.ofdspec.org/2016";

/// `n` in decimal (faster than `core::fmt`, which dominates writing thousands of numbers).
pub(super) fn int(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out.push(char::from(*d));
    }
}

/// Layout units (0.01 mm) as millimetres: `1234` → `12.34`, `1250` → `12.5`, `1200` → `12`.
pub(super) fn mm(out: &mut String, units: i32) {
    if units < 0 {
        out.push('-');
    }
    let abs = units.unsigned_abs();
    let (whole, frac) = (abs / 100, abs % 100);
    int(out, whole);
    if frac != 0 {
        out.push('.');
        out.push(char::from(b'0' + (frac / 10) as u8));
        if frac % 10 != 0 {
            out.push(char::from(b'0' + (frac % 10) as u8));
        }
    }
}

/// `text` escaped for XML character data and attribute values.
pub(super) fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 (the layout already removes control characters).
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn colour(out: &mut String, element: &str, Rgb(r, g, b): Rgb) {
    out.push_str("<ofd:");
    out.push_str(element);
    out.push_str(" Value=\"");
    int(out, u32::from(r));
    out.push(' ');
    int(out, u32::from(g));
    out.push(' ');
    int(out, u32::from(b));
    out.push_str("\"/>");
}

/// One `ofd:TextObject`: its boundary is the run's box (one em above the baseline, a quarter
/// below), the baseline is at `Y` inside it, and `DeltaX` holds the glyph advances.
pub(super) fn text_object(out: &mut String, id: u32, font: u32, run: &TextRun) {
    let width = run.width().max(1);
    let top = run.baseline - run.size;
    out.push_str("<ofd:TextObject ID=\"");
    int(out, id);
    out.push_str("\" Boundary=\"");
    mm(out, run.x);
    out.push(' ');
    mm(out, top);
    out.push(' ');
    mm(out, width);
    out.push(' ');
    mm(out, run.size * 5 / 4);
    out.push_str("\" Font=\"");
    int(out, font);
    out.push_str("\" Size=\"");
    mm(out, run.size);
    out.push_str("\">");
    colour(out, "FillColor", run.colour);
    out.push_str("<ofd:TextCode X=\"0\" Y=\"");
    mm(out, run.size);
    out.push('"');
    let positions = run.positions();
    if positions.len() > 2 {
        out.push_str(" DeltaX=\"");
        delta_x(out, &positions[..positions.len() - 1]);
        out.push('"');
    }
    out.push('>');
    escape(out, &run.text);
    out.push_str("</ofd:TextCode></ofd:TextObject>");
}

/// The advances between consecutive glyph origins, with `g N v` for runs of three or more.
fn delta_x(out: &mut String, origins: &[i32]) {
    let deltas: Vec<i32> = origins.windows(2).map(|w| w[1] - w[0]).collect();
    let mut i = 0;
    let mut first = true;
    while let Some(&d) = deltas.get(i) {
        let run = deltas[i..].iter().take_while(|&&x| x == d).count();
        if !first {
            out.push(' ');
        }
        first = false;
        if run >= 3 {
            out.push_str("g ");
            int(out, u32::try_from(run).unwrap_or(u32::MAX));
            out.push(' ');
            mm(out, d);
            i += run;
        } else {
            mm(out, d);
            i += 1;
        }
    }
}

/// One `ofd:PathObject` per colour and width, each rule a `M x y L x y` subpath.
pub(super) fn path_objects(out: &mut String, next_id: &mut u32, rules: &[Rule]) {
    let mut groups: BTreeMap<(Rgb, i32), Vec<&Rule>> = BTreeMap::new();
    for rule in rules {
        groups
            .entry((rule.colour, rule.width))
            .or_default()
            .push(rule);
    }
    for ((stroke, width), rules) in groups {
        out.push_str("<ofd:PathObject ID=\"");
        int(out, *next_id);
        out.push_str("\" Boundary=\"0 0 ");
        *next_id += 1;
        mm(out, PAGE_WIDTH);
        out.push(' ');
        mm(out, PAGE_HEIGHT);
        out.push_str("\" LineWidth=\"");
        mm(out, width);
        out.push_str("\">");
        colour(out, "StrokeColor", stroke);
        out.push_str("<ofd:AbbreviatedData>");
        for (i, rule) in rules.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str("M ");
            mm(out, rule.from.0);
            out.push(' ');
            mm(out, rule.from.1);
            out.push_str(" L ");
            mm(out, rule.to.0);
            out.push(' ');
            mm(out, rule.to.1);
        }
        out.push_str("</ofd:AbbreviatedData></ofd:PathObject>");
    }
}

/// A page (or template page) content file for `layer`: objects numbered from `*next_id`, the
/// text objects' ids returned in run order. `template`: the template page id the page uses.
pub(super) fn page(
    layer: &Layer,
    font: u32,
    template: Option<u32>,
    next_id: &mut u32,
) -> (String, Vec<u32>) {
    let mut out = String::with_capacity(200 + 400 * layer.texts.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = write!(out, "<ofd:Page xmlns:ofd=\"{NS}\">");
    if let Some(template) = template {
        let _ = write!(
            out,
            "<ofd:Template TemplateID=\"{template}\" ZOrder=\"Background\"/>"
        );
    }
    let _ = write!(out, "<ofd:Content><ofd:Layer ID=\"{next_id}\">");
    *next_id += 1;
    path_objects(&mut out, next_id, &layer.rules);
    let mut ids = Vec::with_capacity(layer.texts.len());
    for run in &layer.texts {
        text_object(&mut out, *next_id, font, run);
        ids.push(*next_id);
        *next_id += 1;
    }
    out.push_str("</ofd:Layer></ofd:Content></ofd:Page>");
    (out, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{FontRef, LABEL};

    #[test]
    fn millimetres_are_exact() {
        let mut s = String::new();
        for (units, want) in [
            (1234, "12.34"),
            (1250, "12.5"),
            (1200, "12"),
            (5, "0.05"),
            (-150, "-1.5"),
            (0, "0"),
            (-7, "-0.07"),
            (2_000_000_001, "20000000.01"),
            (i32::MIN, "-21474836.48"),
        ] {
            s.clear();
            mm(&mut s, units);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn text_objects_carry_their_glyph_advances() {
        let run = TextRun {
            x: 1000,
            baseline: 2000,
            size: 300,
            colour: LABEL,
            font: FontRef::Bundled,
            text: "发票<&>票票票票".to_owned(),
            tag: None,
        };
        let mut s = String::new();
        text_object(&mut s, 7, 1, &run);
        let wrapped = format!("<r xmlns:ofd=\"{NS}\">{s}</r>");
        let doc = roxmltree::Document::parse(&wrapped).unwrap();
        let code = doc
            .descendants()
            .find(|n| n.has_tag_name((NS, "TextCode")))
            .unwrap();
        assert_eq!(code.text(), Some("发票<&>票票票票"));
        let delta = code.attribute("DeltaX").unwrap();
        assert!(delta.starts_with("3 3 "), "{delta}");
        assert!(delta.ends_with(" g 3 3"), "{delta}");
        let object = code.parent().unwrap();
        assert!(object.attribute("Boundary").unwrap().starts_with("10 17 "));
    }
}
