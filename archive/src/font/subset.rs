//! The per-document font subset, built directly from the loaded font's tables.
//!
//! A document's glyphs start with its template's (fixed per invoice kind): those glyph records,
//! their components and the tables that never change (`OS/2`, `cvt `, `fpgm`, `name`, `post`,
//! `prep`) form a *prefix* that is laid out, checksummed and compressed once and reused by every
//! document with that template. Only the document's own glyphs, `cmap`, `hmtx`, `loca` and the
//! small header tables are built per document. The file is laid out as
//! `[directory][fixed tables][glyf: prefix | own glyphs][cmap head hhea hmtx loca maxp]`, so its
//! deflate stream is a stored block, the cached prefix piece and one freshly compressed piece.
//!
//! It returns `None` on anything unexpected in the font (the caller then falls back to the
//! `subsetter` crate), and never panics.

use std::sync::{Arc, Mutex};

use super::compress::{self, Deflated};
use super::sfnt::{self, Tag, checksum, table, u16_at, u32_at};
use super::{FONT, glyph};

/// Tables copied unchanged into every subset, in file order.
const FIXED: [&Tag; 6] = [b"OS/2", b"cvt ", b"fpgm", b"name", b"post", b"prep"];

/// The font's tables needed to subset it.
struct Source<'a> {
    /// Number of glyphs.
    glyphs: usize,
    glyf: &'a [u8],
    loca: &'a [u8],
    hmtx: &'a [u8],
    head: &'a [u8],
    hhea: &'a [u8],
    maxp: &'a [u8],
    fixed: Vec<(Tag, &'a [u8])>,
}

fn source(font: &[u8]) -> Option<Source<'_>> {
    let tables = sfnt::tables(font)?;
    let head = table(&tables, b"head")?;
    // The loaded font always has long offsets and full horizontal metrics (see `sfnt::augment`).
    if sfnt::i16_at(head, 50)? != 1 {
        return None;
    }
    let maxp = table(&tables, b"maxp")?;
    Some(Source {
        glyphs: usize::from(u16_at(maxp, 4)?),
        glyf: table(&tables, b"glyf")?,
        loca: table(&tables, b"loca")?,
        hmtx: table(&tables, b"hmtx")?,
        head,
        hhea: table(&tables, b"hhea")?,
        maxp,
        fixed: FIXED
            .iter()
            .filter_map(|tag| Some((**tag, table(&tables, tag)?)))
            .collect(),
    })
}

impl Source<'_> {
    fn record(&self, id: u16) -> Option<&[u8]> {
        let at = 4 * usize::from(id);
        let start = usize::try_from(u32_at(self.loca, at)?).ok()?;
        let end = usize::try_from(u32_at(self.loca, at + 4)?).ok()?;
        self.glyf.get(start..end)
    }

    fn metrics(&self, id: u16) -> Option<&[u8]> {
        let at = 4 * usize::from(id);
        self.hmtx.get(at..at + 4)
    }
}

/// Offsets of the component glyph indices in a composite glyph record (empty for a simple one).
fn component_offsets(record: &[u8]) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    if record.is_empty() || sfnt::i16_at(record, 0)? >= 0 {
        return Some(out);
    }
    let mut at = 10;
    loop {
        let flags = u16_at(record, at)?;
        u16_at(record, at + 2)?;
        out.push(at + 2);
        at += 4 + if flags & 0x0001 != 0 { 4 } else { 2 };
        at += if flags & 0x0008 != 0 {
            2
        } else if flags & 0x0040 != 0 {
            4
        } else if flags & 0x0080 != 0 {
            8
        } else {
            0
        };
        if flags & 0x0020 == 0 {
            return Some(out);
        }
    }
}

/// Old → new glyph ids: old ids in new order, and a table by old id (`u16::MAX`: not in the
/// subset). Tables are pooled per thread and cleared on drop, so building one costs only the
/// glyphs it maps.
#[derive(Debug)]
struct Ids {
    order: Vec<u16>,
    slots: Vec<u16>,
}

