//! The bundled font: Droid Sans Fallback (`fonts/DroidSansFallbackFull.ttf`, Apache-2.0), its
//! metrics and per-document subsets.
//!
//! It owns character → glyph lookup, advance widths and the scaling of advances to layout units
//! (hundredths of a millimetre), and the subset font a document embeds ([`subset`]): exactly the
//! glyphs of the characters the document shows (plus `.notdef` and composite components), with a
//! `cmap` so that OFD readers can map text, usable as a PDF `FontFile2` as well.
//!
//! The font has no ASCII glyphs, only the full-width forms (U+FF01–FF5E). So that digits and Latin
//! text look proportional rather than full-width, the font is loaded once with synthetic glyphs
//! appended: for each printable ASCII character (and `¥`, `·`, …) a composite of the full-width
//! form, shifted and given a narrow advance (digits share one advance, so figures align).
//!
//! It must not know about invoices or page layout, and never panics on text: a character the font
//! lacks is drawn as `.notdef` (a box) with that glyph's advance.

mod compress;
mod sfnt;
mod subset;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

pub use compress::{Deflated, LEVEL as DEFLATE_LEVEL, deflate, raw, zlib};
use sfnt::Synthetic;

/// The bundled font file, unmodified.
pub const BUNDLED: &[u8] = include_bytes!("../fonts/DroidSansFallbackFull.ttf");
/// PostScript name of the bundled font.
pub const POSTSCRIPT_NAME: &str = "DroidSansFallback";
/// Family name of the bundled font.
pub const FAMILY_NAME: &str = "Droid Sans Fallback";

/// Side bearing of the synthetic proportional glyphs, in font units.
const SIDE: i16 = 10;

/// A glyph of the loaded font (bundled glyphs plus the synthetic ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyph {
    /// Glyph id; 0 is `.notdef`, used for characters the font lacks.
    pub id: u16,
    /// Advance width in font units.
    pub advance: u16,
}

/// Vertical metrics and bounding box, in font units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    pub units_per_em: i32,
    pub ascender: i32,
    /// Negative.
    pub descender: i32,
    pub cap_height: i32,
    /// `[x_min, y_min, x_max, y_max]` of every glyph.
    pub bbox: [i32; 4],
}

struct Font {
    /// The bundled font with the synthetic glyphs appended: the input of every subset.
    data: Vec<u8>,
    /// Glyph of every BMP code point (id 0 where the font has none).
    bmp: Vec<Glyph>,
    /// Glyphs of supplementary-plane code points, sorted.
    supplementary: Vec<(u32, Glyph)>,
    notdef: Glyph,
    metrics: Metrics,
    /// The bundled `OS/2` table, copied into subsets.
    os2: Option<Vec<u8>>,
}

