//! The messages of the four red-letter confirmation form (红字发票信息确认单) services.
//!
//! | fwbm | request | reply |
//! |------|---------|-------|
//! | `HZQRXXLR` file a form (seller) | [`FileFormRequest`] | [`FormInfo`] |
//! | `HZQRXXCX` query one form | [`FormRequest`] | [`FormInfo`] |
//! | `HZQRXXQR` answer a form | [`AnswerFormRequest`] | [`FormInfo`] |
//! | `HZQRXXLB` list forms changed since a moment | [`ListFormsRequest`] | [`ListFormsReply`] |
//!
//! Field names follow the 乐企 form fields where they are known (`xsfnsrsbh`, `hzqrxxdbh`,
//! `hzqrduuid`, `lzfphm`, `chyyDm`, `hzqrxxztDm`, `lrfsf`, `hzcxje`, `hzcxse`, `ykjhzfpbz`,
//! `hzqrdmxList`, `lzmxxh`, `qrlx`, `ywlsh`); the times (`lrsj`, `qrjzsj`, `ztbgsj`), the red number
//! `hzfphm`, the line fields `je`/`se`/`fpspsl` and the listing's `qssj` are our own. Codes travel
//! as the platform writes them: `chyyDm` `01`–`04`, `hzqrxxztDm` `01`–`13`, `lrfsf` `0` seller /
//! `1` buyer, `qrlx` `Y`/`N`/`C`. Amounts are positive decimal strings.
//!
//! It must not decide anything: the sandbox and the client convert these to and from
//! [`crate::platform::RemoteForm`].

use chrono::{DateTime, Utc};
use fapiao_invoice::model::RedLetterReason;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{FormStatus, Initiator, RedLine};
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Flag;
use crate::platform::{FormAnswer, RemoteForm};

/// One line of a form (`hzqrdmxList`): what it reverses of one blue line, as positive magnitudes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormLineItem {
    /// 蓝字发票明细序号: the 1-based blue line number.
    pub lzmxxh: u32,
    /// 金额 (tax-exclusive) reversed.
    pub je: Decimal,
    /// 税额 reversed.
    pub se: Decimal,
    /// 数量 reversed, when the blue line has a quantity and the reversal takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpspsl: Option<Decimal>,
}

impl From<&RedLine> for FormLineItem {
    fn from(line: &RedLine) -> Self {
        Self {
            lzmxxh: line.blue_line,
            je: line.amount,
            se: line.tax,
            fpspsl: line.quantity,
        }
    }
}

impl From<&FormLineItem> for RedLine {
    fn from(item: &FormLineItem) -> Self {
        Self {
            blue_line: item.lzmxxh,
            amount: item.je,
            tax: item.se,
            quantity: item.fpspsl,
        }
    }
}

/// `HZQRXXLR` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFormRequest {
    /// 销售方纳税人识别号.
    pub xsfnsrsbh: String,
    /// 业务流水号: the seller's request id; filing again under it returns the same form.
    pub ywlsh: String,
    /// 蓝字发票号码.
    pub lzfphm: InvoiceNumber,
    /// 冲红原因代码.
    #[serde(rename = "chyyDm", with = "reason_code")]
    pub chyy_dm: RedLetterReason,
    /// The lines to reverse; at least one.
    #[serde(rename = "hzqrdmxList")]
    pub hzqrdmx_list: Vec<FormLineItem>,
}

/// `HZQRXXCX` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormRequest {
    pub xsfnsrsbh: String,
    /// 红字发票信息确认单编号.
    pub hzqrxxdbh: String,
}

/// 确认类型 of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnswerKind {
    /// 同意.
    #[serde(rename = "Y")]
    Agree,
    /// 不同意.
    #[serde(rename = "N")]
    Disagree,
    /// 撤销.
    #[serde(rename = "C")]
    Withdraw,
}

impl From<FormAnswer> for AnswerKind {
    fn from(answer: FormAnswer) -> Self {
        match answer {
            FormAnswer::Agree => Self::Agree,
            FormAnswer::Disagree => Self::Disagree,
            FormAnswer::Withdraw => Self::Withdraw,
        }
    }
}