thread_local! {
    static SLOTS: std::cell::RefCell<Vec<Vec<u16>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Ids {
    /// Ids for a font of `glyphs` glyphs, starting with `order`.
    fn new(glyphs: usize, order: &[u16]) -> Option<Ids> {
        let mut slots = SLOTS
            .with(|pool| pool.try_borrow_mut().ok().and_then(|mut p| p.pop()))
            .unwrap_or_default();
        if slots.len() != glyphs {
            slots.clear();
            slots.resize(glyphs, u16::MAX);
        }
        let mut ids = Ids {
            order: Vec::with_capacity(order.len() + 256),
            slots,
        };
        for old in order {
            ids.add(*old)?;
        }
        Some(ids)
    }

    fn get(&self, old: u16) -> Option<u16> {
        self.slots
            .get(usize::from(old))
            .copied()
            .filter(|id| *id != u16::MAX)
    }

    fn add(&mut self, old: u16) -> Option<u16> {
        let id = u16::try_from(self.order.len())
            .ok()
            .filter(|id| *id != u16::MAX)?;
        let slot = self.slots.get_mut(usize::from(old))?;
        if *slot != u16::MAX {
            return Some(*slot);
        }
        *slot = id;
        self.order.push(old);
        Some(id)
    }

    /// Add the components of every glyph from index `from` on (and theirs).
    fn close(&mut self, src: &Source<'_>, from: usize) -> Option<()> {
        let mut i = from;
        while let Some(&old) = self.order.get(i) {
            let record = src.record(old)?;
            for at in component_offsets(record)? {
                self.add(u16_at(record, at)?)?;
            }
            i += 1;
        }
        Some(())
    }
}

impl Drop for Ids {
    fn drop(&mut self) {
        for old in &self.order {
            if let Some(slot) = self.slots.get_mut(usize::from(*old)) {
                *slot = u16::MAX;
            }
        }
        let slots = std::mem::take(&mut self.slots);
        SLOTS.with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut()
                && pool.len() < 4
            {
                pool.push(slots);
            }
        });
    }
}

/// Append the records of `ids.order[from..]` to `glyf` (components renumbered, 4-byte padded),
/// pushing each record's offset to `loca`.
fn write_glyphs(
    src: &Source<'_>,
    ids: &Ids,
    from: usize,
    base: usize,
    glyf: &mut Vec<u8>,
    loca: &mut Vec<u32>,
) -> Option<()> {
    for &old in ids.order.get(from..)? {
        loca.push(u32::try_from(base + glyf.len()).ok()?);
        let record = src.record(old)?;
        let start = glyf.len();
        glyf.extend_from_slice(record);
        for at in component_offsets(record)? {
            let new = ids.get(u16_at(record, at)?)?;
            sfnt::put_u16(&mut glyf[start..], at, new)?;
        }
        glyf.resize(glyf.len().next_multiple_of(4), 0);
    }
    Some(())
}

/// The part of a subset shared by all documents with the same template.
#[derive(Debug)]
pub(super) struct Prefix {
    chars: Vec<char>,
    /// Old ids of the prefix glyphs, in new order.
    order: Vec<u16>,
    /// Fixed tables (padded) then the prefix glyph records.
    block: Vec<u8>,
    /// `(tag, offset in block, length, checksum)` of the fixed tables.
    fixed: Vec<(Tag, usize, usize, u32)>,
    /// Where the glyph records start in `block`.
    glyf_at: usize,
    glyf_sum: u32,
    /// Offsets of the prefix glyphs within `glyf`.
    loca: Vec<u32>,
    /// `block` deflated, ending with a full flush.
    compressed: Vec<u8>,
}