impl std::fmt::Debug for Font {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Font")
            .field("bytes", &self.data.len())
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

static FONT: LazyLock<Font> = LazyLock::new(load);

/// Characters drawn with a synthetic glyph: `(character, source character, tabular)`.
fn synthetic_sources() -> Vec<(char, char, bool)> {
    let mut out: Vec<(char, char, bool)> = ('!'..='~')
        .filter_map(|c| {
            let full = char::from_u32(u32::from(c) + 0xFEE0)?;
            Some((c, full, c.is_ascii_digit()))
        })
        .collect();
    out.extend([
        ('¥', '￥', false),
        ('·', '・', false),
        ('¢', '￠', false),
        ('£', '￡', false),
        ('¬', '￢', false),
        ('¯', '￣', false),
        ('¦', '￤', false),
    ]);
    out
}

fn load() -> Font {
    let face = ttf_parser::Face::parse(BUNDLED, 0).expect("the bundled font parses");
    let advance = |id: u16| face.glyph_hor_advance(ttf_parser::GlyphId(id)).unwrap_or(0);
    let notdef = Glyph {
        id: 0,
        advance: advance(0),
    };
    let mut bmp = vec![notdef; 0x1_0000];
    let mut supplementary = Vec::new();
    if let Some(cmap) = face.tables().cmap {
        for subtable in cmap.subtables.into_iter().filter(|s| s.is_unicode()) {
            subtable.codepoints(|cp| {
                if let Some(id) = subtable.glyph_index(cp) {
                    let glyph = Glyph {
                        id: id.0,
                        advance: advance(id.0),
                    };
                    match usize::try_from(cp).ok().and_then(|i| bmp.get_mut(i)) {
                        Some(slot) => *slot = glyph,
                        None => supplementary.push((cp, glyph)),
                    }
                }
            });
        }
    }
    supplementary.sort_by_key(|(cp, _)| *cp);
    supplementary.dedup_by_key(|(cp, _)| *cp);

    // Synthetic proportional glyphs, appended after the bundled ones.
    let bbox_of = |id: u16| {
        face.glyph_bounding_box(ttf_parser::GlyphId(id))
            .map(|r| [r.x_min, r.y_min, r.x_max, r.y_max])
    };
    let lookup = |bmp: &[Glyph], c: char| bmp.get(c as usize).copied().unwrap_or(notdef);
    let sources = synthetic_sources();
    let digit_ink = sources
        .iter()
        .filter(|(_, _, tabular)| *tabular)
        .filter_map(|(_, s, _)| bbox_of(lookup(&bmp, *s).id))
        .map(|[x_min, _, x_max, _]| x_max - x_min)
        .max()
        .unwrap_or(0);
    let mut extra = Vec::new();
    let mut extra_chars = Vec::new();
    for (c, source, tabular) in sources {
        let glyph = lookup(&bmp, source);
        if glyph.id == 0 || lookup(&bmp, c).id != 0 {
            continue;
        }
        let Some(bbox) = bbox_of(glyph.id) else {
            continue;
        };
        let ink = bbox[2] - bbox[0];
        let (advance, left) = if tabular {
            (digit_ink + 2 * SIDE, SIDE + (digit_ink - ink) / 2)
        } else {
            (ink + 2 * SIDE, SIDE)
        };
        extra.push(Synthetic {
            source: glyph.id,
            dx: left - bbox[0],
            advance: u16::try_from(advance).unwrap_or(0),
            bbox,
        });
        extra_chars.push(c);
    }
    let num_glyphs = face.number_of_glyphs();
    let data = match sfnt::augment(BUNDLED, &extra) {
        Some(data) => {
            for (i, (c, glyph)) in extra_chars.iter().zip(&extra).enumerate() {
                let id = u16::try_from(i)
                    .ok()
                    .and_then(|i| num_glyphs.checked_add(i));
                if let (Some(slot), Some(id)) = (bmp.get_mut(*c as usize), id) {
                    *slot = Glyph {
                        id,
                        advance: glyph.advance,
                    };
                }
            }
            data
        }
        // Not expected: the bundled font is fixed. Latin then shows as `.notdef`.
        None => BUNDLED.to_vec(),
    };

    let global = face.global_bounding_box();
    let metrics = Metrics {
        units_per_em: i32::from(face.units_per_em()),
        ascender: i32::from(face.typographic_ascender().unwrap_or(face.ascender())),
        descender: i32::from(face.typographic_descender().unwrap_or(face.descender())),
        cap_height: i32::from(face.capital_height().unwrap_or(face.ascender())),
        bbox: [
            i32::from(global.x_min),
            i32::from(global.y_min),
            i32::from(global.x_max),
            i32::from(global.y_max),
        ],
    };
    let os2 = face
        .raw_face()
        .table(ttf_parser::Tag::from_bytes(b"OS/2"))
        .map(<[u8]>::to_vec);
    Font {
        data,
        bmp,
        supplementary,
        notdef,
        metrics,
        os2,
    }
}

/// The font's metrics.
pub fn metrics() -> Metrics {
    FONT.metrics
}

/// The glyph drawing `c`: `.notdef` (id 0) when the font has none.
pub fn glyph(c: char) -> Glyph {
    let font = &*FONT;
    let cp = u32::from(c);
    if cp < 0x1_0000 {
        font.bmp.get(cp as usize).copied().unwrap_or(font.notdef)
    } else {
        font.supplementary
            .binary_search_by_key(&cp, |(c, _)| *c)
            .ok()
            .and_then(|i| font.supplementary.get(i))
            .map_or(font.notdef, |(_, g)| *g)
    }
}

/// Whether the font has a glyph for `c`.
pub fn covers(c: char) -> bool {
    glyph(c).id != 0
}

/// `font_units × size / units_per_em`, rounded: font units at `size` in layout units.
fn scale(font_units: i64, size: i32) -> i32 {
    let upem = i64::from(FONT.metrics.units_per_em.max(1));
    let scaled = (font_units * i64::from(size) * 2 + upem) / (2 * upem);
    i32::try_from(scaled).unwrap_or(i32::MAX)
}

/// Width of `text` at font size `size`, both in layout units.
pub fn width(text: &str, size: i32) -> i32 {
    let total: i64 = text.chars().map(|c| i64::from(glyph(c).advance)).sum();
    scale(total, size)
}

/// Glyph origins of `text` at font size `size` relative to the start of the run, one per char,
/// followed by the end of the run (so `len = chars + 1`). Rounded from exact cumulative advances,
/// so the OFD and the PDF place every glyph at the same point.
pub fn positions(text: &str, size: i32) -> Vec<i32> {
    let mut out = Vec::with_capacity(text.len() + 1);
    let mut total = 0i64;
    out.push(0);
    for c in text.chars() {
        total += i64::from(glyph(c).advance);
        out.push(scale(total, size));
    }
    out
}

/// A document's font: the glyphs of the characters it shows, renumbered from 1 (`.notdef` is 0),
/// as a TrueType font with a `cmap`.
pub struct Subset {
    data: Vec<u8>,
    /// Character → glyph id in the subset, sorted by character. Characters the font lacks map
    /// to 0.
    map: Vec<(char, u16)>,
    /// Advance (font units) of each subset glyph id that a character maps to.
    advances: Vec<(u16, u16)>,
    tag: String,
    /// How the file splits to compress from its cached prefix; `None` after a fallback.
    pieces: Option<subset::Pieces>,
    deflated: OnceLock<Deflated>,
}

impl std::fmt::Debug for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subset")
            .field("tag", &self.tag)
            .field("bytes", &self.data.len())
            .field("chars", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl Subset {
    /// The TrueType file.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The file compressed (computed once, shared by the OFD and PDF writers).
    pub fn deflated(&self) -> &Deflated {
        self.deflated.get_or_init(|| match &self.pieces {
            Some(pieces) => pieces.deflate(&self.data),
            None => deflate(&self.data),
        })
    }

    /// Glyph id of `c` in the subset: 0 if the document does not use `c` or the font lacks it.
    pub fn glyph_id(&self, c: char) -> u16 {
        self.map
            .binary_search_by_key(&c, |(ch, _)| *ch)
            .ok()
            .and_then(|i| self.map.get(i))
            .map_or(0, |(_, g)| *g)
    }

    /// Every character of the document with its subset glyph id, sorted by character.
    pub fn chars(&self) -> &[(char, u16)] {
        &self.map
    }

    /// `(glyph id, advance in font units)` of every glyph a character maps to, by glyph id.
    pub fn advances(&self) -> &[(u16, u16)] {
        &self.advances
    }

    /// Six capital letters derived from the glyph set, for the PDF `BaseFont` (`ABCDEF+Name`).
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

/// Most recent subsets, shared across threads: the OFD and the PDF of one invoice use the same
/// characters, so the second writer finds the first one's subset (and its compressed bytes).
type CacheKey = (usize, Vec<char>);
static CACHE: Mutex<VecDeque<(CacheKey, Arc<Subset>)>> = Mutex::new(VecDeque::new());
const CACHE_SIZE: usize = 16;

/// Forget cached subsets (benchmarks measure the uncached cost with it).
#[doc(hidden)]
pub fn clear_cache() {
    if let Ok(mut cache) = CACHE.lock() {
        cache.clear();
    }
}

/// The subset for a document showing `chars` (sorted, without repeats). Glyphs of `first` (those
/// of its characters in `chars`) get the lowest ids in that order, so a fixed template is drawn
/// with fixed glyph ids; the rest follow by character.
pub fn subset(first: &[char], chars: &[char]) -> Arc<Subset> {
    let mut order: Vec<char> = Vec::with_capacity(chars.len());
    order.extend(
        first
            .iter()
            .copied()
            .filter(|c| chars.binary_search(c).is_ok()),
    );
    let fixed = order.len();
    let mut head = order.clone();
    head.sort_unstable();
    order.extend(
        chars
            .iter()
            .copied()
            .filter(|c| head.binary_search(c).is_err()),
    );
    if let Ok(cache) = CACHE.lock()
        && let Some((_, hit)) = cache
            .iter()
            .find(|((f, key), _)| *f == fixed && *key == order)
    {
        return Arc::clone(hit);
    }
    let built = Arc::new(build_subset(&order, fixed));
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= CACHE_SIZE {
            cache.pop_back();
        }
        cache.push_front(((fixed, order), Arc::clone(&built)));
    }
    built
}

fn build_subset(order: &[char], fixed: usize) -> Subset {
    match subset::build(order, fixed) {
        Some(built) => finish(order, built.map, built.data, Some(built.pieces)),
        None => build_with_subsetter(order),
    }
}

/// The fallback (not expected to be used): the `subsetter` crate, then a `cmap` added.
fn build_with_subsetter(order: &[char]) -> Subset {
    let font = &*FONT;
    let mut remapper = subsetter::GlyphRemapper::new();
    for c in order {
        let id = glyph(*c).id;
        if id != 0 {
            remapper.remap(id);
        }
    }
    let subset = subsetter::subset(&font.data, 0, &remapper).ok();
    // Without a subset the whole loaded font is embedded, with its own ids.
    let new_id = |old: u16| match &subset {
        Some(_) => remapper.get(old).unwrap_or(0),
        None => old,
    };
    let mut map: Vec<(char, u16)> = order.iter().map(|c| (*c, new_id(glyph(*c).id))).collect();
    map.sort_by_key(|(c, _)| *c);
    let mapped: Vec<(char, u16)> = map.iter().copied().filter(|(_, g)| *g != 0).collect();
    let base: Cow<'_, [u8]> = match &subset {
        Some(data) => Cow::Borrowed(data),
        None => Cow::Borrowed(&font.data),
    };
    let data =
        sfnt::with_cmap(&base, &mapped, font.os2.as_deref()).unwrap_or_else(|| base.to_vec());
    finish(order, map, data, None)
}

fn finish(
    order: &[char],
    map: Vec<(char, u16)>,
    data: Vec<u8>,
    pieces: Option<subset::Pieces>,
) -> Subset {
    let mut advances: Vec<(u16, u16)> =
        map.iter().map(|(c, id)| (*id, glyph(*c).advance)).collect();
    advances.sort_unstable();
    advances.dedup_by_key(|(id, _)| *id);
    Subset {
        data,
        tag: subset_tag(order),
        map,
        advances,
        pieces,
        deflated: OnceLock::new(),
    }
}

/// Six capitals from the SM3 digest of the characters.
fn subset_tag(order: &[char]) -> String {
    use sm3::Digest;
    let text: String = order.iter().collect();
    let digest = sm3::Sm3::digest(text.as_bytes());
    digest
        .iter()
        .take(6)
        .map(|b| char::from(b'A' + b % 26))
        .collect()
}

#[cfg(test)]
mod tests;
