//! The PDF layout file of an issued invoice: the [`crate::layout`] pages drawn with one embedded
//! font subset ([`crate::font`]) as a Type0 / CIDFontType2 font (Identity-H, glyph ids as CIDs,
//! `/ToUnicode` so text extracts).
//!
//! The template (title, labels, frame) is a form XObject drawn on every page; each page then draws
//! its values. Coordinates stay integer layout units (0.01 mm): one scale matrix per page turns
//! them into points, and y is flipped with integer arithmetic. Streams are deflated at the fast
//! level. Output is deterministic: no clock, `/ID` from the SM3 digest of the invoice number,
//! creation date = issue time.
//!
//! It must not lay anything out itself (positions, sizes and line breaks come from the layout),
//! and it never panics on invoice content.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{Datelike, Timelike};
use fapiao_invoice::model::InvoiceKind;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Date, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::Issued;
use crate::font::{self, Subset};
use crate::layout::{self, Layer, Layout, PAGE_HEIGHT, PAGE_WIDTH, Rgb};

/// Points per layout unit: 72 pt per inch / 2540 hundredths of a millimetre per inch.
const POINTS_PER_UNIT: f32 = 72.0 / 2540.0;

const FONT_NAME: Name<'static> = Name(b"F0");
const TEMPLATE_NAME: Name<'static> = Name(b"T0");

/// Render the PDF of `issued`.
pub fn write(issued: &Issued<'_>) -> Vec<u8> {
    let layout = layout::shared(issued);
    let subset = font::subset(&layout.template.chars, layout.chars());
    render(issued, &layout, &subset)
}

/// Layout units in points.
#[allow(clippy::float_arithmetic)] // geometry, not money
fn points(units: i32) -> f32 {
    units as f32 * POINTS_PER_UNIT
}

/// An 8-bit colour component as a PDF colour value.
#[allow(clippy::float_arithmetic)] // colour, not money
fn component(value: u8) -> f32 {
    f32::from(value) / 255.0
}

/// A glyph advance in thousandths of an em (PDF glyph space).
fn thousandths(advance: u16) -> f32 {
    glyph_space(i32::from(advance))
}

/// Font units in thousandths of an em (PDF glyph space).
#[allow(clippy::float_arithmetic)] // geometry, not money
fn glyph_space(font_units: i32) -> f32 {
    font_units as f32 * 1000.0 / font::metrics().units_per_em.max(1) as f32
}

fn render(issued: &Issued<'_>, layout: &Layout, subset: &Subset) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let digest = number_digest(issued);
    pdf.set_file_id((digest.clone(), digest));

    let mut next = Ref::new(1);
    let catalog_id = next.bump();
    let tree_id = next.bump();
    let type0_id = next.bump();
    let cid_id = next.bump();
    let descriptor_id = next.bump();
    let file_id = next.bump();
    let cmap_id = next.bump();
    let template_id = next.bump();
    let info_id = next.bump();
    let page_ids: Vec<(Ref, Ref)> = layout
        .pages
        .iter()
        .map(|_| (next.bump(), next.bump()))
        .collect();

    pdf.catalog(catalog_id).pages(tree_id);
    pdf.pages(tree_id)
        .kids(page_ids.iter().map(|(page, _)| *page))
        .count(i32::try_from(page_ids.len()).unwrap_or(i32::MAX));

    write_font(
        &mut pdf,
        subset,
        [type0_id, cid_id, descriptor_id, file_id, cmap_id],
    );

    let template = template_stream(issued.content.kind, layout, subset);
    let mut form = pdf.form_xobject(template_id, &template);
    form.filter(Filter::FlateDecode);
    form.bbox(Rect::new(0.0, 0.0, PAGE_WIDTH as f32, PAGE_HEIGHT as f32));
    form.resources().fonts().pair(FONT_NAME, type0_id);
    form.finish();

    let media = Rect::new(0.0, 0.0, points(PAGE_WIDTH), points(PAGE_HEIGHT));
    for (layer, (page_id, content_id)) in layout.pages.iter().zip(&page_ids) {
        let mut page = pdf.page(*page_id);
        page.parent(tree_id).media_box(media).contents(*content_id);
        let mut resources = page.resources();
        resources.fonts().pair(FONT_NAME, type0_id);
        resources.x_objects().pair(TEMPLATE_NAME, template_id);
        resources.finish();
        page.finish();

        let mut content = Content::new();
        content.save_state();
        content.transform([POINTS_PER_UNIT, 0.0, 0.0, POINTS_PER_UNIT, 0.0, 0.0]);
        content.x_object(TEMPLATE_NAME);
        let mut bytes = content.finish().into_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(&draw(layer, |c| subset.glyph_id(c)));
        bytes.extend_from_slice(b"\nQ\n");
        let compressed = font::zlib(&bytes);
        pdf.stream(*content_id, &compressed)
            .filter(Filter::FlateDecode);
    }

    let title = issued.content.kind.title_zh();
    let at = issued.issued_at;
    let date = Date::new(u16::try_from(at.year()).unwrap_or(2000))
        .month(u8::try_from(at.month()).unwrap_or(1))
        .day(u8::try_from(at.day()).unwrap_or(1))
        .hour(u8::try_from(at.hour()).unwrap_or(0))
        .minute(u8::try_from(at.minute()).unwrap_or(0))
        .second(u8::try_from(at.second()).unwrap_or(0))
        .utc_offset_hour(8)
        .utc_offset_minute(0);
    let subject = format!("{title} {}", issued.number);
    pdf.document_info(info_id)
        .title(TextStr(title))
        .subject(TextStr(&subject))
        .creator(TextStr("fapiao"))
        .producer(TextStr(concat!(
            "fapiao-archive ",
            env!("CARGO_PKG_VERSION")
        )))
        .creation_date(date)
        .modified_date(date);
    pdf.finish()
}

