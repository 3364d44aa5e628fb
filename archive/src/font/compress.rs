//! Deflate for both writers: zlib streams (PDF `FlateDecode`) whose raw deflate data also serves
//! ZIP entries, with the CRC-32 a ZIP needs.
//!
//! A compressor is expensive to set up (hundreds of KiB of zeroed state), so one per thread is
//! reused. Streams can also be assembled from independently compressed pieces (each ending on a
//! byte boundary without the final-block bit): a cached piece (the template glyphs) is then never
//! compressed again. It knows nothing about fonts, OFD or PDF and never panics.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Deflate level of every stream and entry: the fast one, with most of the gain.
pub const LEVEL: u32 = 1;

/// Data compressed once for both containers.
#[derive(Debug, Clone)]
pub struct Deflated {
    /// zlib stream (PDF `FlateDecode`); the raw deflate data (ZIP) is `zlib[2..len - 4]`.
    pub zlib: Vec<u8>,
    /// CRC-32 of the uncompressed data (ZIP).
    pub crc32: u32,
}

impl Deflated {
    /// The raw deflate data inside the zlib stream.
    pub fn raw(&self) -> &[u8] {
        self.zlib
            .get(2..self.zlib.len().saturating_sub(4))
            .unwrap_or_default()
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(LEVEL), false));
}

/// Raw deflate of `data` appended to `out`; `last`: whether it ends the stream (final block),
/// else it ends with a full flush, byte-aligned and independent of what follows.
pub fn raw_into(data: &[u8], last: bool, out: &mut Vec<u8>) {
    let done = COMPRESSOR.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return false;
        };
        c.reset();
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Full
        };
        let start = out.len();
        out.reserve(data.len() / 2 + 64);
        // Each round either finishes or grows the output; a bounded number of rounds.
        for _ in 0..64 {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let Some(rest) = data.get(consumed..) else {
                break;
            };
            match c.compress_vec(rest, out, flush) {
                Ok(Status::StreamEnd) => return true,
                Ok(_) => {
                    let all_in = usize::try_from(c.total_in()).ok() == Some(data.len());
                    // A flush is complete when all input is in and output space is left over.
                    if !last && all_in && out.len() < out.capacity() {
                        return true;
                    }
                    out.reserve(out.capacity().max(256));
                }
                Err(_) => break,
            }
        }
        out.truncate(start);
        false
    });
    if !done {
        stored_into(data, last, out);
    }
}

/// `data` as stored (uncompressed) deflate blocks.
pub fn stored_into(data: &[u8], last: bool, out: &mut Vec<u8>) {
    let mut chunks = data.chunks(0xFFFF).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xFF, 0xFF]);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let final_block = last && chunks.peek().is_none();
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(u8::from(final_block));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// `data` as one final deflate block of literals coded with a Huffman code built for it (no
/// string matching). For data with few repeats, such as glyph outlines, this gets most of what
/// level 1 gets at a fraction of its cost. Returns `false` (writing nothing) if the code would need
/// codes longer than deflate allows.
pub fn huffman_into(data: &[u8], out: &mut Vec<u8>) -> bool {
    // Symbol frequencies: the 256 byte values and end-of-block (256).
    let mut freq = [0u32; 257];
    for &b in data {
        freq[usize::from(b)] += 1;
    }
    freq[256] = 1;
    let Some(lengths) = code_lengths(&freq) else {
        return false;
    };
    let codes = canonical_codes(&lengths);
    let eob = codes[256];
    let mut bits = BitWriter { out, acc: 0, n: 0 };
    // Header: BFINAL = 1, BTYPE = 10 (dynamic); 257 literal/length codes, 1 distance code, all 19
    // code-length codes.
    bits.put(1, 1);
    bits.put(2, 2);
    bits.put(0, 5);
    bits.put(0, 5);
    bits.put(15, 4);
    // Code-length code: the 16 lengths 0..=15 get 4 bits each (a complete code), 16–18 none.
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    for symbol in ORDER {
        bits.put(if symbol < 16 { 4 } else { 0 }, 3);
    }
    // With every length 4 bits long, length L is coded as L reversed in 4 bits.
    for &len in lengths.iter().chain(std::iter::once(&0u8)) {
        bits.put(u32::from(reverse(u16::from(len), 4)), 4);
    }
    // The hot loop: pairs of bytes (two codes fit in 30 bits) into a 64-bit accumulator, 32 bits
    // at a time into a buffer sized for the worst case (15 bits a byte).
    let codes: [u32; 256] = std::array::from_fn(|b| {
        let (code, len) = codes[b];
        u32::from(code) | (u32::from(len) << 16)
    });
    let mut buf = vec![0u8; data.len() * 2 + 8];
    let mut at = 0usize;
    let (mut acc, mut n) = (bits.acc, bits.n);
    let mut pairs = data.chunks_exact(2);
    for pair in &mut pairs {
        let (a, b) = (codes[usize::from(pair[0])], codes[usize::from(pair[1])]);
        let (la, lb) = (a >> 16, b >> 16);
        acc |= u64::from((a & 0xFFFF) | ((b & 0xFFFF) << la)) << n;
        n += la + lb;
        if n >= 32 {
            if let Some(slot) = buf.get_mut(at..at + 4) {
                slot.copy_from_slice(&(acc as u32).to_le_bytes());
            }
            at += 4;
            acc >>= 32;
            n -= 32;
        }
    }
    buf.truncate(at);
    bits.out.extend_from_slice(&buf);
    (bits.acc, bits.n) = (acc, n);
    for &b in pairs.remainder() {
        let code = codes[usize::from(b)];
        bits.put(code & 0xFFFF, (code >> 16) as u8);
    }
    let (code, len) = eob;
    bits.put(u32::from(code), len);
    bits.flush();
    true
}

