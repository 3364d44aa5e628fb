//! The verdicts of `check_file` for each format, good and bad.

use super::*;
use crate::ofd_read::testkit::OfdFiles;
use crate::pdf_check::tests::{Spec, build};
use crate::{Issued, sample};

fn blue_xml() -> Vec<u8> {
    let content = sample::blue();
    xml::write(&Issued {
        number: sample::number(),
        issued_at: sample::issued_at(),
        content: &content,
    })
}

fn recorded_for(bytes: &[u8]) -> (String, u64) {
    (sm3_hex(bytes), u64::try_from(bytes.len()).unwrap())
}

#[test]
fn sm3_of_the_standard_example() {
    // GB/T 32905-2016, appendix A, example 1.
    assert_eq!(
        sm3_hex(b"abc"),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );
}

#[test]
fn a_good_file_of_each_format_passes() {
    let number = sample::number();
    let xml = blue_xml();
    let ofd = OfdFiles::contract(&number.to_string(), &xml).zip();
    let pdf = build(Spec::default());
    for (format, bytes, renders) in [
        (Format::Xml, &xml, Outcome::Skipped),
        (Format::Ofd, &ofd, Outcome::Passed),
        (Format::Pdf, &pdf, Outcome::Passed),
    ] {
        let (hex, size) = recorded_for(bytes);
        let recorded = Recorded {
            sm3_hex: &hex.to_uppercase(),
            size,
        };
        let check = check_file(format, &number, Some(&recorded), Some(bytes));
        assert_eq!(
            check,
            FileCheck {
                format,
                present: true,
                digest: Outcome::Passed,
                parses: Outcome::Passed,
                renders,
                detail: String::new(),
                usability_recorded: false,
            }
        );
        assert!(check.ok() && check.newly_usable());
        let unrecorded = check_file(format, &number, None, Some(bytes));
        assert_eq!(unrecorded.digest, Outcome::Skipped);
        assert!(unrecorded.ok(), "{}", unrecorded.detail);
    }
}

#[test]
fn a_verdict_is_reused_only_for_the_same_bytes_and_the_same_checks() {
    let number = sample::number();
    let ofd = OfdFiles::contract(&number.to_string(), &blue_xml()).zip();
    let (hex, size) = recorded_for(&ofd);
    let recorded = Recorded {
        sm3_hex: &hex,
        size,
    };
    let reused = check_file_reusing(
        Format::Ofd,
        &number,
        Some(&recorded),
        Some(&ofd),
        Some(CHECKS_VERSION),
    );
    assert!(reused.usability_recorded && reused.ok() && !reused.newly_usable());
    assert_eq!(
        (reused.parses, reused.renders),
        (Outcome::Passed, Outcome::Passed)
    );

    let older = check_file_reusing(
        Format::Ofd,
        &number,
        Some(&recorded),
        Some(&ofd),
        Some("fapiao-checks/0"),
    );
    assert!(
        !older.usability_recorded && older.newly_usable(),
        "checked again"
    );

    // A changed file does not match the digest, so its verdict is its own.
    let mut broken = ofd.clone();
    broken.truncate(ofd.len() / 2);
    broken.resize(ofd.len(), 0);
    let checked = check_file_reusing(
        Format::Ofd,
        &number,
        Some(&recorded),
        Some(&broken),
        Some(CHECKS_VERSION),
    );
    assert!(!checked.usability_recorded);
    assert_eq!(
        (checked.digest, checked.parses),
        (Outcome::Failed, Outcome::Failed),
        "{}",
        checked.detail
    );
}

#[test]
fn a_missing_file_is_not_ok() {
    let (hex, size) = recorded_for(b"x");
    let recorded = Recorded {
        sm3_hex: &hex,
        size,
    };
    let check = check_file(Format::Ofd, &sample::number(), Some(&recorded), None);
    assert!(!check.present && !check.ok());
    assert_eq!(
        (check.digest, check.parses, check.renders),
        (Outcome::Skipped, Outcome::Skipped, Outcome::Skipped)
    );
    assert_eq!(check.detail, "the file is missing");
}

