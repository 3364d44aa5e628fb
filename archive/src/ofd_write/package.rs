//! The ZIP container of an OFD file, written directly: local headers, data, central directory.
//!
//! Written by hand rather than with the `zip` crate so that an entry can be added already
//! compressed (the font subset shared with the PDF writer, the cached template page) and so that
//! every byte is fixed: one timestamp for all entries, entries in the order added, no extra
//! fields. It knows nothing about OFD; names are ASCII paths. No ZIP64: an invoice's files are
//! far below 4 GiB (sizes saturate rather than wrap, which only absurd inputs could reach).

use chrono::{Datelike, NaiveDateTime, Timelike};

use crate::font::{self, Deflated};

/// Entries smaller than this are stored: deflating them saves a few hundred bytes at most and
/// costs a compressor reset (zeroing its hash table) each.
const STORE_BELOW: usize = 2048;

/// An OFD package being written.
#[derive(Debug)]
pub(super) struct Package {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u16,
    time: u16,
    date: u16,
}

/// An entry's data, compressed or not, with what the headers need.
#[derive(Debug, Clone, Copy)]
pub(super) struct Data<'a> {
    deflated: bool,
    bytes: &'a [u8],
    crc32: u32,
    size: usize,
}

impl<'a> Data<'a> {
    /// Data compressed earlier (e.g. shared with the PDF writer).
    pub fn deflated(compressed: &'a Deflated, size: usize) -> Self {
        Data {
            deflated: true,
            bytes: compressed.raw(),
            crc32: compressed.crc32,
            size,
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Package {
    /// A package whose entries are all dated `at` (clamped to the DOS range 1980–2107).
    pub fn new(at: NaiveDateTime, capacity: usize) -> Self {
        let year = u16::try_from(at.year().clamp(1980, 2107) - 1980).unwrap_or(0);
        let date = (year << 9) | ((at.month() as u16) << 5) | at.day() as u16;
        let time =
            ((at.hour() as u16) << 11) | ((at.minute() as u16) << 5) | (at.second() as u16 / 2);
        Package {
            out: Vec::with_capacity(capacity),
            central: Vec::with_capacity(1024),
            count: 0,
            time,
            date,
        }
    }

    /// Add `data`, deflating it unless it is tiny.
    pub fn add(&mut self, name: &str, data: &[u8]) {
        if data.len() < STORE_BELOW {
            self.add_data(
                name,
                Data {
                    deflated: false,
                    bytes: data,
                    crc32: crc32(data),
                    size: data.len(),
                },
            );
        } else {
            let (bytes, crc32) = font::raw(data);
            self.add_data(
                name,
                Data {
                    deflated: true,
                    bytes: &bytes,
                    crc32,
                    size: data.len(),
                },
            );
        }
    }

    /// Add an entry whose data is ready.
    pub fn add_data(&mut self, name: &str, data: Data<'_>) {
        let offset = u32_of(self.out.len());
        let method: u16 = if data.deflated { 8 } else { 0 };
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        let name = name
            .as_bytes()
            .get(..usize::from(name_len))
            .unwrap_or_default();
        let common = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
            buf.extend_from_slice(&0u16.to_le_bytes()); // flags
            buf.extend_from_slice(&method.to_le_bytes());
            buf.extend_from_slice(&self.time.to_le_bytes());
            buf.extend_from_slice(&self.date.to_le_bytes());
            buf.extend_from_slice(&data.crc32.to_le_bytes());
            buf.extend_from_slice(&u32_of(data.bytes.len()).to_le_bytes());
            buf.extend_from_slice(&u32_of(data.size).to_le_bytes());
            buf.extend_from_slice(&name_len.to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        };
        self.out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut self.out);
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(data.bytes);

        let mut central = std::mem::take(&mut self.central);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by: MS-DOS, 2.0
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk number
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
        self.central = central;
        self.count = self.count.saturating_add(1);
    }

    /// The finished ZIP file.
    pub fn finish(mut self) -> Vec<u8> {
        let offset = u32_of(self.out.len());
        self.out.extend_from_slice(&self.central);
        self.out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out
            .extend_from_slice(&u32_of(self.central.len()).to_le_bytes());
        self.out.extend_from_slice(&offset.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_zip_crate_reads_what_is_written() {
        let at = crate::sample::issued_at();
        let mut package = Package::new(at, 0);
        package.add("a.txt", b"tiny");
        let big = "OFD ".repeat(1000);
        package.add("dir/b.xml", big.as_bytes());
        let shared = font::deflate(b"shared bytes shared bytes");
        package.add_data("c.bin", Data::deflated(&shared, 25));
        let bytes = package.finish();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().to_string())
            .collect();
        assert_eq!(names.len(), 3);
        for (name, want) in [
            ("a.txt", &b"tiny"[..]),
            ("dir/b.xml", big.as_bytes()),
            ("c.bin", b"shared bytes shared bytes"),
        ] {
            let mut file = archive.by_name(name).unwrap();
            let mut got = Vec::new();
            file.read_to_end(&mut got).unwrap();
            assert_eq!(got, want, "{name}");
            let modified = file.last_modified().unwrap();
            assert_eq!(
                (modified.year(), modified.month(), modified.day()),
                (2025, 3, 7)
            );
            assert_eq!((modified.hour(), modified.minute()), (14, 5));
        }
    }
}
