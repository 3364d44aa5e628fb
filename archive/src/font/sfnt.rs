//! Low-level TrueType (sfnt) table surgery for [`crate::font`]: reading a table directory,
//! writing a font from tables (checksums, `head.checkSumAdjustment`), appending synthetic composite
//! glyphs to the bundled font, and adding a `cmap` (and `OS/2`) to a subset.
//!
//! It knows byte layouts only: which glyphs to synthesise and which characters a subset maps are
//! decided by the caller. Every read is bounds-checked and returns `None` on malformed input; it
//! never panics.

use std::borrow::Cow;

/// A table tag, e.g. `*b"glyf"`.
pub(crate) type Tag = [u8; 4];

pub(crate) fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

pub(crate) fn i16_at(data: &[u8], at: usize) -> Option<i16> {
    u16_at(data, at).map(|v| v as i16)
}

pub(crate) fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

pub(crate) fn put_u16(data: &mut [u8], at: usize, value: u16) -> Option<()> {
    data.get_mut(at..at + 2)?
        .copy_from_slice(&value.to_be_bytes());
    Some(())
}

/// The tables of a single (non-collection) font, in directory order.
pub(crate) fn tables(font: &[u8]) -> Option<Vec<(Tag, &[u8])>> {
    let count = usize::from(u16_at(font, 4)?);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let record = 12 + 16 * i;
        let tag: Tag = font.get(record..record + 4)?.try_into().ok()?;
        let offset = usize::try_from(u32_at(font, record + 8)?).ok()?;
        let length = usize::try_from(u32_at(font, record + 12)?).ok()?;
        out.push((tag, font.get(offset..offset.checked_add(length)?)?));
    }
    Some(out)
}

pub(crate) fn table<'a>(tables: &[(Tag, &'a [u8])], tag: &Tag) -> Option<&'a [u8]> {
    tables.iter().find(|(t, _)| t == tag).map(|(_, d)| *d)
}

