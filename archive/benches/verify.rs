//! What an auditor's verify pays per invoice: `check_file` (size, SM3, parse, render check) on
//! each layout file, and on all three files of one invoice.
//!
//! The checks reuse work for identical bytes on a thread (the font the OFD and the PDF share, the
//! template of a kind, the XML the OFD attaches; see `check::memo`), so checking the same files
//! over and over would measure cache hits. Each iteration therefore takes the next of 32
//! different invoices (different numbers, buyers and amounts, so different font subsets), in the
//! order verify meets them: XML, OFD, PDF of one invoice, then the next invoice.
//!
//! Target: all three files of one invoice in at most 0.35 ms on one core, so that verify reaches
//! 5,000 invoices/s on two.
//!
//! ```sh
//! cargo bench -p fapiao-archive --bench verify
//! ```

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fapiao_archive::check::{Recorded, check_file, sm3_hex};
use fapiao_archive::{Format, Issued, ofd_write, pdf, sample, xml};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;

/// Distinct invoices cycled through.
const INVOICES: usize = 32;

/// One archived file: format, bytes, recorded SM3 and size.
struct File {
    format: Format,
    bytes: Vec<u8>,
    sm3: String,
    size: u64,
}

/// The invoice number and the three archived files of one invoice.
struct Archived {
    number: InvoiceNumber,
    files: Vec<File>,
}

/// Buyers whose names differ in characters, so every invoice has its own font subset.
const BUYERS: [&str; 8] = [
    "北京某某信息技术有限公司",
    "杭州西湖云计算服务有限公司",
    "成都锦江智能制造股份有限公司",
    "广州珠江物流供应链有限公司",
    "武汉长江光电子研究院",
    "南京秦淮文化传媒有限公司",
    "西安古城软件开发有限公司",
    "青岛海滨食品进出口有限公司",
];

fn invoice(i: usize) -> (InvoiceNumber, InvoiceContent) {
    let mut content = if i.is_multiple_of(2) {
        sample::blue()
    } else {
        sample::with_lines(&format!("BENCH-{i}"), 1 + i % 7)
    };
    content.buyer.party.name = format!("{}{}分公司", BUYERS[i % BUYERS.len()], i);
    content.remark = format!("合同编号：HT-2025-{i:04}");
    let sequence = u64::try_from(10_000 + i).unwrap_or(0);
    let number = InvoiceNumber::new(25, 31, 2, sequence).unwrap_or_else(|e| panic!("{e:?}"));
    (number, content)
}

fn archive(i: usize) -> Archived {
    let (number, content) = invoice(i);
    let issued = Issued {
        number,
        issued_at: sample::issued_at(),
        content: &content,
    };
    let xml = xml::write(&issued);
    let ofd = ofd_write::write(&issued, &xml);
    let pdf = pdf::write(&issued);
    let files = [(Format::Xml, xml), (Format::Ofd, ofd), (Format::Pdf, pdf)]
        .into_iter()
        .map(|(format, bytes)| File {
            format,
            sm3: sm3_hex(&bytes),
            size: u64::try_from(bytes.len()).unwrap_or(0),
            bytes,
        })
        .collect();
    Archived { number, files }
}

fn check(invoice: &Archived, file: &File) -> bool {
    let recorded = Recorded {
        sm3_hex: &file.sm3,
        size: file.size,
    };
    check_file(
        black_box(file.format),
        &invoice.number,
        Some(&recorded),
        Some(black_box(&file.bytes)),
    )
    .ok()
}

fn bench(c: &mut Criterion) {
    let invoices: Vec<Archived> = (0..INVOICES).map(archive).collect();
    for invoice in &invoices {
        for file in &invoice.files {
            assert!(check(invoice, file), "{} {}", invoice.number, file.format);
        }
    }
    let mean = |index: usize| {
        let total: u64 = invoices.iter().map(|i| i.files[index].size).sum();
        total / INVOICES as u64
    };

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    let sizes: Vec<u64> = (0..3).map(mean).collect();
    let mut next = 0usize;
    group.bench_function(
        format!(
            "check_file xml+ofd+pdf of one invoice (mean {} + {} + {} bytes)",
            sizes[0], sizes[1], sizes[2]
        ),
        |b| {
            b.iter(|| {
                next = (next + 1) % INVOICES;
                let invoice = &invoices[next];
                invoice.files.iter().all(|file| check(invoice, file))
            })
        },
    );
    // Each format alone, cycling invoices: without the OFD just before, the PDF inflates its
    // font itself, and the OFD parses its attached XML; these are the costs of one file.
    for (index, size) in sizes.iter().enumerate() {
        let format = invoices[0].files[index].format;
        let mut next = 0usize;
        group.bench_function(
            format!("check_file {format} alone (mean {size} bytes)"),
            |b| {
                b.iter(|| {
                    next = (next + 1) % INVOICES;
                    let invoice = &invoices[next];
                    check(invoice, &invoice.files[index])
                })
            },
        );
    }
    let block = vec![0x5au8; 64 * 1024];
    group.throughput(Throughput::Bytes(64 * 1024));
    group.bench_function("sm3 of 64 KiB", |b| b.iter(|| sm3_hex(black_box(&block))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
