//! The OFD container: a ZIP read entry by entry with hard caps, and the path rules of OFD.
//!
//! Owns how a location written in one file names an entry (relative to that file's directory, or
//! from the package root when it starts with `/`) and the limits that keep a hostile package
//! cheap: entry count, decompressed bytes per entry and in total. It must not interpret the
//! entries it returns.

use std::io::Cursor;
use std::sync::Arc;

use flate2::{Decompress, FlushDecompress, Status};
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use super::OfdError;
use crate::check::memo;

/// Most entries a package may list. An invoice has about a dozen.
pub const MAX_ENTRIES: usize = 4096;
/// Largest decompressed entry. The biggest legitimate one is a font; even the whole bundled CJK
/// font is 4 MiB.
pub const MAX_ENTRY_BYTES: u64 = 32 * 1024 * 1024;
/// Most decompressed bytes read from one package, across entries.
pub const MAX_TOTAL_BYTES: u64 = 96 * 1024 * 1024;

/// An opened package and what is left of its decompression budget.
pub struct Package<'a> {
    bytes: &'a [u8],
    zip: ZipArchive<Cursor<&'a [u8]>>,
    budget: u64,
    /// One inflater for every entry: setting one up costs more than inflating a small entry.
    inflater: Decompress,
}

impl std::fmt::Debug for Package<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("entries", &self.zip.len())
            .field("budget", &self.budget)
            .finish()
    }
}

/// Where an entry's data lie in the package and what its headers promise.
struct Entry<'a> {
    raw: &'a [u8],
    method: CompressionMethod,
    crc: u32,
    size: u64,
}

impl<'a> Package<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Self, OfdError> {
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| OfdError::Zip(e.to_string()))?;
        if zip.len() > MAX_ENTRIES {
            return Err(OfdError::Zip(format!(
                "{} entries, more than {MAX_ENTRIES}",
                zip.len()
            )));
        }
        Ok(Self {
            bytes,
            zip,
            budget: MAX_TOTAL_BYTES,
            inflater: Decompress::new(false),
        })
    }

    /// Whether the package has an entry at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.zip.index_for_name(path).is_some()
    }

    /// The stored (compressed) data of the entry at `path`, as a slice of the package.
    fn entry(&mut self, path: &str) -> Result<Entry<'a>, OfdError> {
        let zip_error = |e: ZipError| OfdError::Zip(format!("{path}: {e}"));
        let Some(index) = self.zip.index_for_name(path) else {
            return Err(OfdError::Missing(path.to_owned()));
        };
        let file = self.zip.by_index_raw(index).map_err(zip_error)?;
        if file.encrypted() {
            return Err(OfdError::Zip(format!("{path}: encrypted")));
        }
        let start = file.data_start();
        let (method, crc, size) = (file.compression(), file.crc32(), file.size());
        let range = start.and_then(|start| {
            let start = usize::try_from(start).ok()?;
            let len = usize::try_from(file.compressed_size()).ok()?;
            Some(start..start.checked_add(len)?)
        });
        let raw = range
            .and_then(|r| self.bytes.get(r))
            .ok_or_else(|| OfdError::Zip(format!("{path}: data outside the file")))?;
        Ok(Entry {
            raw,
            method,
            crc,
            size,
        })
    }

    /// The decompressed bytes of the entry at `path` (a resolved path, see [`resolve`]). The
    /// entry's CRC-32 and size are checked, so a flipped byte inside it is an error here.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, OfdError> {
        let entry = self.entry(path)?;
        let data = self.inflate(path, &entry)?;
        self.accept(path, &entry, &data)?;
        Ok(data)
    }

    /// Like [`Package::read`], for an entry another file may carry with the same compressed
    /// bytes (the font, which the PDF embeds too): when the raw deflate data are identical to
    /// data inflated before on this thread, that result is used, checked the same way.
    pub fn read_shared(&mut self, path: &str) -> Result<Arc<[u8]>, OfdError> {
        let entry = self.entry(path)?;
        if entry.method != CompressionMethod::Deflated {
            return self.read(path).map(Arc::from);
        }
        let data = memo::get_or_try(&memo::INFLATED, entry.raw, || {
            self.inflate(path, &entry).map(Arc::from)
        })?;
        self.accept(path, &entry, &data)?;
        Ok(data)
    }

    /// The entry's data decompressed, never more than the caps allow.
    fn inflate(&mut self, path: &str, entry: &Entry<'_>) -> Result<Vec<u8>, OfdError> {
        let limit = self.budget.min(MAX_ENTRY_BYTES);
        let too_large = || OfdError::TooLarge {
            path: path.to_owned(),
            limit,
        };
        let zip_error = |what: &str| OfdError::Zip(format!("{path}: {what}"));
        let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
        match entry.method {
            CompressionMethod::Stored if entry.raw.len() > limit_len => Err(too_large()),
            CompressionMethod::Stored => Ok(entry.raw.to_vec()),
            CompressionMethod::Deflated => {
                self.inflater.reset(false);
                // The declared size is only a hint: the cap holds whatever comes out.
                let hint = usize::try_from(entry.size).unwrap_or(0).min(limit_len);
                let mut out = Vec::with_capacity(hint.saturating_add(1).max(256));
                loop {
                    let consumed = usize::try_from(self.inflater.total_in()).unwrap_or(usize::MAX);
                    let input = entry.raw.get(consumed..).unwrap_or_default();
                    let before = (consumed, out.len());
                    let status = self
                        .inflater
                        .decompress_vec(input, &mut out, FlushDecompress::Finish)
                        .map_err(|e| zip_error(&format!("bad deflate data ({e})")))?;
                    if out.len() > limit_len {
                        return Err(too_large());
                    }
                    if status == Status::StreamEnd {
                        return Ok(out);
                    }
                    let now = usize::try_from(self.inflater.total_in()).unwrap_or(usize::MAX);
                    if out.len() == out.capacity() {
                        let room = limit_len.saturating_add(1).saturating_sub(out.len());
                        out.reserve(out.capacity().max(256).min(room.max(1)));
                    } else if before == (now, out.len()) {
                        return Err(zip_error("deflate data end early"));
                    }
                }
            }
            other => Err(zip_error(&format!("unsupported compression {other}"))),
        }
    }

    /// Checks inflated data against the entry's headers and charges the budget.
    fn accept(&mut self, path: &str, entry: &Entry<'_>, data: &[u8]) -> Result<(), OfdError> {
        let limit = self.budget.min(MAX_ENTRY_BYTES);
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if size > limit {
            return Err(OfdError::TooLarge {
                path: path.to_owned(),
                limit,
            });
        }
        if size != entry.size {
            return Err(OfdError::Zip(format!(
                "{path}: {size} bytes, the header says {}",
                entry.size
            )));
        }
        let mut crc = flate2::Crc::new();
        crc.update(data);
        if crc.sum() != entry.crc {
            return Err(OfdError::Zip(format!("{path}: Invalid checksum")));
        }
        self.budget = self.budget.saturating_sub(size);
        Ok(())
    }

    /// The entry at `path` as UTF-8 text (a byte-order mark dropped).
    pub fn read_text(&mut self, path: &str) -> Result<String, OfdError> {
        let data = self.read(path)?;
        let data = match data.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => rest.to_vec(),
            None => data,
        };
        String::from_utf8(data).map_err(|_| OfdError::Encoding(path.to_owned()))
    }
}