/// The table checksum of `data`: the sum of its big-endian words, zero-padded.
pub(crate) fn checksum(data: &[u8]) -> u32 {
    let words = data.chunks_exact(4);
    let tail = words.remainder();
    let mut sum = words.fold(0u32, |sum, w| {
        sum.wrapping_add(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    });
    if !tail.is_empty() {
        let mut last = [0u8; 4];
        for (to, from) in last.iter_mut().zip(tail) {
            *to = *from;
        }
        sum = sum.wrapping_add(u32::from_be_bytes(last));
    }
    sum
}

/// Writes a TrueType font from its tables: sorted directory, 4-byte padding, table checksums and
/// the `head` checksum adjustment.
pub(crate) fn build(mut tables: Vec<(Tag, Cow<'_, [u8]>)>) -> Vec<u8> {
    tables.sort_by_key(|t| t.0);
    let count = tables.len();
    let total: usize = tables
        .iter()
        .map(|(_, d)| d.len().next_multiple_of(4))
        .sum();
    let mut out = Vec::with_capacity(12 + 16 * count + total);
    let num_tables = u16::try_from(count).unwrap_or(u16::MAX);
    // searchRange = 16 × the largest power of two ≤ count; entrySelector = its log2.
    let entry_selector = if num_tables == 0 {
        0
    } else {
        15 - num_tables.leading_zeros() as u16
    };
    let search_range = (1u16 << entry_selector).saturating_mul(16);
    out.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    out.extend_from_slice(&num_tables.to_be_bytes());
    out.extend_from_slice(&search_range.to_be_bytes());
    out.extend_from_slice(&entry_selector.to_be_bytes());
    out.extend_from_slice(
        &num_tables
            .saturating_mul(16)
            .saturating_sub(search_range)
            .to_be_bytes(),
    );
    let mut offset = 12 + 16 * count;
    let mut head_at = None;
    for (tag, data) in &mut tables {
        if tag == b"head" && data.len() >= 12 {
            data.to_mut()[8..12].fill(0);
            head_at = Some(offset + 8);
        }
        out.extend_from_slice(tag);
        out.extend_from_slice(&checksum(data).to_be_bytes());
        out.extend_from_slice(&u32::try_from(offset).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
        offset += data.len().next_multiple_of(4);
    }
    for (_, data) in &tables {
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    if let Some(at) = head_at {
        let adjustment = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
        out[at..at + 4].copy_from_slice(&adjustment.to_be_bytes());
    }
    out
}

/// A glyph added to the bundled font: a composite of one existing glyph shifted horizontally,
/// with its own advance (used for proportional Latin drawn from the full-width forms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Synthetic {
    pub source: u16,
    pub dx: i16,
    pub advance: u16,
    /// The source glyph's bounding box `[x_min, y_min, x_max, y_max]`.
    pub bbox: [i16; 4],
}

/// The bundled font with `extra` glyphs appended (ids `num_glyphs`, `num_glyphs + 1`, …): the
/// tables subsetting needs (`glyf`, `loca`, `hmtx`, `hhea`, `maxp`, `head`, `name`, `post`,
/// hinting tables) plus `OS/2`; no `cmap` (lookups use the original face).
pub(crate) fn augment(font: &[u8], extra: &[Synthetic]) -> Option<Vec<u8>> {
    let tables = tables(font)?;
    let head = table(&tables, b"head")?;
    let hhea = table(&tables, b"hhea")?;
    let maxp = table(&tables, b"maxp")?;
    let hmtx = table(&tables, b"hmtx")?;
    let loca = table(&tables, b"loca")?;
    let glyf = table(&tables, b"glyf")?;
    let num_glyphs = usize::from(u16_at(maxp, 4)?);
    let long_loca = i16_at(head, 50)? != 0;
    let num_metrics = usize::from(u16_at(hhea, 34)?);
    let total = num_glyphs.checked_add(extra.len())?;
    let total_u16 = u16::try_from(total).ok()?;

    let mut new_glyf = Vec::with_capacity(glyf.len() + 20 * extra.len());
    new_glyf.extend_from_slice(glyf);
    let mut new_loca = Vec::with_capacity(4 * (total + 1));
    for i in 0..=num_glyphs {
        let offset = if long_loca {
            u32_at(loca, 4 * i)?
        } else {
            u32::from(u16_at(loca, 2 * i)?) * 2
        };
        new_loca.extend_from_slice(&offset.to_be_bytes());
    }
    for glyph in extra {
        let [x_min, y_min, x_max, y_max] = glyph.bbox;
        new_glyf.extend_from_slice(&(-1i16).to_be_bytes());
        for v in [
            x_min.saturating_add(glyph.dx),
            y_min,
            x_max.saturating_add(glyph.dx),
            y_max,
        ] {
            new_glyf.extend_from_slice(&v.to_be_bytes());
        }
        // ARG_1_AND_2_ARE_WORDS | ARGS_ARE_XY_VALUES | ROUND_XY_TO_GRID, no more components.
        new_glyf.extend_from_slice(&0x0007u16.to_be_bytes());
        new_glyf.extend_from_slice(&glyph.source.to_be_bytes());
        new_glyf.extend_from_slice(&glyph.dx.to_be_bytes());
        new_glyf.extend_from_slice(&0i16.to_be_bytes());
        new_glyf.resize(new_glyf.len().next_multiple_of(4), 0);
        new_loca.extend_from_slice(&u32::try_from(new_glyf.len()).ok()?.to_be_bytes());
    }

    let mut new_hmtx = Vec::with_capacity(4 * total);
    let mut last_advance = 0u16;
    for i in 0..num_glyphs {
        let (advance, lsb) = if i < num_metrics {
            (u16_at(hmtx, 4 * i)?, i16_at(hmtx, 4 * i + 2)?)
        } else {
            (
                last_advance,
                i16_at(hmtx, 4 * num_metrics + 2 * (i - num_metrics))?,
            )
        };
        last_advance = advance;
        new_hmtx.extend_from_slice(&advance.to_be_bytes());
        new_hmtx.extend_from_slice(&lsb.to_be_bytes());
    }
    for glyph in extra {
        new_hmtx.extend_from_slice(&glyph.advance.to_be_bytes());
        new_hmtx.extend_from_slice(&glyph.bbox[0].saturating_add(glyph.dx).to_be_bytes());
    }

    let mut new_head = head.to_vec();
    put_u16(&mut new_head, 50, 1)?;
    let mut new_hhea = hhea.to_vec();
    put_u16(&mut new_hhea, 34, total_u16)?;
    let mut new_maxp = maxp.to_vec();
    put_u16(&mut new_maxp, 4, total_u16)?;
    if new_maxp.len() >= 32 {
        // maxCompositePoints/Contours ≥ maxPoints/Contours; components and depth ≥ 1.
        for (composite, simple) in [(10, 6), (12, 8)] {
            let value = u16_at(&new_maxp, composite)?.max(u16_at(&new_maxp, simple)?);
            put_u16(&mut new_maxp, composite, value)?;
        }
        for at in [28, 30] {
            let value = u16_at(&new_maxp, at)?.max(1);
            put_u16(&mut new_maxp, at, value)?;
        }
    }

    let mut out: Vec<(Tag, Cow<'_, [u8]>)> = vec![
        (*b"head", Cow::Owned(new_head)),
        (*b"hhea", Cow::Owned(new_hhea)),
        (*b"maxp", Cow::Owned(new_maxp)),
        (*b"hmtx", Cow::Owned(new_hmtx)),
        (*b"loca", Cow::Owned(new_loca)),
        (*b"glyf", Cow::Owned(new_glyf)),
    ];
    for tag in [b"name", b"post", b"cvt ", b"fpgm", b"prep", b"OS/2"] {
        if let Some(data) = table(&tables, tag) {
            out.push((*tag, Cow::Borrowed(data)));
        }
    }
    Some(build(out))
}

/// `font` (a subset without `cmap`) with a Windows Unicode `cmap` for `map` (char → glyph id,
/// sorted by char) and, when given, an `OS/2` table, so that OFD readers and FreeType can map
/// text to glyphs.
pub(crate) fn with_cmap(font: &[u8], map: &[(char, u16)], os2: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut out: Vec<(Tag, Cow<'_, [u8]>)> = tables(font)?
        .into_iter()
        .filter(|(tag, _)| tag != b"cmap" && tag != b"OS/2")
        .map(|(tag, data)| (tag, Cow::Borrowed(data)))
        .collect();
    out.push((*b"cmap", Cow::Owned(cmap(map))));
    if let Some(os2) = os2 {
        out.push((*b"OS/2", Cow::Borrowed(os2)));
    }
    Some(build(out))
}

/// A `cmap` table: format 4 (platform 3, encoding 1) for the BMP, plus format 12 (3, 10) when
/// `map` holds supplementary-plane characters. `map` must be sorted by char.
pub(crate) fn cmap(map: &[(char, u16)]) -> Vec<u8> {
    let supplementary = map.iter().any(|(c, _)| u32::from(*c) > 0xFFFF);
    let format4 = format4(map);
    let mut out = Vec::new();
    let count: u16 = if supplementary { 2 } else { 1 };
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    let first = 4 + 8 * u32::from(count);
    out.extend_from_slice(&[0, 3, 0, 1]);
    out.extend_from_slice(&first.to_be_bytes());
    if supplementary {
        out.extend_from_slice(&[0, 3, 0, 10]);
        let second = first + u32::try_from(format4.len()).unwrap_or(0);
        out.extend_from_slice(&second.to_be_bytes());
    }
    out.extend_from_slice(&format4);
    if supplementary {
        out.extend_from_slice(&format12(map));
    }
    out
}

/// Runs of consecutive characters mapped to consecutive glyphs: `(first char, last char, first
/// glyph)`.
fn runs(map: impl Iterator<Item = (u32, u16)>) -> Vec<(u32, u32, u16)> {
    let mut runs: Vec<(u32, u32, u16)> = Vec::new();
    for (c, g) in map {
        match runs.last_mut() {
            Some((first, last, glyph))
                if *last + 1 == c && u32::from(*glyph) + (c - *first) == u32::from(g) =>
            {
                *last = c;
            }
            _ => runs.push((c, c, g)),
        }
    }
    runs
}

fn format4(map: &[(char, u16)]) -> Vec<u8> {
    let mut segments = runs(
        map.iter()
            .map(|(c, g)| (u32::from(*c), *g))
            .filter(|(c, _)| *c < 0xFFFF),
    );
    segments.push((0xFFFF, 0xFFFF, 0));
    let seg_count = u16::try_from(segments.len()).unwrap_or(u16::MAX);
    let entry_selector = 15 - seg_count.leading_zeros() as u16;
    let search_range = (1u16 << entry_selector).saturating_mul(2);
    let length = 16 + 8 * segments.len();
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&seg_count.saturating_mul(2).to_be_bytes());
    out.extend_from_slice(&search_range.to_be_bytes());
    out.extend_from_slice(&entry_selector.to_be_bytes());
    out.extend_from_slice(
        &seg_count
            .saturating_mul(2)
            .saturating_sub(search_range)
            .to_be_bytes(),
    );
    // Code points are < 0xFFFF here, so the truncations below are exact.
    for (_, last, _) in &segments {
        out.extend_from_slice(&(*last as u16).to_be_bytes());
    }
    out.extend_from_slice(&0u16.to_be_bytes());
    for (first, _, _) in &segments {
        out.extend_from_slice(&(*first as u16).to_be_bytes());
    }
    for (first, _, glyph) in &segments {
        // idDelta: glyph = (char + delta) mod 65536; the final segment maps 0xFFFF to 0.
        let delta = if *first == 0xFFFF {
            1u16
        } else {
            glyph.wrapping_sub(*first as u16)
        };
        out.extend_from_slice(&delta.to_be_bytes());
    }
    for _ in &segments {
        out.extend_from_slice(&0u16.to_be_bytes());
    }
    out
}

fn format12(map: &[(char, u16)]) -> Vec<u8> {
    let groups = runs(map.iter().map(|(c, g)| (u32::from(*c), *g)));
    let length = 16 + 12 * groups.len();
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&12u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&u32::try_from(length).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&u32::try_from(groups.len()).unwrap_or(0).to_be_bytes());
    for (first, last, glyph) in groups {
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(&u32::from(glyph).to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmap_round_trips_through_ttf_parser() {
        let map = [('A', 3u16), ('B', 4), ('C', 9), ('中', 5), ('𠀀', 7)];
        let table = cmap(&map);
        let parsed = ttf_parser::cmap::Table::parse(&table).unwrap();
        for (c, g) in map {
            let found = parsed
                .subtables
                .into_iter()
                .filter(|s| s.is_unicode())
                .find_map(|s| s.glyph_index(u32::from(c)));
            assert_eq!(found, Some(ttf_parser::GlyphId(g)), "{c}");
        }
        let missing = parsed
            .subtables
            .into_iter()
            .find_map(|s| s.glyph_index(u32::from('D')));
        assert_eq!(missing, None);
    }
}
