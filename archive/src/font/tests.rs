//! Tests of the font: synthetic Latin glyphs, metrics, subsets against the font and `subsetter`.

use super::*;
use std::collections::BTreeSet;

#[test]
fn latin_is_drawn_with_narrow_synthetic_glyphs() {
    let em = metrics().units_per_em;
    for c in ['0', '9', 'A', 'z', '.', '-', '¥', '%'] {
        let limit = if c == '%' { em } else { em * 3 / 4 };
        let g = glyph(c);
        assert_ne!(g.id, 0, "{c}");
        assert!(i32::from(g.advance) < limit, "{c} is narrow");
        assert_ne!(
            g.id,
            glyph(char::from_u32(u32::from(c) + 0xFEE0).unwrap_or('￥')).id
        );
    }
    // Digits share one advance so that figures align.
    let digits: BTreeSet<u16> = ('0'..='9').map(|c| glyph(c).advance).collect();
    assert_eq!(digits.len(), 1);
    assert_eq!(i32::from(glyph('票').advance), em);
    assert!(covers(' '));
    assert!(!covers('\u{2603}'));
    assert_eq!(glyph('\u{2603}').id, 0);
}

#[test]
fn widths_scale_to_layout_units() {
    // A CJK glyph is one em: at 3 mm (300 units) two of them are 6 mm wide.
    assert_eq!(width("发票", 300), 600);
    let p = positions("发票1", 300);
    assert_eq!(p.len(), 4);
    assert_eq!(&p[..3], &[0, 300, 600]);
    assert_eq!(p[3], width("发票1", 300));
    assert_eq!(width("", 300), 0);
}

#[test]
fn a_subset_holds_exactly_the_used_glyphs() {
    let chars: BTreeSet<char> = "电子发票（）12.50¥ABCxyz测试".chars().collect();
    let sub = build_subset(&chars.iter().copied().collect::<Vec<_>>(), 3);
    let face = ttf_parser::Face::parse(sub.data(), 0).unwrap();
    // .notdef + one glyph per char + the components of the composite glyphs.
    let font = &*FONT;
    let full = ttf_parser::Face::parse(&font.data, 0).unwrap();
    let mut closure: BTreeSet<u16> = chars.iter().map(|c| glyph(*c).id).collect();
    closure.insert(0);
    let mut stack: Vec<u16> = closure.iter().copied().collect();
    let glyf = full
        .raw_face()
        .table(ttf_parser::Tag::from_bytes(b"glyf"))
        .unwrap();
    let loca = full
        .raw_face()
        .table(ttf_parser::Tag::from_bytes(b"loca"))
        .unwrap();
    while let Some(g) = stack.pop() {
        let start = sfnt::u32_at(loca, 4 * usize::from(g)).unwrap() as usize;
        let end = sfnt::u32_at(loca, 4 * usize::from(g) + 4).unwrap() as usize;
        if end > start && sfnt::i16_at(glyf, start).unwrap() < 0 {
            let mut at = start + 10;
            loop {
                let flags = sfnt::u16_at(glyf, at).unwrap();
                let component = sfnt::u16_at(glyf, at + 2).unwrap();
                if closure.insert(component) {
                    stack.push(component);
                }
                at += 4 + if flags & 1 != 0 { 4 } else { 2 };
                at += if flags & 8 != 0 {
                    2
                } else if flags & 0x40 != 0 {
                    4
                } else if flags & 0x80 != 0 {
                    8
                } else {
                    0
                };
                if flags & 0x20 == 0 {
                    break;
                }
            }
        }
    }
    assert_eq!(usize::from(face.number_of_glyphs()), closure.len());
    for c in &chars {
        let id = face
            .glyph_index(*c)
            .unwrap_or_else(|| panic!("{c} is mapped"));
        assert_eq!(id.0, sub.glyph_id(*c));
        assert!(face.glyph_hor_advance(id).unwrap() > 0);
    }
    assert!(face.glyph_index('龘').is_none());
    assert_eq!(sub.tag().len(), 6);
}

