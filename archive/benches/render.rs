//! Rendering time of the layout files of the blue sample invoice.
//!
//! - `layout`: the page layout alone;
//! - `pdf` / `ofd`: one format, with the invoice's layout and font subset already made (as when the
//!   other format of the same invoice was written just before);
//! - `pdf+ofd`: both files of one invoice, caches cleared first: the real cost per invoice (the
//!   layout, the subset and its compression are made once and shared by the two writers);
//! - `font subset (uncached)`: building a document's subset alone;
//! - `pdf+ofd, 40 lines (4 pages)`: both files of a long invoice, for scale.

use criterion::{Criterion, criterion_group, criterion_main};
use fapiao_archive::{Issued, font, layout, ofd_write, pdf, sample};

fn render(c: &mut Criterion) {
    let content = sample::blue();
    let issued = Issued {
        number: sample::number(),
        issued_at: sample::issued_at(),
        content: &content,
    };
    let xml = vec![b'x'; 6000];
    let mut group = c.benchmark_group("render");
    group.bench_function("layout", |b| b.iter(|| layout::layout(&issued)));
    group.bench_function("pdf", |b| b.iter(|| pdf::write(&issued)));
    group.bench_function("ofd", |b| b.iter(|| ofd_write::write(&issued, &xml)));
    group.bench_function("pdf+ofd", |b| {
        b.iter(|| {
            font::clear_cache();
            layout::clear_shared();
            let ofd = ofd_write::write(&issued, &xml);
            let pdf = pdf::write(&issued);
            (ofd, pdf)
        })
    });
    group.bench_function("font subset (uncached)", |b| {
        let layout = layout::layout(&issued);
        let chars = layout.chars().to_vec();
        b.iter(|| {
            font::clear_cache();
            font::subset(&layout.template.chars, &chars)
        })
    });
    let forty = sample::with_lines("B", 40);
    let long = Issued {
        content: &forty,
        ..issued
    };
    group.bench_function("pdf+ofd, 40 lines (4 pages)", |b| {
        b.iter(|| {
            font::clear_cache();
            layout::clear_shared();
            (ofd_write::write(&long, &xml), pdf::write(&long))
        })
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
