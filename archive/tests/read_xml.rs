//! The EInvoice XML parser against a file shaped like the platform's, and round trips through the
//! writer for every sample.

use std::process::Command;

use chrono::{NaiveDate, NaiveTime};
use fapiao_archive::xml::{self, ParsedInvoice, XmlError};
use fapiao_archive::{Issued, sample};
use fapiao_invoice::model::{Colour, InvoiceContent, InvoiceKind};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::rate::TaxRate;
use rust_decimal::Decimal;

const PLATFORM_LIKE: &str = include_str!("fixtures/platform_like.xml");

fn d(text: &str) -> Decimal {
    text.parse().expect("a decimal literal")
}

#[test]
fn a_platform_like_file_reads_field_by_field() {
    let p = xml::parse(PLATFORM_LIKE.as_bytes()).unwrap();
    let number: InvoiceNumber = "24442000000123456789".parse().unwrap();

    assert_eq!(p.header.eiid, "24442000000123456789");
    assert_eq!(p.header.e_invoice_tag, "SWEI4400");
    assert_eq!(p.header.version, "0.32");
    assert_eq!(p.header.colour, Some(Colour::Blue));
    assert_eq!(p.header.invoice_type_code, "01");
    assert_eq!(p.header.kind, Some(InvoiceKind::General));
    assert_eq!(p.header.kind_name, "普通发票");
    assert_eq!(p.header.labels.len(), 1);
    assert_eq!(p.header.labels[0].label_type, "2");
    assert_eq!(p.header.labels[0].code, "1");
    assert_eq!(p.header.labels[0].name, "电子税务局开票");

    assert_eq!(p.seller.id_num, "91440300MA5GTEST1X");
    assert_eq!(p.seller.name, "深圳市样例农业科技有限公司");
    assert_eq!(p.seller.address, "广东省深圳市南山区科苑路100号");
    assert_eq!(p.seller.phone, "0755-26001234");
    assert_eq!(p.seller.bank_name, "中国建设银行深圳科苑支行");
    assert_eq!(p.seller.bank_account, "44250100001234567890");

    assert_eq!(p.buyer.id_num, "91440101MA9YTEST2K");
    assert_eq!(p.buyer.name, "广州市示例餐饮管理有限公司");
    assert_eq!(p.buyer.address, "", "xsi:nil reads as empty");
    assert_eq!(p.buyer.phone, "");
    assert_eq!(
        p.buyer.bank_name, "",
        "xsi:nil with an end tag reads as empty"
    );
    assert_eq!(p.buyer.bank_account, "");

    assert_eq!(p.basic.total_amount, d("7422.10"));
    assert_eq!(p.basic.total_tax, d("560.00"));
    assert_eq!(p.basic.total_with_tax, d("7982.10"));
    assert_eq!(p.basic.total_in_words, "柒仟玖佰捌拾贰圆壹角整");
    assert_eq!(p.basic.total_in_words_amount, Some(d("7982.10")));
    assert_eq!(p.basic.drawer, "陈晓");
    let at = NaiveDate::from_ymd_opt(2024, 11, 20)
        .unwrap()
        .and_hms_opt(10, 31, 45)
        .unwrap();
    assert_eq!(p.basic.request_time, Some(at));

    assert_eq!(p.lines.len(), 3);
    let l = &p.lines[0];
    assert_eq!(l.item_name, "*信息系统服务*财务软件年度许可");
    assert_eq!(l.specification, "V3 标准版");
    assert_eq!(l.unit, "套");
    assert_eq!(l.quantity, Some(d("2")));
    assert_eq!(l.unit_price, Some(d("1000")));
    assert_eq!(l.amount, d("2000.00"));
    assert_eq!(l.rate, TaxRate::GENERAL, "0.130000");
    assert_eq!(l.tax, d("260.00"));
    assert_eq!(l.total, Some(d("2260.00")));
    assert_eq!(l.tax_code, "3040201030000000000");
    let l = &p.lines[1];
    assert_eq!(l.item_name, "*信息技术服务*年度运维支持");
    assert_eq!((l.specification.as_str(), l.unit.as_str()), ("", ""));
    assert_eq!((l.quantity, l.unit_price), (None, None));
    assert_eq!(l.amount, d("5000.00"), "surrounding whitespace");
    assert_eq!(l.rate, TaxRate::REDUCED_6, "6%");
    assert_eq!(l.tax, d("300.00"));
    assert_eq!(l.total, Some(d("5300.00")));
    let l = &p.lines[2];
    assert_eq!(l.item_name, "*蔬菜*有机白菜");
    assert_eq!(l.quantity, Some(d("100.5")));
    assert_eq!(l.unit_price, Some(d("4.2")));
    assert_eq!(l.rate, TaxRate::Exempt);
    assert_eq!(l.tax, Decimal::ZERO);
    assert_eq!(l.tax_code, "1010112010000000000");

    assert_eq!(p.red, None);
    assert_eq!(p.remark, "订单号：PO-2024-1120 & 送货单 SD-77");
    assert_eq!(p.authentication_method, "01");

    assert_eq!(p.number(), number);
    assert_eq!(p.supervision.issue_date, at.date());
    assert_eq!(
        p.supervision.issue_time,
        NaiveTime::from_hms_opt(10, 31, 45)
    );
    assert_eq!(p.supervision.tax_bureau_code, "14400000000");
    assert_eq!(p.supervision.tax_bureau_name, "国家税务总局广东省税务局");

    let sig = p.signature.expect("the signature block is read");
    assert_eq!(sig.reference_uri, "#EInvoiceData-24442000000123456789");
    assert_eq!(sig.algorithm, "1.2.156.10197.1.501");
    assert_eq!(sig.format, "DETACH");
    assert_eq!(sig.time, "2024-11-20 10:31:47");
    assert_eq!(
        sig.value,
        "RkFQSUFPLVRFU1QtU0lHTkFUVVJFLU5PVC1BLVJFQUwtT05FLTAwMDE="
    );
    assert!(sig.key_info);
}

