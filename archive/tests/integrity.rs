//! `check_file` against tampered, truncated, random and hostile files: every changed byte fails
//! the digest, and no input makes it panic or blow up.

#[path = "../src/ofd_read/testkit.rs"]
mod testkit;

use fapiao_archive::check::{Outcome, Recorded, check_file, sm3_hex};
use fapiao_archive::{Format, Issued, sample, xml};
use fapiao_invoice::number::InvoiceNumber;
use testkit::OfdFiles;

fn blue_xml() -> Vec<u8> {
    let content = sample::blue();
    xml::write(&Issued {
        number: sample::number(),
        issued_at: sample::issued_at(),
        content: &content,
    })
}

/// A small xorshift generator: reproducible "random" bytes without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

#[test]
fn flipping_any_byte_of_the_xml_fails_the_digest() {
    let number = sample::number();
    let original = blue_xml();
    let hex = sm3_hex(&original);
    let recorded = Recorded {
        sm3_hex: &hex,
        size: u64::try_from(original.len()).unwrap(),
    };
    assert!(check_file(Format::Xml, &number, Some(&recorded), Some(&original)).ok());
    let mut tampered = original.clone();
    for i in 0..original.len() {
        tampered[i] ^= 0x01;
        assert_ne!(sm3_hex(&tampered), hex, "byte {i}");
        let check = check_file(Format::Xml, &number, Some(&recorded), Some(&tampered));
        assert_eq!(check.digest, Outcome::Failed, "byte {i}");
        assert!(!check.ok(), "byte {i}");
        assert!(check.detail.contains("SM3"), "byte {i}: {}", check.detail);
        tampered[i] ^= 0x01;
    }
    assert_eq!(tampered, original);
}

#[test]
fn flipping_bytes_of_an_ofd_fails_the_digest() {
    let number = sample::number();
    let original = OfdFiles::contract(&number.to_string(), &blue_xml()).zip();
    let hex = sm3_hex(&original);
    let recorded = Recorded {
        sm3_hex: &hex,
        size: u64::try_from(original.len()).unwrap(),
    };
    assert!(check_file(Format::Ofd, &number, Some(&recorded), Some(&original)).ok());
    let mut tampered = original.clone();
    for i in (0..original.len()).step_by(7) {
        tampered[i] ^= 0x80;
        let check = check_file(Format::Ofd, &number, Some(&recorded), Some(&tampered));
        assert_eq!(check.digest, Outcome::Failed, "byte {i}");
        assert!(!check.ok(), "byte {i}");
        tampered[i] ^= 0x80;
    }
}

#[test]
fn truncated_files_never_pass_and_never_panic() {
    let number = sample::number();
    let xml = blue_xml();
    let ofd = OfdFiles::contract(&number.to_string(), &xml).zip();
    for (format, bytes) in [(Format::Xml, &xml), (Format::Ofd, &ofd)] {
        // The XML ends with a line feed after the root element; without it the file is whole.
        let whole = if format == Format::Xml {
            bytes.len() - 1
        } else {
            bytes.len()
        };
        for cut in (0..whole).step_by(13) {
            let check = check_file(format, &number, None, Some(&bytes[..cut]));
            assert_eq!(check.parses, Outcome::Failed, "{format} cut at {cut}");
            assert!(!check.ok());
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let number: InvoiceNumber = "25312000000000008848".parse().unwrap();
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for round in 0..300 {
        let len = usize::try_from(noise.next() % 4096).unwrap();
        let mut bytes = noise.bytes(len);
        // Give some of them the right magic so the parsers get further than the first byte.
        let magic: &[u8] = match round % 4 {
            1 => b"PK\x03\x04",
            2 => b"%PDF-1.7\n",
            3 => b"<?xml version=\"1.0\"?><EInvoice>",
            _ => b"",
        };
        bytes.splice(0..0, magic.iter().copied());
        for format in Format::ALL {
            let check = check_file(format, &number, None, Some(&bytes));
            assert!(!check.ok(), "{format} round {round}");
        }
    }
}

#[test]
fn a_zip_bomb_entry_is_refused_without_inflating_it() {
    let number = sample::number();
    let mut files = OfdFiles::contract(&number.to_string(), &blue_xml());
    // Zeros deflate about a thousandfold: a small file that inflates just past the entry cap.
    let size = usize::try_from(fapiao_archive::ofd_read::MAX_ENTRY_BYTES).unwrap() + 1024 * 1024;
    files.set("Doc_0/Tags/CustomTag.xml", vec![0; size]);
    let bomb = files.zip();
    assert!(bomb.len() < 1024 * 1024);
    let check = check_file(Format::Ofd, &number, None, Some(&bomb));
    assert_eq!(check.parses, Outcome::Failed);
    assert!(check.detail.contains("more than"), "{}", check.detail);
}

#[test]
fn hostile_xml_is_refused() {
    let number = sample::number();
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE EInvoice [<!ENTITY a \"aaaaaaaaaa\">\
                  <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\
                  <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><EInvoice>&c;</EInvoice>";
    let deep = format!(
        "<EInvoice>{}{}</EInvoice>",
        "<a>".repeat(200_000),
        "</a>".repeat(200_000)
    );
    for bytes in [laughs.as_bytes(), deep.as_bytes()] {
        let check = check_file(Format::Xml, &number, None, Some(bytes));
        assert_eq!(check.parses, Outcome::Failed);
    }
}
