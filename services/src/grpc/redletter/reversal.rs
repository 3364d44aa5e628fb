//! What an invoice on the wire says about its reversal: a blue invoice's balance and what each of
//! its lines lost to red invoices, a red invoice's blue line numbers.

use super::super::status;
use crate::store::{Scope, Store, StoredForm, StoredInvoice};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::money::format_money;
use fapiao_invoice::redletter::{FormStatus, RedLine};
use fapiao_proto::v1;
use rust_decimal::Decimal;
use tonic::Status;

/// What an invoice on the wire says about reversal: a blue invoice's balance and what each of its
/// lines lost to red invoices; a red invoice's blue line numbers, from its form.
pub async fn annotate(
    store: &Store,
    scope: &Scope,
    invoice: &StoredInvoice,
    wire: &mut v1::Invoice,
) -> Result<(), Status> {
    let failed = |e: anyhow::Error| status::internal("reading red-letter forms", &e);
    match &invoice.content.red {
        Some(red) => {
            if let Some(form) = store
                .form_by_number(scope, &red.form_number)
                .await
                .map_err(failed)?
            {
                number_red_lines(wire, &form);
            }
        }
        None => {
            let forms = store
                .blue_forms(scope, &invoice.number)
                .await
                .map_err(failed)?;
            wire.reversal = Some(reversal(&invoice.content, &forms));
            let issued: Vec<&RedLine> = forms
                .iter()
                .filter(|f| f.red_number.is_some())
                .flat_map(|f| f.lines.iter())
                .collect();
            for line in &mut wire.lines {
                let of_line = issued.iter().filter(|r| r.blue_line == line.line_number);
                let (mut amount, mut tax, mut quantity) = (Decimal::ZERO, Decimal::ZERO, None);
                for red in of_line {
                    amount += red.amount;
                    tax += red.tax;
                    if let Some(q) = red.quantity {
                        quantity = Some(quantity.unwrap_or(Decimal::ZERO) + q);
                    }
                }
                line.reversed_amount = format_money(amount);
                line.reversed_tax = format_money(tax);
                line.reversed_quantity = if line.quantity.is_empty() {
                    String::new()
                } else {
                    quantity.unwrap_or(Decimal::ZERO).normalize().to_string()
                };
            }
        }
    }
    Ok(())
}

/// A red invoice's lines reverse the form's lines in order.
pub(super) fn number_red_lines(red: &mut v1::Invoice, form: &StoredForm) {
    for (line, reversed) in red.lines.iter_mut().zip(&form.lines) {
        line.blue_line_number = reversed.blue_line;
    }
}

/// How much of a blue invoice its red invoices reversed, and what its forms leave.
pub fn reversal(blue: &InvoiceContent, forms: &[StoredForm]) -> v1::ReversalBalance {
    let issued: Vec<&StoredForm> = forms.iter().filter(|f| f.red_number.is_some()).collect();
    let reserving = forms.iter().filter(|f| f.phase.reserves());
    let (mut held_amount, mut held_tax) = (Decimal::ZERO, Decimal::ZERO);
    for form in reserving {
        held_amount += form.amount;
        held_tax += form.tax;
    }
    v1::ReversalBalance {
        reversed_amount: format_money(issued.iter().map(|f| f.amount).sum()),
        reversed_tax: format_money(issued.iter().map(|f| f.tax).sum()),
        remaining_amount: format_money(blue.totals.amount - held_amount),
        remaining_tax: format_money(blue.totals.tax - held_tax),
        red_invoice_numbers: issued
            .iter()
            .filter_map(|f| f.red_number.map(|n| n.to_string()))
            .collect(),
        pending_red_letter_form_numbers: forms
            .iter()
            .filter(|f| f.phase.status().is_some_and(FormStatus::is_pending))
            .filter_map(|f| f.number.clone())
            .collect(),
    }
}