#[test]
fn variants_seen_in_the_wild_read_the_same() {
    let base = xml::parse(PLATFORM_LIKE.as_bytes()).unwrap();

    let yuan = PLATFORM_LIKE.replace("贰圆壹角整", "贰元壹角");
    let p = xml::parse(yuan.as_bytes()).unwrap();
    assert_eq!(p.basic.total_in_words, "柒仟玖佰捌拾贰元壹角");
    assert_eq!(p.basic.total_in_words_amount, Some(d("7982.10")));

    let date_only = PLATFORM_LIKE.replace(
        "<IssueTime>2024-11-20 10:31:45</IssueTime>",
        "<IssueTime>2024-11-20</IssueTime>",
    );
    let p = xml::parse(date_only.as_bytes()).unwrap();
    assert_eq!(p.supervision.issue_date, base.supervision.issue_date);
    assert_eq!(p.supervision.issue_time, None);

    let bom = [b"\xEF\xBB\xBF".as_slice(), PLATFORM_LIKE.as_bytes()].concat();
    assert_eq!(xml::parse(&bom).unwrap(), base);

    let namespaced = PLATFORM_LIKE.replace(
        "<EInvoice xmlns:xsi=",
        "<EInvoice xmlns=\"urn:example:einvoice\" xmlns:xsi=",
    );
    assert_eq!(xml::parse(namespaced.as_bytes()).unwrap(), base);

    let rate_decimal = PLATFORM_LIKE.replace("<TaxRate>6%</TaxRate>", "<TaxRate>0.06</TaxRate>");
    assert_eq!(xml::parse(rate_decimal.as_bytes()).unwrap(), base);

    let wrapped = PLATFORM_LIKE
        .replacen(
            "<IssuItemInformation>",
            "<IssuItemList><IssuItemInformation>",
            1,
        )
        .replace(
            "</IssuItemInformation>\n        <SpecificInformation/>",
            "</IssuItemInformation></IssuItemList>\n        <SpecificInformation/>",
        );
    assert_eq!(xml::parse(wrapped.as_bytes()).unwrap(), base);
}

/// Removes the first element `name` (with its content) from `text`.
fn without(text: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let (Some(start), Some(end)) = (text.find(&open), text.find(&close)) else {
        let empty = format!("<{name}/>");
        return text.replacen(&empty, "", 1);
    };
    format!("{}{}", &text[..start], &text[end + close.len()..])
}