/// First 16 bytes of the SM3 digest of the invoice number: the file identifier.
fn number_digest(issued: &Issued<'_>) -> Vec<u8> {
    use sm3::Digest;
    sm3::Sm3::digest(issued.number.to_string().as_bytes())
        .iter()
        .take(16)
        .copied()
        .collect()
}

/// The Type0 font, its CIDFont, descriptor, embedded file and ToUnicode map.
fn write_font(pdf: &mut Pdf, subset: &Subset, [type0, cid, descriptor, file, cmap]: [Ref; 5]) {
    let base = format!("{}+{}", subset.tag(), font::POSTSCRIPT_NAME);
    let base = Name(base.as_bytes());
    let system = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };
    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid)
        .to_unicode(cmap);

    let em = font::metrics().units_per_em;
    let mut cid_font = pdf.cid_font(cid);
    cid_font
        .subtype(CidFontType::Type2)
        .base_font(base)
        .system_info(system)
        .font_descriptor(descriptor)
        .default_width(1000.0)
        .cid_to_gid_map_predefined(Name(b"Identity"));
    // Widths of the glyphs that are not one em wide, in runs of consecutive ids.
    let mut widths = cid_font.widths();
    let mut run: Vec<f32> = Vec::new();
    let mut run_start = 0u16;
    let narrow = subset
        .advances()
        .iter()
        .filter(|(_, advance)| i32::from(*advance) != em);
    for (id, advance) in narrow {
        if !run.is_empty() && usize::from(run_start) + run.len() != usize::from(*id) {
            widths.consecutive(run_start, run.drain(..));
        }
        if run.is_empty() {
            run_start = *id;
        }
        run.push(thousandths(*advance));
    }
    if !run.is_empty() {
        widths.consecutive(run_start, run.drain(..));
    }
    widths.finish();
    cid_font.finish();

    let m = font::metrics();
    let signed = glyph_space;
    pdf.font_descriptor(descriptor)
        .name(base)
        .family(Str(font::FAMILY_NAME.as_bytes()))
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(
            signed(m.bbox[0]),
            signed(m.bbox[1]),
            signed(m.bbox[2]),
            signed(m.bbox[3]),
        ))
        .italic_angle(0.0)
        .ascent(signed(m.ascender))
        .descent(signed(m.descender))
        .cap_height(signed(m.cap_height))
        .stem_v(80.0)
        .font_file2(file);

    let data = subset.data();
    let deflated = subset.deflated();
    pdf.stream(file, &deflated.zlib)
        .filter(Filter::FlateDecode)
        .pair(
            Name(b"Length1"),
            i32::try_from(data.len()).unwrap_or(i32::MAX),
        );

    let mut map = UnicodeCmap::new(Name(b"fapiao-UCS"), system);
    // One character per glyph: the first (by code point) that maps to it; .notdef as U+FFFD.
    let mut by_glyph: BTreeMap<u16, char> = BTreeMap::new();
    for (c, id) in subset.chars() {
        by_glyph
            .entry(*id)
            .or_insert(if *id == 0 { '\u{FFFD}' } else { *c });
    }
    for (id, c) in by_glyph {
        map.pair(id, c);
    }
    let cmap_data = font::deflate(map.finish().as_slice());
    pdf.stream(cmap, &cmap_data.zlib)
        .filter(Filter::FlateDecode);
}

