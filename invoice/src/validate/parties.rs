//! The parties of an invoice: seller, buyer, natural-person buyers and their identity documents.

use super::Validator;
use crate::model::{
    Buyer, BuyerDraft, ID_TYPE_RESIDENT_CARD, InvoiceKind, NATURAL_PERSON_ID_TYPES, Party,
    PersonalId, SellerDraft,
};
use crate::taxpayer::{ResidentIdNumber, TaxpayerId};
use crate::violation::{Code, Violations};

impl Validator<'_> {
    fn tax_id(&self, field: &str, role: &str, raw: &str, v: &mut Violations) -> Option<TaxpayerId> {
        match TaxpayerId::parse(raw) {
            Ok(id) => Some(id),
            Err(e) => {
                v.push_prefixed(field, role, e.code(), e.message_zh());
                None
            }
        }
    }

    pub(super) fn seller(&self, s: &SellerDraft, v: &mut Violations) -> Option<Party> {
        let tax_id = self.tax_id("seller_tax_id", "SELLER", &s.tax_id, v);
        let party = self.party("seller", "销售方", &s.name, s, v);
        // The name comes with the seller's profile, found by a valid tax id; with an invalid id
        // there is no profile, and the id's own violation says everything.
        if tax_id.is_some() && party.name.is_empty() {
            v.push(
                "seller.name",
                Code::SELLER_NAME_REQUIRED,
                "销售方名称不能为空",
            );
        }
        Some(Party {
            tax_id: Some(tax_id?),
            ..party
        })
    }

    /// The free-text fields shared by seller and buyer.
    fn party(
        &self,
        prefix: &str,
        label: &str,
        name: &str,
        s: &SellerDraft,
        v: &mut Violations,
    ) -> Party {
        let l = self.limits;
        let field = |f: &str| format!("{prefix}.{f}");
        Party {
            name: self.text(
                &field("name"),
                &format!("{label}名称"),
                name,
                l.party_name,
                v,
            ),
            tax_id: None,
            address: self.text(&field("address"), "地址", &s.address, l.address, v),
            phone: self.text(&field("phone"), "电话", &s.phone, l.phone, v),
            bank_name: self.text(
                &field("bank_name"),
                "开户银行",
                &s.bank_name,
                l.bank_name,
                v,
            ),
            bank_account: self.text(
                &field("bank_account"),
                "银行账号",
                &s.bank_account,
                l.bank_account,
                v,
            ),
        }
    }

    pub(super) fn buyer(
        &self,
        b: &BuyerDraft,
        kind: Option<InvoiceKind>,
        v: &mut Violations,
    ) -> Option<Buyer> {
        let special = kind == Some(InvoiceKind::Special);
        let as_party = SellerDraft {
            tax_id: String::new(),
            name: String::new(),
            address: b.address.clone(),
            phone: b.phone.clone(),
            bank_name: b.bank_name.clone(),
            bank_account: b.bank_account.clone(),
        };
        let mut party = self.party("buyer", "购买方", &b.name, &as_party, v);
        if party.name.is_empty() {
            v.push(
                "buyer.name",
                Code::BUYER_NAME_REQUIRED,
                "购买方名称不能为空",
            );
        }
        if special && b.natural_person {
            v.push(
                "buyer.natural_person",
                Code::BUYER_NATURAL_PERSON_ON_SPECIAL,
                "增值税专用发票不能开具给自然人",
            );
        }
        let mut ok = true;
        if b.tax_id.trim().is_empty() {
            if special {
                v.push(
                    "buyer.tax_id",
                    Code::BUYER_TAX_ID_REQUIRED,
                    "增值税专用发票必须填写购买方纳税人识别号",
                );
                ok = false;
            }
        } else {
            party.tax_id = self.tax_id("buyer.tax_id", "BUYER", &b.tax_id, v);
            ok &= party.tax_id.is_some();
        }
        let personal_id = self.personal_id(b, v, &mut ok);
        let email = self.text("buyer.email", "邮箱", &b.email, self.limits.email, v);
        if !email.is_empty() && !looks_like_email(&email) {
            v.push(
                "buyer.email",
                Code::BUYER_EMAIL_FORMAT,
                "购买方邮箱格式不正确",
            );
        }
        let mobile = self.text("buyer.mobile", "手机号", &b.mobile, self.limits.mobile, v);
        if !mobile.is_empty() && !looks_like_mobile(&mobile) {
            v.push(
                "buyer.mobile",
                Code::BUYER_MOBILE_FORMAT,
                "购买方手机号格式不正确",
            );
        }
        ok.then_some(Buyer {
            party,
            natural_person: b.natural_person,
            personal_id,
            email,
            mobile,
        })
    }

    fn personal_id(&self, b: &BuyerDraft, v: &mut Violations, ok: &mut bool) -> Option<PersonalId> {
        let id_type = b.id_type.trim();
        let number = b.id_number.trim();
        if id_type.is_empty() && number.is_empty() {
            return None;
        }
        if !b.natural_person {
            let field = if id_type.is_empty() {
                "buyer.id_number"
            } else {
                "buyer.id_type"
            };
            v.push(
                field,
                Code::BUYER_ID_NOT_NATURAL_PERSON,
                "非自然人购买方不填写证件信息",
            );
            *ok = false;
            return None;
        }
        if id_type.is_empty() {
            v.push(
                "buyer.id_type",
                Code::BUYER_ID_TYPE_REQUIRED,
                "填写证件号码时必须填写证件类型",
            );
            *ok = false;
            return None;
        }
        if !NATURAL_PERSON_ID_TYPES
            .iter()
            .any(|(code, _)| *code == id_type)
        {
            v.push(
                "buyer.id_type",
                Code::BUYER_ID_TYPE_UNKNOWN,
                format!("证件类型“{id_type}”不是有效的自然人证件类型代码"),
            );
            *ok = false;
            return None;
        }
        if number.is_empty() {
            v.push(
                "buyer.id_number",
                Code::BUYER_ID_NUMBER_REQUIRED,
                "证件号码不能为空",
            );
            *ok = false;
            return None;
        }
        let resident_id = if id_type == ID_TYPE_RESIDENT_CARD {
            match ResidentIdNumber::parse(number) {
                Ok(id) => Some(id),
                Err(e) => {
                    v.push_prefixed("buyer.id_number", "BUYER", e.code(), e.message_zh());
                    *ok = false;
                    return None;
                }
            }
        } else {
            self.check_len("buyer.id_number", "证件号码", number, 50, v);
            None
        };
        Some(PersonalId {
            id_type: id_type.to_owned(),
            number: resident_id
                .as_ref()
                .map_or_else(|| number.to_owned(), |r| r.as_str().to_owned()),
            resident_id,
        })
    }
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !domain.contains('@')
}

/// A mainland mobile number (11 digits starting with 1), optionally with `+86`, or an
/// international one written `+` and 8 to 15 digits.
fn looks_like_mobile(s: &str) -> bool {
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mainland = |t: &str| t.len() == 11 && t.starts_with('1') && digits(t);
    match s.strip_prefix('+') {
        Some(rest) => match rest.strip_prefix("86") {
            Some(local) if mainland(local) => true,
            _ => (8..=15).contains(&rest.len()) && digits(rest),
        },
        None => mainland(s),
    }
}