/// Huffman code lengths for `freq` (zero frequency: no code), or `None` if one would exceed 15
/// or fewer than two symbols occur. Two-queue construction: leaves sorted by frequency, internal
/// nodes created in non-decreasing weight order.
fn code_lengths(freq: &[u32; 257]) -> Option<[u8; 257]> {
    let mut leaves: Vec<(u64, usize)> = freq
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 0)
        .map(|(i, f)| (u64::from(*f), i))
        .collect();
    if leaves.len() < 2 {
        return None;
    }
    leaves.sort_unstable();
    let count = leaves.len();
    // Node ids: leaves 0..count (in `leaves` order), internal nodes count.. in creation order.
    let mut parent = vec![0usize; 2 * count - 1];
    let mut weights: Vec<u64> = Vec::with_capacity(count - 1);
    let (mut next_leaf, mut next_inner) = (0usize, 0usize);
    let take = |weights: &Vec<u64>, next_leaf: &mut usize, next_inner: &mut usize| {
        let leaf = leaves.get(*next_leaf).map(|l| l.0);
        let inner = weights.get(*next_inner).copied();
        match (leaf, inner) {
            (Some(l), Some(i)) if i < l => {
                *next_inner += 1;
                (i, count + *next_inner - 1)
            }
            (Some(l), _) => {
                *next_leaf += 1;
                (l, *next_leaf - 1)
            }
            (None, Some(i)) => {
                *next_inner += 1;
                (i, count + *next_inner - 1)
            }
            (None, None) => (0, usize::MAX),
        }
    };
    for _ in 0..count - 1 {
        let (wa, a) = take(&weights, &mut next_leaf, &mut next_inner);
        let (wb, b) = take(&weights, &mut next_leaf, &mut next_inner);
        let node = count + weights.len();
        *parent.get_mut(a)? = node;
        *parent.get_mut(b)? = node;
        weights.push(wa + wb);
    }
    // Depths from the root (the last node) down: parents are created after their children.
    let mut depth = vec![0u8; 2 * count - 1];
    for node in (0..2 * count - 2).rev() {
        let d = depth[parent[node]] + 1;
        if d > 15 {
            return None;
        }
        depth[node] = d;
    }
    let mut lengths = [0u8; 257];
    for (i, (_, symbol)) in leaves.iter().enumerate() {
        lengths[*symbol] = depth[i];
    }
    Some(lengths)
}