#[test]
fn optional_blocks_may_be_missing() {
    let mut text = PLATFORM_LIKE.to_owned();
    for name in [
        "Header",
        "SpecificInformation",
        "AdditionalInformation",
        "SellerAuthentication",
        "TaxBureauSignature",
        "BuyerIdNum",
        "RequestTime",
        "TotaltaxIncludedAmount",
    ] {
        text = without(&text, name);
    }
    let p = xml::parse(text.as_bytes()).unwrap();
    assert_eq!(p.header, xml::Header::default());
    assert_eq!((p.red, p.signature), (None, None));
    assert_eq!(p.remark, "");
    assert_eq!(p.buyer.id_num, "");
    assert_eq!(p.basic.request_time, None);
    assert_eq!(p.lines[0].total, None);
    assert_eq!(p.lines[1].total, Some(d("5300.00")));
}

#[test]
fn required_fields_are_named_when_missing_or_wrong() {
    let cases: [(String, XmlError); 6] = [
        (
            without(PLATFORM_LIKE, "InvoiceNumber"),
            XmlError::Missing("TaxSupervisionInfo/InvoiceNumber".into()),
        ),
        (
            without(PLATFORM_LIKE, "TotalTaxAm"),
            XmlError::Missing("EInvoiceData/BasicInformation/TotalTaxAm".into()),
        ),
        (
            PLATFORM_LIKE.replace(
                "<ComTaxAm>300.00</ComTaxAm>",
                "<ComTaxAm xsi:nil=\"true\"/>",
            ),
            XmlError::Missing("EInvoiceData/IssuItemInformation[2]/ComTaxAm".into()),
        ),
        (
            PLATFORM_LIKE.replace("<Amount>2000.00</Amount>", "<Amount>2,000.00</Amount>"),
            XmlError::Invalid {
                path: "EInvoiceData/IssuItemInformation[1]/Amount".into(),
                expected: "decimal number",
                text: "2,000.00".into(),
            },
        ),
        (
            PLATFORM_LIKE.replace("<TaxRate>免税</TaxRate>", "<TaxRate>免</TaxRate>"),
            XmlError::Invalid {
                path: "EInvoiceData/IssuItemInformation[3]/TaxRate".into(),
                expected: "tax rate",
                text: "免".into(),
            },
        ),
        (
            PLATFORM_LIKE.replace(
                "<InvoiceNumber>24442000000123456789</InvoiceNumber>",
                "<InvoiceNumber>2444200000012345678</InvoiceNumber>",
            ),
            XmlError::Invalid {
                path: "TaxSupervisionInfo/InvoiceNumber".into(),
                expected: "20-digit invoice number",
                text: "2444200000012345678".into(),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(xml::parse(text.as_bytes()), Err(want.clone()), "{want}");
    }
    let mut no_lines = PLATFORM_LIKE.to_owned();
    for _ in 0..3 {
        no_lines = without(&no_lines, "IssuItemInformation");
    }
    assert_eq!(xml::parse(no_lines.as_bytes()), Err(XmlError::NoLines));
}

fn issued(number: InvoiceNumber, content: &InvoiceContent) -> Issued<'_> {
    Issued {
        number,
        issued_at: sample::issued_at(),
        content,
    }
}

/// Every field the writer puts in, compared with what the parser gives back.
fn assert_round_trip(issued: &Issued<'_>) {
    let bytes = xml::write(issued);
    let p: ParsedInvoice = xml::parse(&bytes).expect("written XML parses");
    let c = issued.content;
    let number = issued.number.to_string();

    assert_eq!(p.header.eiid, number);
    assert_eq!(p.header.e_invoice_tag, issued.e_invoice_tag());
    assert_eq!(p.header.version, "0.32");
    assert_eq!(p.header.colour, Some(c.colour()));
    assert_eq!(p.header.invoice_type_code, "01");
    assert_eq!(p.header.kind, Some(c.kind));
    assert_eq!(p.header.labels.len(), 1);
    assert_eq!(p.header.labels[0].code, "5");
    assert_eq!(p.header.labels[0].name, "自建平台开票");

    for (got, want) in [(&p.seller, &c.seller), (&p.buyer, &c.buyer.party)] {
        let id = want.tax_id.as_ref().map(|t| t.as_str()).unwrap_or("");
        assert_eq!(got.id_num, id);
        assert_eq!(got.name, want.name);
        assert_eq!(got.address, want.address);
        assert_eq!(got.phone, want.phone);
        assert_eq!(got.bank_name, want.bank_name);
        assert_eq!(got.bank_account, want.bank_account);
    }

    assert_eq!(p.basic.total_amount, c.totals.amount);
    assert_eq!(p.basic.total_tax, c.totals.tax);
    assert_eq!(p.basic.total_with_tax, c.totals.total);
    assert_eq!(p.basic.total_in_words, c.total_in_words);
    assert_eq!(p.basic.total_in_words_amount, Some(c.totals.total));
    assert_eq!(p.basic.drawer, c.drawer);
    assert_eq!(p.basic.request_time, Some(issued.issued_at));

    assert_eq!(p.lines.len(), c.lines.len());
    for (got, want) in p.lines.iter().zip(&c.lines) {
        assert_eq!(got.item_name, want.printed_name);
        assert_eq!(got.specification, want.specification);
        assert_eq!(got.unit, want.unit);
        assert_eq!(got.quantity, want.quantity);
        assert_eq!(got.unit_price, want.unit_price);
        assert_eq!(got.amount, want.amount);
        assert_eq!(got.rate, want.rate);
        assert_eq!(got.tax, want.tax);
        assert_eq!(got.total, Some(want.total));
        assert_eq!(got.tax_code, want.tax_code.as_str());
    }

    match (&p.red, &c.red) {
        (None, None) => {}
        (Some(got), Some(want)) => {
            assert_eq!(got.blue_number(), Some(want.blue_number));
            assert_eq!(got.original_invoice_code, want.blue_number.to_string());
            assert_eq!(got.form_number, want.form_number);
        }
        other => panic!("red reference: {other:?}"),
    }
    assert_eq!(p.remark, c.remark);
    assert_eq!(p.authentication_method, "01");
    assert_eq!(p.number(), issued.number);
    assert_eq!(p.supervision.issue_date, issued.issued_at.date());
    assert_eq!(p.supervision.issue_time, None);
    assert_eq!(p.supervision.tax_bureau_code, issued.tax_bureau_code());
    assert_eq!(p.supervision.tax_bureau_name, issued.tax_bureau_name());
    assert_eq!(p.signature, None);
}

#[test]
fn every_sample_round_trips() {
    let blue = sample::blue();
    let red = sample::red();
    let person = sample::to_person();
    let long = sample::with_lines("SO-LONG", 40);
    assert_round_trip(&issued(sample::number(), &blue));
    assert_round_trip(&issued(sample::red_number(), &red));
    assert_round_trip(&issued(sample::number(), &person));
    assert_round_trip(&issued(sample::number(), &long));
    assert!(red.lines.iter().all(|l| l.amount.is_sign_negative()));
    assert_eq!(person.buyer.party.tax_id, None);
}

#[test]
fn markup_in_text_survives_the_round_trip() {
    let mut content = sample::blue();
    content.remark = "A&B <合同> \"引号\" 'x' ]]> &amp;".into();
    content.buyer.party.name = "<script>&".into();
    let issued = issued(sample::number(), &content);
    let p = xml::parse(&xml::write(&issued)).unwrap();
    assert_eq!(p.remark, content.remark);
    assert_eq!(p.buyer.name, content.buyer.party.name);
}

#[test]
fn written_files_are_well_formed_for_xmllint() {
    let dir = tempfile::tempdir().unwrap();
    for (name, number, content) in [
        ("blue", sample::number(), sample::blue()),
        ("red", sample::red_number(), sample::red()),
        ("person", sample::number(), sample::to_person()),
    ] {
        let path = dir.path().join(format!("{name}.xml"));
        std::fs::write(&path, xml::write(&issued(number, &content))).unwrap();
        let output = match Command::new("xmllint").arg("--noout").arg(&path).output() {
            Ok(output) => output,
            Err(e) => {
                panic!("cannot run xmllint ({e}); install it with `apt-get install libxml2-utils`")
            }
        };
        assert!(
            output.status.success(),
            "xmllint rejected {name}.xml: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