fn build_prefix(src: &Source<'_>, chars: &[char]) -> Option<Prefix> {
    let mut ids = Ids::new(src.glyphs, &[0])?;
    for c in chars {
        let id = glyph(*c).id;
        if id != 0 {
            ids.add(id)?;
        }
    }
    ids.close(src, 0)?;
    let mut block = Vec::new();
    let mut fixed = Vec::new();
    for (tag, data) in &src.fixed {
        fixed.push((*tag, block.len(), data.len(), checksum(data)));
        block.extend_from_slice(data);
        block.resize(block.len().next_multiple_of(4), 0);
    }
    let glyf_at = block.len();
    let mut glyf = Vec::new();
    let mut loca = Vec::new();
    write_glyphs(src, &ids, 0, 0, &mut glyf, &mut loca)?;
    block.extend_from_slice(&glyf);
    let mut compressed = Vec::new();
    compress::raw_into(&block, false, &mut compressed);
    Some(Prefix {
        chars: chars.to_vec(),
        order: ids.order.clone(),
        glyf_sum: checksum(&glyf),
        block,
        fixed,
        glyf_at,
        loca,
        compressed,
    })
}

static PREFIXES: Mutex<Vec<Arc<Prefix>>> = Mutex::new(Vec::new());
/// Templates differ per invoice kind: a few prefixes are enough.
const PREFIXES_KEPT: usize = 4;

fn prefix(src: &Source<'_>, chars: &[char]) -> Option<Arc<Prefix>> {
    if let Ok(cache) = PREFIXES.lock()
        && let Some(hit) = cache.iter().find(|p| p.chars == chars)
    {
        return Some(Arc::clone(hit));
    }
    let built = Arc::new(build_prefix(src, chars)?);
    if let Ok(mut cache) = PREFIXES.lock() {
        if cache.len() >= PREFIXES_KEPT {
            cache.remove(0);
        }
        cache.push(Arc::clone(&built));
    }
    Some(built)
}

/// A built subset.
#[derive(Debug)]
pub(super) struct Built {
    pub data: Vec<u8>,
    /// Character → new glyph id (0 where the font has no glyph), sorted by character.
    pub map: Vec<(char, u16)>,
    pub pieces: Pieces,
}

/// How a built subset's file splits for compression.
#[derive(Debug)]
pub(super) struct Pieces {
    prefix: Arc<Prefix>,
    /// Length of the table directory (the file's stored piece).
    directory: usize,
}

impl Pieces {
    /// `data` (the file these pieces describe) deflated from its three pieces: the directory
    /// stored, the cached prefix, the rest compressed now.
    pub fn deflate(&self, data: &[u8]) -> Deflated {
        let split = self.directory + self.prefix.block.len();
        let (Some(directory), Some(block), Some(rest)) = (
            data.get(..self.directory),
            data.get(self.directory..split),
            data.get(split..),
        ) else {
            return compress::deflate(data);
        };
        if block != self.prefix.block {
            return compress::deflate(data);
        }
        let mut raw = Vec::with_capacity(data.len() * 3 / 4 + 64);
        compress::stored_into(directory, false, &mut raw);
        raw.extend_from_slice(&self.prefix.compressed);
        // The document's own glyphs rarely repeat: literal Huffman coding is nearly as small as
        // level 1 and several times faster.
        if !compress::huffman_into(rest, &mut raw) {
            compress::raw_into(rest, true, &mut raw);
        }
        compress::zlib_of(&raw, data)
    }
}