#[test]
fn subsets_put_the_fixed_characters_first_and_are_deterministic() {
    let chars: Vec<char> = "购买方名称ABC"
        .chars()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let first = ['名', '称', '购'];
    let a = subset(&first, &chars);
    clear_cache();
    let b = subset(&first, &chars);
    assert_eq!(a.data(), b.data());
    assert_eq!(a.glyph_id('名'), 1);
    assert_eq!(a.glyph_id('称'), 2);
    assert_eq!(a.glyph_id('购'), 3);
    // Cached: the same Arc comes back.
    assert!(Arc::ptr_eq(&b, &subset(&first, &chars)));
    let d = a.deflated();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&d.zlib[..]), &mut out).unwrap();
    assert_eq!(out, a.data());
}

#[test]
fn characters_the_font_lacks_map_to_notdef() {
    let sub = subset(&[], &['A', '☃']);
    assert_eq!(sub.glyph_id('☃'), 0);
    assert_ne!(sub.glyph_id('A'), 0);
    assert!(ttf_parser::Face::parse(sub.data(), 0).is_ok());
}

/// Records a glyph outline.
#[derive(Default, PartialEq, Debug)]
struct Outline(Vec<(char, i32, i32)>);

impl ttf_parser::OutlineBuilder for Outline {
    fn move_to(&mut self, x: f32, y: f32) {
        self.0.push(('M', x as i32, y as i32));
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.0.push(('L', x as i32, y as i32));
    }
    fn quad_to(&mut self, _: f32, _: f32, x: f32, y: f32) {
        self.0.push(('Q', x as i32, y as i32));
    }
    fn curve_to(&mut self, _: f32, _: f32, _: f32, _: f32, x: f32, y: f32) {
        self.0.push(('C', x as i32, y as i32));
    }
    fn close(&mut self) {
        self.0.push(('Z', 0, 0));
    }
}

fn outline(face: &ttf_parser::Face<'_>, id: u16) -> Outline {
    let mut o = Outline::default();
    let _ = face.outline_glyph(ttf_parser::GlyphId(id), &mut o);
    o
}

#[test]
fn the_fast_subset_draws_what_the_font_and_subsetter_draw() {
    let text =
        "电子发票（增值税专用发票）名称：北京某某信息技术有限公司ThinkStation P3 -49391.58¥%";
    let chars: BTreeSet<char> = text.chars().collect();
    let order: Vec<char> = chars.iter().copied().collect();
    let fast = build_subset(&order, 10);
    assert!(fast.pieces.is_some(), "the fast path is taken");
    let reference = build_with_subsetter(&order);
    let font = &*FONT;
    let full = ttf_parser::Face::parse(&font.data, 0).unwrap();
    let a = ttf_parser::Face::parse(fast.data(), 0).unwrap();
    let b = ttf_parser::Face::parse(reference.data(), 0).unwrap();
    // Same glyph set (.notdef, the characters' glyphs, their components).
    assert_eq!(a.number_of_glyphs(), b.number_of_glyphs());
    for c in &chars {
        let ga = a.glyph_index(*c).unwrap();
        let gb = b.glyph_index(*c).unwrap();
        let want = outline(&full, glyph(*c).id);
        assert!(!want.0.is_empty() || *c == ' ', "{c} has an outline");
        assert_eq!(outline(&a, ga.0), want, "{c}");
        assert_eq!(outline(&b, gb.0), want, "{c}");
        assert_eq!(a.glyph_hor_advance(ga), Some(glyph(*c).advance));
    }
    // The compressed file (directory, cached prefix, rest) inflates to the file.
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::ZlibDecoder::new(&fast.deflated().zlib[..]),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, fast.data());
    assert_eq!(fast.deflated().crc32, compress::crc32(fast.data()));
}