impl From<AnswerKind> for FormAnswer {
    fn from(kind: AnswerKind) -> Self {
        match kind {
            AnswerKind::Agree => Self::Agree,
            AnswerKind::Disagree => Self::Disagree,
            AnswerKind::Withdraw => Self::Withdraw,
        }
    }
}

/// `HZQRXXQR` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerFormRequest {
    pub xsfnsrsbh: String,
    pub hzqrxxdbh: String,
    /// 确认类型.
    pub qrlx: AnswerKind,
}

/// 录入方身份.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilingParty {
    /// 销方.
    #[serde(rename = "0")]
    Seller,
    /// 购方.
    #[serde(rename = "1")]
    Buyer,
}

impl From<Initiator> for FilingParty {
    fn from(initiator: Initiator) -> Self {
        match initiator {
            Initiator::Seller => Self::Seller,
            Initiator::Buyer => Self::Buyer,
        }
    }
}

impl From<FilingParty> for Initiator {
    fn from(party: FilingParty) -> Self {
        match party {
            FilingParty::Seller => Self::Seller,
            FilingParty::Buyer => Self::Buyer,
        }
    }
}

/// A form as the platform answers it: the reply of `HZQRXXLR`, `HZQRXXCX` and `HZQRXXQR`, and one
/// row of `HZQRXXLB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormInfo {
    /// 红字发票信息确认单编号: 20 characters.
    pub hzqrxxdbh: String,
    /// 红字确认单 UUID: 32 lowercase hex characters.
    pub hzqrduuid: String,
    pub xsfnsrsbh: TaxpayerId,
    /// The seller's request id; empty for a form the buyer filed.
    #[serde(default)]
    pub ywlsh: String,
    pub lzfphm: InvoiceNumber,
    #[serde(rename = "chyyDm", with = "reason_code")]
    pub chyy_dm: RedLetterReason,
    /// 红字确认信息状态代码.
    #[serde(rename = "hzqrxxztDm", with = "status_code")]
    pub hzqrxxzt_dm: FormStatus,
    pub lrfsf: FilingParty,
    /// 红字冲销金额 (positive).
    pub hzcxje: Decimal,
    /// 红字冲销税额 (positive).
    pub hzcxse: Decimal,
    /// 录入时间.
    pub lrsj: DateTime<Utc>,
    /// 确认截止时间: when a pending form becomes void; absent when no confirmation was needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qrjzsj: Option<DateTime<Utc>>,
    /// 状态变更时间.
    pub ztbgsj: DateTime<Utc>,
    /// 已开具红字发票标记.
    pub ykjhzfpbz: Flag,
    /// 红字发票号码, when one is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hzfphm: Option<InvoiceNumber>,
    #[serde(rename = "hzqrdmxList")]
    pub hzqrdmx_list: Vec<FormLineItem>,
}

impl From<&RemoteForm> for FormInfo {
    fn from(form: &RemoteForm) -> Self {
        Self {
            hzqrxxdbh: form.number.clone(),
            hzqrduuid: form.uuid.clone(),
            xsfnsrsbh: form.seller.clone(),
            ywlsh: form.request_id.clone(),
            lzfphm: form.blue_number,
            chyy_dm: form.reason,
            hzqrxxzt_dm: form.status,
            lrfsf: form.initiator.into(),
            hzcxje: form.amount,
            hzcxse: form.tax,
            lrsj: form.created_at,
            qrjzsj: form.expires_at,
            ztbgsj: form.status_changed_at,
            ykjhzfpbz: form.red_number.is_some().into(),
            hzfphm: form.red_number,
            hzqrdmx_list: form.lines.iter().map(FormLineItem::from).collect(),
        }
    }
}

impl From<FormInfo> for RemoteForm {
    /// A red number is kept only when the flag says one is recorded.
    fn from(info: FormInfo) -> Self {
        let red_number = info.hzfphm.filter(|_| bool::from(info.ykjhzfpbz));
        Self {
            number: info.hzqrxxdbh,
            uuid: info.hzqrduuid,
            seller: info.xsfnsrsbh,
            request_id: info.ywlsh,
            blue_number: info.lzfphm,
            reason: info.chyy_dm,
            status: info.hzqrxxzt_dm,
            initiator: info.lrfsf.into(),
            lines: info.hzqrdmx_list.iter().map(RedLine::from).collect(),
            amount: info.hzcxje,
            tax: info.hzcxse,
            created_at: info.lrsj,
            expires_at: info.qrjzsj,
            status_changed_at: info.ztbgsj,
            red_number,
        }
    }
}