/// Canonical codes (bit-reversed for LSB-first output) and lengths.
fn canonical_codes(lengths: &[u8; 257]) -> [(u16, u8); 257] {
    let mut count = [0u16; 16];
    for &len in lengths {
        count[usize::from(len)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    let mut out = [(0u16, 0u8); 257];
    for (symbol, &len) in lengths.iter().enumerate() {
        if len > 0 {
            let l = usize::from(len);
            out[symbol] = (reverse(next[l], len), len);
            next[l] += 1;
        }
    }
    out
}

fn reverse(code: u16, len: u8) -> u16 {
    code.reverse_bits() >> (16 - u32::from(len))
}

/// Writes bits LSB first, as deflate wants.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter<'_> {
    fn put(&mut self, value: u32, len: u8) {
        self.acc |= u64::from(value) << self.n;
        self.n += u32::from(len);
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    fn flush(&mut self) {
        while self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
    }
}

/// Adler-32 of `data` (the zlib trailer).
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // 5552 bytes (347 × 16) is the most that can be summed before the u32 sums may overflow.
    const BLOCK: usize = 5552;
    let (mut a, mut b) = (1u32, 0u32);
    for block in data.chunks(BLOCK) {
        let mut sixteens = block.chunks_exact(16);
        for chunk in &mut sixteens {
            // The 16 steps `a += x; b += a` at once: b gains 16 a plus x weighted 16, 15, … 1.
            b += 16 * a;
            let (mut sum, mut weighted) = (0u32, 0u32);
            for (&x, weight) in chunk.iter().zip((1..=16u32).rev()) {
                sum += u32::from(x);
                weighted += weight * u32::from(x);
            }
            a += sum;
            b += weighted;
        }
        for &x in sixteens.remainder() {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// CRC-32 of `data` (ZIP).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

/// Wrap raw deflate data of `data` as a zlib stream.
pub fn zlib_of(raw: &[u8], data: &[u8]) -> Deflated {
    let mut zlib = Vec::with_capacity(raw.len() + 6);
    zlib.extend_from_slice(&[0x78, 0x01]);
    zlib.extend_from_slice(raw);
    zlib.extend_from_slice(&adler32(data).to_be_bytes());
    Deflated {
        zlib,
        crc32: crc32(data),
    }
}

/// `data` as a zlib stream (PDF `FlateDecode`), without the CRC a ZIP would need.
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut zlib = Vec::with_capacity(data.len() / 2 + 64);
    zlib.extend_from_slice(&[0x78, 0x01]);
    raw_into(data, true, &mut zlib);
    zlib.extend_from_slice(&adler32(data).to_be_bytes());
    zlib
}

/// `data` as raw deflate data with its CRC-32 (a ZIP entry), without the zlib wrapping.
pub fn raw(data: &[u8]) -> (Vec<u8>, u32) {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    raw_into(data, true, &mut out);
    (out, crc32(data))
}

/// Compress `data` for both containers.
pub fn deflate(data: &[u8]) -> Deflated {
    let mut zlib = Vec::with_capacity(data.len() / 2 + 64);
    zlib.extend_from_slice(&[0x78, 0x01]);
    raw_into(data, true, &mut zlib);
    zlib.extend_from_slice(&adler32(data).to_be_bytes());
    Deflated {
        zlib,
        crc32: crc32(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(zlib: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(zlib)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn streams_round_trip() {
        for data in [
            Vec::new(),
            b"a".to_vec(),
            b"OFD ".repeat(5000),
            (0..=255u8).cycle().take(200_000).collect(),
        ] {
            let d = deflate(&data);
            assert_eq!(inflate(&d.zlib), data);
            assert_eq!(d.crc32, crc32(&data));
        }
    }

    #[test]
    fn pieces_concatenate_into_one_stream() {
        let a = b"directory ".repeat(20);
        let b = b"cached glyphs ".repeat(300);
        let c = b"the rest ".repeat(200);
        let mut raw = Vec::new();
        stored_into(&a, false, &mut raw);
        raw_into(&b, false, &mut raw);
        raw_into(&c, true, &mut raw);
        let data = [a, b, c].concat();
        let d = zlib_of(&raw, &data);
        assert_eq!(inflate(&d.zlib), data);
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(d.raw())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    fn inflate_raw(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(raw)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn huffman_blocks_round_trip() {
        let skewed: Vec<u8> = (0..20_000u32)
            .map(|i| ((i * i) % 7 + (i % 3) * 40) as u8)
            .collect();
        let all: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        for data in [b"ab".to_vec(), b"aaaaaaa".to_vec(), skewed, all, Vec::new()] {
            let mut raw = Vec::new();
            if huffman_into(&data, &mut raw) {
                assert_eq!(inflate_raw(&raw), data);
            }
        }
        // After a stored piece.
        let mut raw = Vec::new();
        stored_into(b"head", false, &mut raw);
        assert!(huffman_into(b"tail tail", &mut raw));
        assert_eq!(inflate_raw(&raw), b"headtail tail");
    }

    #[test]
    fn adler32_matches_the_reference_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
        // Against the trailer zlib writes, over lengths around the 16-byte and block steps.
        let data: Vec<u8> = (0..20_000u32)
            .map(|i| (i * 7 + i / 3) as u8 | 0x80)
            .collect();
        for len in [15, 16, 17, 5551, 5552, 5553, 11104, 20_000] {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, &data[..len]).unwrap();
            let out = z.finish().unwrap();
            let trailer = u32::from_be_bytes(out[out.len() - 4..].try_into().unwrap());
            assert_eq!(adler32(&data[..len]), trailer, "{len}");
        }
    }
}