/// The directory part of an entry path, with its trailing `/` (`Doc_0/` for
/// `Doc_0/Document.xml`, `` for `OFD.xml`).
pub fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => path.get(..=i).unwrap_or(""),
        None => "",
    }
}

/// The entry a location names: `loc` relative to the directory `base` (as [`dir_of`] gives), or
/// from the root when it starts with `/`. `.` and `..` are resolved; `..` above the root, an
/// empty location and a location ending in `/` (a directory) are refused. Backslashes, which
/// some Windows writers use, count as `/`.
pub fn resolve(base: &str, loc: &str) -> Result<String, OfdError> {
    let loc = loc.trim();
    let bad = || OfdError::BadPath(loc.to_owned());
    if loc.is_empty() || loc.ends_with('/') || loc.ends_with('\\') {
        return Err(bad());
    }
    let (start, rest) = match loc.strip_prefix('/').or_else(|| loc.strip_prefix('\\')) {
        Some(rest) => ("", rest),
        None => (base, loc),
    };
    let mut parts: Vec<&str> = start.split('/').filter(|p| !p.is_empty()).collect();
    for part in rest.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(bad)?;
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// A location that is a directory (a `BaseLoc` of resources): resolved like [`resolve`], given
/// back with a trailing `/`, and the package root when empty.
pub fn resolve_dir(base: &str, loc: &str) -> Result<String, OfdError> {
    let raw = loc.trim();
    let loc = raw.trim_end_matches(['/', '\\']);
    if loc.is_empty() {
        let from_root = raw.starts_with(['/', '\\']);
        return Ok(if from_root {
            String::new()
        } else {
            base.to_owned()
        });
    }
    let mut dir = resolve(base, loc)?;
    if !dir.is_empty() {
        dir.push('/');
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_their_file() {
        assert_eq!(dir_of("Doc_0/Document.xml"), "Doc_0/");
        assert_eq!(dir_of("OFD.xml"), "");
        assert_eq!(
            resolve("", "Doc_0/Document.xml").unwrap(),
            "Doc_0/Document.xml"
        );
        assert_eq!(
            resolve("Doc_0/", "Pages/Page_0/Content.xml").unwrap(),
            "Doc_0/Pages/Page_0/Content.xml"
        );
        assert_eq!(
            resolve("Doc_0/", "/Doc_0/PublicRes.xml").unwrap(),
            "Doc_0/PublicRes.xml"
        );
        assert_eq!(
            resolve("Doc_0/Tags/", "./CustomTag.xml").unwrap(),
            "Doc_0/Tags/CustomTag.xml"
        );
        assert_eq!(
            resolve("Doc_0/Tags/", "../Res/a.ttf").unwrap(),
            "Doc_0/Res/a.ttf"
        );
        assert_eq!(
            resolve("Doc_0/", "Res\\font_1.ttf").unwrap(),
            "Doc_0/Res/font_1.ttf"
        );
        assert_eq!(resolve_dir("Doc_0/", "Res").unwrap(), "Doc_0/Res/");
        assert_eq!(resolve_dir("Doc_0/", "Res/").unwrap(), "Doc_0/Res/");
        assert_eq!(resolve_dir("Doc_0/", "").unwrap(), "Doc_0/");
        assert_eq!(resolve_dir("Doc_0/", "/").unwrap(), "");
        assert_eq!(resolve_dir("Doc_0/", "..").unwrap(), "");
    }

    #[test]
    fn locations_cannot_escape_or_name_a_directory() {
        for (base, loc) in [
            ("", "../x"),
            ("Doc_0/", "../../x"),
            ("", ""),
            ("", "a/"),
            ("", "  "),
        ] {
            assert!(resolve(base, loc).is_err(), "{base:?} {loc:?}");
        }
    }
}