/// `HZQRXXLB` request: one page of the seller's forms whose status changed at or after `qssj`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFormsRequest {
    pub xsfnsrsbh: String,
    /// 起始时间.
    pub qssj: DateTime<Utc>,
    /// 页码, from 0.
    pub ym: u32,
    /// 每页数量.
    pub mysl: u32,
}

/// `HZQRXXLB` reply, oldest change first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFormsReply {
    #[serde(rename = "hzqrxxList")]
    pub hzqrxx_list: Vec<FormInfo>,
    /// 下一页页码, absent on the last page.
    #[serde(default)]
    pub xyym: Option<u32>,
}

/// `chyyDm` as its two-digit code.
mod reason_code {
    use fapiao_invoice::model::RedLetterReason;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        reason: &RedLetterReason,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(reason.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<RedLetterReason, D::Error> {
        let code = String::deserialize(deserializer)?;
        RedLetterReason::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom("chyyDm must be one of 01, 02, 03, 04"))
    }
}

/// `hzqrxxztDm` as its two-digit code.
mod status_code {
    use fapiao_invoice::redletter::FormStatus;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(status: &FormStatus, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(status.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FormStatus, D::Error> {
        let code = String::deserialize(deserializer)?;
        FormStatus::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom("hzqrxxztDm must be a code from 01 to 13"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn seller() -> TaxpayerId {
        TaxpayerId::parse("91310000MA1FP00011").unwrap()
    }

    fn blue() -> InvoiceNumber {
        "26312000000001000001".parse().unwrap()
    }

    fn form(red: Option<InvoiceNumber>) -> RemoteForm {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap();
        RemoteForm {
            number: "26310000000000000042".into(),
            uuid: "0123456789abcdef0123456789abcdef".into(),
            seller: seller(),
            request_id: "REQ-1".into(),
            blue_number: blue(),
            reason: RedLetterReason::SalesAllowance,
            status: FormStatus::AwaitingBuyer,
            initiator: Initiator::Seller,
            lines: vec![
                RedLine {
                    blue_line: 1,
                    amount: Decimal::new(1000, 2),
                    tax: Decimal::new(130, 2),
                    quantity: None,
                },
                RedLine {
                    blue_line: 3,
                    amount: Decimal::new(500, 2),
                    tax: Decimal::new(30, 2),
                    quantity: Some(Decimal::new(25, 1)),
                },
            ],
            amount: Decimal::new(1500, 2),
            tax: Decimal::new(160, 2),
            created_at: at,
            expires_at: Some(at + chrono::Duration::hours(72)),
            status_changed_at: at,
            red_number: red,
        }
    }

    #[test]
    fn a_form_travels_in_platform_fields_and_reads_back_the_same() {
        let form = form(None);
        let wire = serde_json::to_value(FormInfo::from(&form)).unwrap();
        assert_eq!(wire["hzqrxxdbh"], "26310000000000000042");
        assert_eq!(wire["xsfnsrsbh"], "91310000MA1FP00011");
        assert_eq!(wire["chyyDm"], "04");
        assert_eq!(wire["hzqrxxztDm"], "02");
        assert_eq!(wire["lrfsf"], "0");
        assert_eq!(wire["hzcxje"], "15.00");
        assert_eq!(wire["hzcxse"], "1.60");
        assert_eq!(wire["ykjhzfpbz"], "N");
        assert!(wire.get("hzfphm").is_none());
        assert_eq!(wire["hzqrdmxList"][1]["lzmxxh"], 3);
        assert_eq!(wire["hzqrdmxList"][1]["je"], "5.00");
        assert_eq!(wire["hzqrdmxList"][1]["fpspsl"], "2.5");
        assert!(wire["hzqrdmxList"][0].get("fpspsl").is_none());
        let back: FormInfo = serde_json::from_value(wire).unwrap();
        assert_eq!(RemoteForm::from(back), form);
    }

    #[test]
    fn a_recorded_red_number_travels_with_its_flag() {
        let red: InvoiceNumber = "26312000000001000002".parse().unwrap();
        let form = RemoteForm {
            status: FormStatus::NoConfirmationNeeded,
            expires_at: None,
            initiator: Initiator::Buyer,
            request_id: String::new(),
            ..form(Some(red))
        };
        let wire = serde_json::to_value(FormInfo::from(&form)).unwrap();
        assert_eq!(wire["ykjhzfpbz"], "Y");
        assert_eq!(wire["hzfphm"], "26312000000001000002");
        assert_eq!(wire["lrfsf"], "1");
        assert!(wire.get("qrjzsj").is_none());
        let back: FormInfo = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(RemoteForm::from(back), form);
        // A number without the flag is not a recorded red invoice.
        let mut unflagged = wire;
        unflagged["ykjhzfpbz"] = json!("N");
        let back: FormInfo = serde_json::from_value(unflagged).unwrap();
        assert_eq!(RemoteForm::from(back).red_number, None);
    }

    #[test]
    fn requests_round_trip_and_refuse_unknown_codes() {
        let request = FileFormRequest {
            xsfnsrsbh: "91310000MA1FP00011".into(),
            ywlsh: "REQ-1".into(),
            lzfphm: blue(),
            chyy_dm: RedLetterReason::IssuedInError,
            hzqrdmx_list: form(None).lines.iter().map(FormLineItem::from).collect(),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert!(text.contains(r#""chyyDm":"01""#), "{text}");
        assert_eq!(
            serde_json::from_str::<FileFormRequest>(&text).unwrap(),
            request
        );
        let bad = text.replace(r#""chyyDm":"01""#, r#""chyyDm":"05""#);
        assert!(serde_json::from_str::<FileFormRequest>(&bad).is_err());

        for (answer, code) in [
            (FormAnswer::Agree, "Y"),
            (FormAnswer::Disagree, "N"),
            (FormAnswer::Withdraw, "C"),
        ] {
            let request = AnswerFormRequest {
                xsfnsrsbh: "91310000MA1FP00011".into(),
                hzqrxxdbh: "26310000000000000042".into(),
                qrlx: answer.into(),
            };
            let wire = serde_json::to_value(&request).unwrap();
            assert_eq!(wire["qrlx"], code);
            let back: AnswerFormRequest = serde_json::from_value(wire).unwrap();
            assert_eq!(FormAnswer::from(back.qrlx), answer);
        }
        assert!(
            serde_json::from_value::<AnswerFormRequest>(json!({
                "xsfnsrsbh": "91310000MA1FP00011", "hzqrxxdbh": "X", "qrlx": "Q"
            }))
            .is_err()
        );

        let list = ListFormsRequest {
            xsfnsrsbh: "91310000MA1FP00011".into(),
            qssj: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            ym: 2,
            mysl: 50,
        };
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(
            serde_json::from_str::<ListFormsRequest>(&text).unwrap(),
            list
        );
        let reply = ListFormsReply {
            hzqrxx_list: vec![FormInfo::from(&form(None))],
            xyym: Some(3),
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert!(text.contains(r#""hzqrxxList":["#), "{text}");
        assert_eq!(
            serde_json::from_str::<ListFormsReply>(&text).unwrap(),
            reply
        );
        let last: ListFormsReply = serde_json::from_str(r#"{"hzqrxxList":[]}"#).unwrap();
        assert_eq!(last.xyym, None);
    }

    #[test]
    fn every_status_code_reads_back() {
        for code in 1..=13 {
            let code = format!("{code:02}");
            let status = FormStatus::from_code(&code).unwrap();
            let mut wire = serde_json::to_value(FormInfo::from(&form(None))).unwrap();
            wire["hzqrxxztDm"] = json!(code);
            let back: FormInfo = serde_json::from_value(wire).unwrap();
            assert_eq!(back.hzqrxxzt_dm, status);
        }
        let mut wire = serde_json::to_value(FormInfo::from(&form(None))).unwrap();
        wire["hzqrxxztDm"] = json!("14");
        assert!(serde_json::from_value::<FormInfo>(wire).is_err());
        assert_eq!(
            RedLetterReason::from_code("03"),
            Some(RedLetterReason::ServiceTerminated)
        );
        assert_eq!(RedLetterReason::from_code("3"), None);
    }
}