/// Subset the loaded font to the glyphs of `order` (the first `fixed` of which are the
/// template's characters).
pub(super) fn build(order: &[char], fixed: usize) -> Option<Built> {
    let font = &*FONT;
    let src = source(&font.data)?;
    let prefix = prefix(&src, order.get(..fixed)?)?;
    let mut ids = Ids::new(src.glyphs, &prefix.order)?;
    let own = ids.order.len();
    for c in order.get(fixed..)? {
        let id = glyph(*c).id;
        if id != 0 {
            ids.add(id)?;
        }
    }
    ids.close(&src, own)?;
    let count = u16::try_from(ids.order.len()).ok()?;

    let mut map: Vec<(char, u16)> = order
        .iter()
        .map(|c| (*c, ids.get(glyph(*c).id).unwrap_or(0)))
        .collect();
    map.sort_unstable_by_key(|(c, _)| *c);
    let mapped: Vec<(char, u16)> = map.iter().copied().filter(|(_, g)| *g != 0).collect();

    // Per-document tables.
    let prefix_glyf = prefix.block.len() - prefix.glyf_at;
    let mut glyf = Vec::with_capacity(16 * 1024);
    let mut loca_offsets = prefix.loca.clone();
    write_glyphs(&src, &ids, own, prefix_glyf, &mut glyf, &mut loca_offsets)?;
    loca_offsets.push(u32::try_from(prefix_glyf + glyf.len()).ok()?);
    let loca: Vec<u8> = loca_offsets.iter().flat_map(|o| o.to_be_bytes()).collect();
    let mut hmtx = Vec::with_capacity(4 * ids.order.len());
    for old in &ids.order {
        hmtx.extend_from_slice(src.metrics(*old)?);
    }
    let mut hhea = src.hhea.to_vec();
    sfnt::put_u16(&mut hhea, 34, count)?;
    let mut maxp = src.maxp.to_vec();
    sfnt::put_u16(&mut maxp, 4, count)?;
    let mut head = src.head.to_vec();
    head.get_mut(8..12)?.fill(0);
    let cmap = sfnt::cmap(&mapped);
    let late: [(Tag, &[u8]); 6] = [
        (*b"cmap", &cmap),
        (*b"head", &head),
        (*b"hhea", &hhea),
        (*b"hmtx", &hmtx),
        (*b"loca", &loca),
        (*b"maxp", &maxp),
    ];

    // Directory: every table with its offset; the file follows the layout described above.
    let tables = prefix.fixed.len() + 1 + late.len();
    let directory = 12 + 16 * tables;
    let mut entries: Vec<(Tag, usize, usize, u32)> = prefix
        .fixed
        .iter()
        .map(|(tag, at, len, sum)| (*tag, directory + at, *len, *sum))
        .collect();
    entries.push((
        *b"glyf",
        directory + prefix.glyf_at,
        prefix_glyf + glyf.len(),
        prefix.glyf_sum.wrapping_add(checksum(&glyf)),
    ));
    let mut at = directory + prefix.block.len() + glyf.len();
    for (tag, data) in &late {
        entries.push((*tag, at, data.len(), checksum(data)));
        at += data.len().next_multiple_of(4);
    }
    entries.sort_by_key(|e| e.0);

    let mut data = Vec::with_capacity(at);
    let num_tables = u16::try_from(tables).ok()?;
    let selector = 15 - num_tables.leading_zeros() as u16;
    let range = (1u16 << selector) * 16;
    data.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    for v in [num_tables, range, selector, num_tables * 16 - range] {
        data.extend_from_slice(&v.to_be_bytes());
    }
    for (tag, offset, len, sum) in &entries {
        data.extend_from_slice(tag);
        data.extend_from_slice(&sum.to_be_bytes());
        data.extend_from_slice(&u32::try_from(*offset).ok()?.to_be_bytes());
        data.extend_from_slice(&u32::try_from(*len).ok()?.to_be_bytes());
    }
    data.extend_from_slice(&prefix.block);
    data.extend_from_slice(&glyf);
    let mut head_at = 0;
    for (tag, bytes) in &late {
        if tag == b"head" {
            head_at = data.len();
        }
        data.extend_from_slice(bytes);
        data.resize(data.len().next_multiple_of(4), 0);
    }
    // The whole file's checksum is the directory's plus every table's (all 4-aligned, padded).
    let total = entries
        .iter()
        .fold(checksum(data.get(..directory)?), |s, e| s.wrapping_add(e.3));
    let adjustment = 0xB1B0_AFBAu32.wrapping_sub(total);
    data.get_mut(head_at + 8..head_at + 12)?
        .copy_from_slice(&adjustment.to_be_bytes());
    Some(Built {
        data,
        map,
        pieces: Pieces { prefix, directory },
    })
}