#[test]
fn the_digest_says_whether_size_or_sm3_differs() {
    let xml = blue_xml();
    let (hex, size) = recorded_for(&xml);
    let number = sample::number();

    let longer = Recorded {
        sm3_hex: &hex,
        size: size + 1,
    };
    let check = check_file(Format::Xml, &number, Some(&longer), Some(&xml));
    assert_eq!(
        (check.digest, check.parses),
        (Outcome::Failed, Outcome::Passed)
    );
    assert!(check.detail.contains("size"), "{}", check.detail);
    assert!(!check.ok());

    let other = sm3_hex(b"other");
    let wrong = Recorded {
        sm3_hex: &other,
        size,
    };
    let check = check_file(Format::Xml, &number, Some(&wrong), Some(&xml));
    assert_eq!(check.digest, Outcome::Failed);
    assert!(check.detail.contains("SM3"), "{}", check.detail);
}

#[test]
fn a_file_of_another_invoice_does_not_parse_as_this_one() {
    let xml = blue_xml();
    let other = sample::red_number();
    let check = check_file(Format::Xml, &other, None, Some(&xml));
    assert_eq!(check.parses, Outcome::Failed);
    assert!(
        check.detail.contains(&other.to_string()),
        "{}",
        check.detail
    );

    let number = sample::number().to_string();
    let mut files = OfdFiles::contract(&number, &xml);
    files.edit(
        "OFD.xml",
        &format!(">{number}</ofd:CustomData>"),
        ">25312000000000009001</ofd:CustomData>",
    );
    let check = check_file(Format::Ofd, &sample::number(), None, Some(&files.zip()));
    assert_eq!(
        (check.parses, check.renders),
        (Outcome::Failed, Outcome::Passed)
    );
    assert!(check.detail.contains("发票号码"), "{}", check.detail);

    // The attached XML is another invoice's.
    let content = sample::red();
    let red_xml = xml::write(&Issued {
        number: sample::red_number(),
        issued_at: sample::issued_at(),
        content: &content,
    });
    let files = OfdFiles::contract(&number, &red_xml);
    let check = check_file(Format::Ofd, &sample::number(), None, Some(&files.zip()));
    assert_eq!(check.parses, Outcome::Failed);
    assert!(check.detail.contains("attached"), "{}", check.detail);
}

#[test]
fn unreadable_files_fail_parse_and_render() {
    let number = sample::number();
    for format in Format::ALL {
        for bytes in [
            b"".as_slice(),
            b"garbage",
            b"PK\x05\x06",
            b"%PDF-1.7\n%%EOF",
        ] {
            let check = check_file(format, &number, None, Some(bytes));
            assert_eq!(check.parses, Outcome::Failed, "{format} {bytes:?}");
            let renders = if format == Format::Xml {
                Outcome::Skipped
            } else {
                Outcome::Failed
            };
            assert_eq!(check.renders, renders, "{format} {bytes:?}");
            assert!(!check.ok());
        }
    }
}

#[test]
fn render_faults_fail_only_the_render_part() {
    let number = sample::number();
    let pdf = build(Spec {
        to_unicode: false,
        ..Spec::default()
    });
    let check = check_file(Format::Pdf, &number, None, Some(&pdf));
    assert_eq!(
        (check.parses, check.renders),
        (Outcome::Passed, Outcome::Failed)
    );
    assert!(check.detail.contains("ToUnicode"), "{}", check.detail);

    let mut files = OfdFiles::contract(&number.to_string(), &blue_xml());
    files.remove("Doc_0/Res/font_1.ttf");
    let check = check_file(Format::Ofd, &number, None, Some(&files.zip()));
    assert_eq!(
        (check.parses, check.renders),
        (Outcome::Passed, Outcome::Failed)
    );
}
