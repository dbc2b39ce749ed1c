//! An invoice as a PDF (A4, Helvetica), written with `pdf-writer` through the same text-flow
//! layout as the patient summary (`summary_pdf`): the clinic's name, the invoice number and
//! dates, the patient, the lines with tax, totals, payments, balance and status. A void invoice
//! carries a large "VOID" across every page and its reason. The bytes are returned to the
//! caller; the core never writes them to disk (the desktop app saves them only at a path the user
//! chooses, the CLI only at `--out`).

use crate::audit::Event;
use crate::error::Result;
use crate::invoices::Invoice;
use crate::money::format_minor;
use crate::patients::Patient;
use crate::permissions::Permission;
use crate::session::{Need, Session};
use crate::summary_pdf::{Lines, Style};

/// A payment as printed on the invoice.
struct Paid {
    amount_minor: i64,
    method: String,
    paid_on: String,
}

fn patient_name(p: &Patient) -> String {
    let f = &p.fields;
    let name = [&f.title, &f.first_name, &f.last_name]
        .iter()
        .filter_map(|v| v.as_deref())
        .filter(|v| !v.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match (name.is_empty(), &p.pseudonym) {
        (false, _) => name,
        (true, Some(pseudonym)) => pseudonym.clone(),
        (true, None) => "(no name)".into(),
    }
}

/// "10%" or "12.5%" from basis points.
fn percent(bp: i64) -> String {
    let whole = bp / 100;
    match bp % 100 {
        0 => format!("{whole}%"),
        r if r % 10 == 0 => format!("{whole}.{}%", r / 10),
        r => format!("{whole}.{r:02}%"),
    }
}

fn render(
    clinic: &str,
    currency: &str,
    printed_on: &str,
    invoice: &Invoice,
    patient: &Patient,
    payments: &[Paid],
) -> Vec<u8> {
    let money = |minor: i64| format!("{currency} {}", format_minor(minor));
    let mut out = Lines::default();
    out.push(Style::Title, clinic);
    let heading = match (invoice.status.as_str(), invoice.number) {
        ("draft", _) | (_, None) => "Draft invoice (not issued)".to_owned(),
        ("void", Some(n)) => format!("Invoice {n} (VOID)"),
        (_, Some(n)) => format!("Invoice {n}"),
    };
    out.push(Style::Heading, &heading);
    if invoice.status == "void" {
        out.watermark("VOID");
    }
    out.gap();
    let status = match invoice.status.as_str() {
        "issued" if invoice.balance_minor == 0 => "Paid".to_owned(),
        "issued" => "Issued, awaiting payment".to_owned(),
        "void" => "VOID".to_owned(),
        "draft" => "Draft".to_owned(),
        other => other.to_owned(),
    };
    let number = invoice
        .number
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into());
    let issued = invoice.issued_on.clone().unwrap_or_else(|| "-".into());
    let patient_line = patient_name(patient);
    let address = patient.fields.address.clone().unwrap_or_default();
    let facts: [(&str, &str); 5] = [
        ("Invoice number", &number),
        ("Date issued", &issued),
        ("Status", &status),
        ("Patient", &patient_line),
        ("Address", &address),
    ];
    for (label, value) in facts {
        if !value.is_empty() {
            out.row(Style::Body, &[(0.0, 20, label), (110.0, 70, value)]);
        }
    }
    if let Some(reason) = &invoice.void_reason {
        out.push(Style::Body, &format!("Voided: {reason}"));
    }

    // Columns: description, quantity, unit price, tax rate, tax, amount (net + tax).
    const COLS: [(f32, usize); 6] = [
        (0.0, 36),
        (200.0, 6),
        (235.0, 16),
        (310.0, 8),
        (365.0, 14),
        (425.0, 16),
    ];
    let row = |out: &mut Lines, style: Style, cells: [&str; 6]| {
        let cells: Vec<(f32, usize, &str)> = COLS
            .iter()
            .zip(cells)
            .map(|((x, w), c)| (*x, *w, c))
            .collect();
        out.row(style, &cells);
    };
    out.gap();
    row(
        &mut out,
        Style::Bold,
        [
            "Description",
            "Qty",
            "Unit price",
            "Tax rate",
            "Tax",
            "Amount",
        ],
    );
    for l in &invoice.lines {
        row(
            &mut out,
            Style::Body,
            [
                &l.description,
                &l.quantity.to_string(),
                &money(l.unit_price_minor),
                &percent(l.tax_rate_bp),
                &money(l.tax_minor),
                &money(l.net_minor + l.tax_minor),
            ],
        );
    }
    out.gap();
    let total_rows = [
        ("Subtotal", money(invoice.net_minor)),
        ("Tax", money(invoice.tax_minor)),
        ("Total", money(invoice.total_minor)),
    ];
    for (label, value) in &total_rows {
        let style = if *label == "Total" {
            Style::Bold
        } else {
            Style::Body
        };
        out.row(style, &[(310.0, 20, label), (425.0, 16, value)]);
    }

    out.gap();
    out.push(Style::Bold, "Payments");
    if payments.is_empty() {
        out.push(Style::Body, "None.");
    }
    for p in payments {
        out.row(
            Style::Body,
            &[
                (0.0, 12, &p.paid_on),
                (110.0, 20, &p.method),
                (425.0, 16, &money(p.amount_minor)),
            ],
        );
    }
    out.gap();
    let balance = if invoice.status == "issued" {
        money(invoice.balance_minor)
    } else {
        "-".into()
    };
    out.row(
        Style::Bold,
        &[(310.0, 20, "Balance due"), (425.0, 16, &balance)],
    );
    out.gap();
    out.push(Style::Body, &format!("Printed on {printed_on}."));
    out.render()
}

impl Session {
    /// The invoice as a PDF, for printing or for a copy the user saves where they choose.
    /// Needs permission to read invoices; recorded as `invoice.export_pdf` (the invoice's id
    /// only: no names, lines or amounts in the trail).
    pub fn invoice_pdf(&mut self, id: &str) -> Result<Vec<u8>> {
        let clinic = self.policy().clinic_name.clone();
        let currency = self.policy().clinic_currency.clone();
        let printed_on = crate::patients::today(self).to_string();
        let event = Event::new("invoice.export_pdf").target("invoice", id);
        self.gate(
            Need::Permission(Permission::InvoicesRead),
            event,
            |tx, ev| {
                let invoice = crate::invoices::load(tx, id)?;
                ev.about_patient(&invoice.patient_id);
                let patient = crate::patients::load(tx, &invoice.patient_id)?;
                let mut st = tx.prepare_cached(
                    "SELECT amount_minor, method, paid_on FROM payments WHERE invoice_id = ?1
                     ORDER BY paid_on, created_at",
                )?;
                let payments = st
                    .query_map([id], |r| {
                        Ok(Paid {
                            amount_minor: r.get(0)?,
                            method: r.get(1)?,
                            paid_on: r.get(2)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(render(
                    &clinic,
                    &currency,
                    &printed_on,
                    &invoice,
                    &patient,
                    &payments,
                ))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tax_rates_print_without_floats() {
        assert_eq!(super::percent(1_000), "10%");
        assert_eq!(super::percent(1_250), "12.5%");
        assert_eq!(super::percent(705), "7.05%");
        assert_eq!(super::percent(0), "0%");
    }
}