/// The template's content stream, compressed. Template characters have the first glyph ids of
/// every subset (see [`font::subset`]), so the stream is the same for every invoice of a kind and
/// is built once; a subset numbering them otherwise (not expected) gets its own.
fn template_stream(kind: InvoiceKind, layout: &Layout, subset: &Subset) -> Cow<'static, [u8]> {
    fn build(kind: InvoiceKind) -> Vec<u8> {
        let template = layout::template(kind);
        font::zlib(&draw(&template.layer, |c| canonical_id(&template.chars, c)))
    }
    fn canonical_id(chars: &[char], c: char) -> u16 {
        chars
            .binary_search(&c)
            .ok()
            .and_then(|i| u16::try_from(i + 1).ok())
            .unwrap_or(0)
    }
    static SPECIAL: LazyLock<Vec<u8>> = LazyLock::new(|| build(InvoiceKind::Special));
    static GENERAL: LazyLock<Vec<u8>> = LazyLock::new(|| build(InvoiceKind::General));
    let chars = &layout.template.chars;
    let canonical = chars
        .iter()
        .all(|c| subset.glyph_id(*c) == canonical_id(chars, *c) && font::covers(*c));
    if canonical && std::ptr::eq(layout.template, layout::template(kind)) {
        Cow::Borrowed(match kind {
            InvoiceKind::Special => SPECIAL.as_slice(),
            InvoiceKind::General => GENERAL.as_slice(),
        })
    } else {
        Cow::Owned(font::zlib(&draw(&layout.template.layer, |c| {
            subset.glyph_id(c)
        })))
    }
}

/// The content stream drawing `layer` in layout units (y flipped), glyphs numbered by `id`.
fn draw(layer: &Layer, id: impl Fn(char) -> u16) -> Vec<u8> {
    let mut content = Content::new();
    // Rules, grouped by colour and width.
    let mut groups: BTreeMap<(Rgb, i32), Vec<&layout::Rule>> = BTreeMap::new();
    for rule in &layer.rules {
        groups
            .entry((rule.colour, rule.width))
            .or_default()
            .push(rule);
    }
    for ((colour, width), rules) in groups {
        content.set_stroke_rgb(
            component(colour.0),
            component(colour.1),
            component(colour.2),
        );
        content.set_line_width(width as f32);
        for rule in rules {
            content.move_to(rule.from.0 as f32, (PAGE_HEIGHT - rule.from.1) as f32);
            content.line_to(rule.to.0 as f32, (PAGE_HEIGHT - rule.to.1) as f32);
        }
        content.stroke();
    }
    if !layer.texts.is_empty() {
        content.begin_text();
        let mut colour = None;
        let mut size = None;
        let mut glyphs = Vec::new();
        for run in &layer.texts {
            if colour != Some(run.colour) {
                let Rgb(r, g, b) = run.colour;
                content.set_fill_rgb(component(r), component(g), component(b));
                colour = Some(run.colour);
            }
            if size != Some(run.size) {
                content.set_font(FONT_NAME, run.size as f32);
                size = Some(run.size);
            }
            content.set_text_matrix([
                1.0,
                0.0,
                0.0,
                1.0,
                run.x as f32,
                (PAGE_HEIGHT - run.baseline) as f32,
            ]);
            glyphs.clear();
            for c in run.text.chars() {
                glyphs.extend_from_slice(&id(c).to_be_bytes());
            }
            content.show(Str(&glyphs));
        }
        content.end_text();
    }
    content.finish().into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn the_same_invoice_gives_the_same_bytes() {
        let content = sample::blue();
        let issued = Issued {
            number: sample::number(),
            issued_at: sample::issued_at(),
            content: &content,
        };
        let a = write(&issued);
        font::clear_cache();
        let b = write(&issued);
        assert_eq!(a, b);
        assert!(a.starts_with(b"%PDF-"));
        let other = Issued {
            number: sample::red_number(),
            ..issued
        };
        assert_ne!(write(&other), a);
    }
}
