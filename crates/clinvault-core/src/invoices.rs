//! Invoices and payments. Money is integer minor units; tax is per line in basis points and
//! rounded half-up per line. Invoice numbers come from a counter in the same transaction as the
//! invoice, so they are sequential without gaps even when a creation fails or two are made at
//! once; a void invoice keeps its number.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::money::parse_minor;
use crate::permissions::Permission;
use crate::session::{Need, Session};

#[derive(Clone, Debug, Serialize)]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub tax_rate_bp: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Invoice {
    pub id: String,
    /// None while a draft.
    pub number: Option<i64>,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub status: String,
    pub issued_on: Option<String>,
    pub lines: Vec<InvoiceLine>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub paid_minor: i64,
    pub balance_minor: i64,
    pub void_reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RevenueRow {
    /// "practitioner", "appointment_type" or "total".
    pub group: String,
    pub key: String,
    pub invoices: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub paid_minor: i64,
}

/// A line typed in by hand (products, reports, fees not tied to an appointment).
pub struct ManualItem<'a> {
    pub description: &'a str,
    pub quantity: i64,
    /// Decimal text, e.g. "12.50".
    pub unit_price: &'a str,
    /// Percent, e.g. "10"; none means untaxed.
    pub tax_percent: Option<&'a str>,
}

pub const METHODS: &[&str] = &["cash", "card", "eftpos", "transfer", "insurance", "other"];

type Line = (String, i64, i64, i64);

fn validate_items(items: &[ManualItem<'_>]) -> Result<Vec<Line>> {
    if items.is_empty() || items.len() > 50 {
        return Err(Error::InvalidInput("items: between 1 and 50 lines".into()));
    }
    let mut lines = Vec::with_capacity(items.len());
    for (n, it) in items.iter().enumerate() {
        let line = n + 1;
        let description = it.description.trim();
        if description.is_empty() || description.chars().count() > 200 {
            return Err(Error::InvalidInput(format!(
                "items[{line}].description: 1–200 characters"
            )));
        }
        if !(1..=1000).contains(&it.quantity) {
            return Err(Error::InvalidInput(format!(
                "items[{line}].quantity: between 1 and 1000"
            )));
        }
        let price = parse_minor(&format!("items[{line}].unit_price"), it.unit_price)?;
        let bp = match it.tax_percent {
            Some(t) => parse_minor(&format!("items[{line}].tax"), t)?,
            None => 0,
        };
        if bp > 10_000 {
            return Err(Error::InvalidInput(format!(
                "items[{line}].tax: at most 100%"
            )));
        }
        lines.push((description.to_owned(), it.quantity, price, bp));
    }
    Ok(lines)
}

fn insert_lines(tx: &rusqlite::Connection, id: &str, lines: &[Line]) -> Result<()> {
    for (n, (d, q, p, bp)) in lines.iter().enumerate() {
        tx.execute(
            "INSERT INTO invoice_items (invoice_id, line, description, quantity, unit_price_minor, tax_rate_bp) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, n as i64 + 1, d, q, p, bp],
        )?;
    }
    Ok(())
}

/// Takes the next number from the counter in the caller's transaction, so numbers have no gaps.
fn assign_number(tx: &rusqlite::Connection, id: &str, issued_on: &str) -> Result<i64> {
    let number: i64 = tx.query_row(
        "UPDATE invoice_counter SET next = next + 1 WHERE id = 1 RETURNING next - 1",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE invoices SET number = ?1, status = 'issued', issued_on = ?2 WHERE id = ?3",
        params![number, issued_on, id],
    )?;
    Ok(number)
}

/// Tax for a line, rounded half-up to the minor unit. Entered amounts are capped
/// (`money::MAX_MINOR`), so this cannot overflow for them; a row written before the cap
/// saturates instead of panicking.
fn tax_for(net: i64, bp: i64) -> i64 {
    let tax = (i128::from(net) * i128::from(bp) + 5_000) / 10_000;
    i64::try_from(tax).unwrap_or(i64::MAX)
}

pub(crate) fn load(conn: &rusqlite::Connection, id: &str) -> Result<Invoice> {
    let head = conn
        .query_row(
            "SELECT id, number, patient_id, appointment_id, status, issued_on, void_reason FROM invoices WHERE id = ?1",
            [id],
            |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no invoice with id {id}")))?;
    let mut st = conn.prepare_cached(
        "SELECT description, quantity, unit_price_minor, tax_rate_bp FROM invoice_items WHERE invoice_id = ?1 ORDER BY line",
    )?;
    let lines = st
        .query_map([id], |r| {
            let (q, p, bp): (i64, i64, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
            Ok(InvoiceLine {
                description: r.get(0)?,
                quantity: q,
                unit_price_minor: p,
                tax_rate_bp: bp,
                net_minor: q.saturating_mul(p),
                tax_minor: tax_for(q.saturating_mul(p), bp),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let paid: i64 = conn.query_row(
        "SELECT coalesce(sum(amount_minor), 0) FROM payments WHERE invoice_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let net = lines
        .iter()
        .fold(0i64, |a, l| a.saturating_add(l.net_minor));
    let tax = lines
        .iter()
        .fold(0i64, |a, l| a.saturating_add(l.tax_minor));
    let status: String = head.4;
    let due = if status == "issued" {
        net.saturating_add(tax)
    } else {
        0
    };
    Ok(Invoice {
        id: head.0,
        number: head.1,
        patient_id: head.2,
        appointment_id: head.3,
        status,
        issued_on: head.5,
        lines,
        net_minor: net,
        tax_minor: tax,
        total_minor: net.saturating_add(tax),
        paid_minor: paid,
        balance_minor: due.saturating_sub(paid),
        void_reason: head.6,
    })
}

fn local_date(s: &Session, text: Option<&str>, field: &str) -> Result<String> {
    match text {
        Some(t) => t
            .trim()
            .parse::<jiff::civil::Date>()
            .map(|d| d.to_string())
            .map_err(|_| {
                Error::InvalidInput(format!("{field}: {t:?} is not a date (use YYYY-MM-DD)"))
            }),
        None => {
            let tz = jiff::tz::TimeZone::get(&s.policy().clinic_timezone)
                .unwrap_or(jiff::tz::TimeZone::UTC);
            Ok(s.clock().now().to_zoned(tz).date().to_string())
        }
    }
}

impl Session {
    /// Issues an invoice for an appointment at its type's price and tax rate.
    pub fn invoice_appointment(&mut self, appointment_id: &str) -> Result<Invoice> {
        let issued_on = local_date(self, None, "date")?;
        let now = rfc3339(self.clock().now());
        let id = uuid::Uuid::new_v4().to_string();
        let event = Event::new("invoice.create")
            .target("invoice", &id)
            .detail("appointment", appointment_id);
        self.gate(Need::Permission(Permission::InvoicesWrite), event, |tx, ev| {
            let appt: Option<(String, String, String, String, i64, i64, String)> = tx
                .query_row(
                    "SELECT a.patient_id, a.practitioner_id, t.id, t.name, t.price_minor, t.tax_rate_bp, a.status
                     FROM appointments a JOIN appointment_types t ON t.id = a.type_id WHERE a.id = ?1",
                    [appointment_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                )
                .optional()?;
            let (patient, practitioner, type_id, type_name, price, bp, status) =
                appt.ok_or_else(|| Error::NotFound(format!("no appointment with id {appointment_id}")))?;
            ev.about_patient(&patient);
            if status == "cancelled" {
                return Err(Error::Conflict("the appointment was cancelled".into()));
            }
            let already: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM invoices WHERE appointment_id = ?1 AND status = 'issued')",
                [appointment_id],
                |r| r.get(0),
            )?;
            if already {
                return Err(Error::Conflict("this appointment is already invoiced".into()));
            }
            tx.execute(
                "INSERT INTO invoices (id, patient_id, appointment_id, practitioner_id, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'draft', ?5)",
                params![id, patient, appointment_id, practitioner, now],
            )?;
            tx.execute(
                "INSERT INTO invoice_items (invoice_id, line, description, quantity, unit_price_minor, tax_rate_bp, type_id)
                 VALUES (?1, 1, ?2, 1, ?3, ?4, ?5)",
                params![id, type_name, price, bp, type_id],
            )?;
            let number = assign_number(tx, &id, &issued_on)?;
            *ev = ev.clone().detail("number", number);
            load(tx, &id)
        })
    }

    /// Issues an invoice of manual items for a patient.
    pub fn create_invoice(
        &mut self,
        patient_id: &str,
        items: &[ManualItem<'_>],
    ) -> Result<Invoice> {
        let id = self.new_manual_invoice(patient_id, items, true)?;
        self.show_invoice(&id)
    }

    /// A draft invoice of manual items: no number yet, editable until issued.
    pub fn create_draft_invoice(
        &mut self,
        patient_id: &str,
        items: &[ManualItem<'_>],
    ) -> Result<Invoice> {
        let id = self.new_manual_invoice(patient_id, items, false)?;
        self.show_invoice(&id)
    }

    fn new_manual_invoice(
        &mut self,
        patient_id: &str,
        items: &[ManualItem<'_>],
        issue: bool,
    ) -> Result<String> {
        let lines = validate_items(items)?;
        let issued_on = local_date(self, None, "date")?;
        let now = rfc3339(self.clock().now());
        let id = uuid::Uuid::new_v4().to_string();
        let event = Event::new("invoice.create")
            .target("invoice", &id)
            .detail("lines", lines.len())
            .detail("draft", !issue);
        self.gate(Need::Permission(Permission::InvoicesWrite), event, |tx, ev| {
            let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM patients WHERE id = ?1)", [patient_id], |r| r.get(0))?;
            if !exists {
                return Err(Error::NotFound(format!("no patient with id {patient_id}")));
            }
            ev.about_patient(patient_id);
            tx.execute(
                "INSERT INTO invoices (id, patient_id, status, created_at) VALUES (?1, ?2, 'draft', ?3)",
                params![id, patient_id, now],
            )?;
            insert_lines(tx, &id, &lines)?;
            if issue {
                *ev = ev.clone().detail("number", assign_number(tx, &id, &issued_on)?);
            }
            Ok(id.clone())
        })
    }

    /// Replaces a draft's lines.
    pub fn update_draft_invoice(&mut self, id: &str, items: &[ManualItem<'_>]) -> Result<Invoice> {
        let lines = validate_items(items)?;
        let event = Event::new("invoice.update")
            .target("invoice", id)
            .detail("lines", lines.len());
        self.gate(
            Need::Permission(Permission::InvoicesWrite),
            event,
            |tx, ev| {
                let inv = load(tx, id)?;
                ev.about_patient(&inv.patient_id);
                if inv.status != "draft" {
                    return Err(Error::Conflict("only a draft invoice can be edited".into()));
                }
                tx.execute("DELETE FROM invoice_items WHERE invoice_id = ?1", [id])?;
                insert_lines(tx, id, &lines)?;
                load(tx, id)
            },
        )
    }

    /// Issues a draft: it gets the next number and today's date, and can then be paid.
    pub fn issue_invoice(&mut self, id: &str) -> Result<Invoice> {
        let issued_on = local_date(self, None, "date")?;
        let event = Event::new("invoice.issue").target("invoice", id);
        self.gate(
            Need::Permission(Permission::InvoicesWrite),
            event,
            |tx, ev| {
                let inv = load(tx, id)?;
                ev.about_patient(&inv.patient_id);
                if inv.status != "draft" {
                    return Err(Error::Conflict("the invoice is already issued".into()));
                }
                *ev = ev
                    .clone()
                    .detail("number", assign_number(tx, id, &issued_on)?);
                load(tx, id)
            },
        )
    }

    /// Records a payment (part or full); overpaying is refused.
    pub fn record_payment(
        &mut self,
        invoice_id: &str,
        amount: &str,
        method: &str,
        paid_on: Option<&str>,
    ) -> Result<Invoice> {
        let amount = parse_minor("amount", amount)?;
        if amount == 0 {
            return Err(Error::InvalidInput("amount: must be more than zero".into()));
        }
        let method = method.trim().to_ascii_lowercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(Error::InvalidInput(format!(
                "method: use one of {}",
                METHODS.join(", ")
            )));
        }
        let paid_on = local_date(self, paid_on, "date")?;
        let now = rfc3339(self.clock().now());
        let event = Event::new("invoice.payment")
            .target("invoice", invoice_id)
            .detail("amount_minor", amount)
            .detail("method", method.as_str());
        self.gate(Need::Permission(Permission::InvoicesWrite), event, |tx, ev| {
            let inv = load(tx, invoice_id)?;
            ev.about_patient(&inv.patient_id);
            if inv.status != "issued" {
                return Err(Error::Conflict(format!("the invoice is {}; only issued invoices are paid", inv.status)));
            }
            if amount > inv.balance_minor {
                return Err(Error::InvalidInput(format!(
                    "amount: more than the balance of {}",
                    crate::money::format_minor(inv.balance_minor)
                )));
            }
            tx.execute(
                "INSERT INTO payments (id, invoice_id, amount_minor, method, paid_on, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![uuid::Uuid::new_v4().to_string(), invoice_id, amount, method, paid_on, now],
            )?;
            load(tx, invoice_id)
        })
    }

    /// Voids an unpaid invoice; it keeps its number.
    pub fn void_invoice(&mut self, id: &str, reason: &str) -> Result<Invoice> {
        let reason = reason.trim().to_owned();
        if reason.is_empty() {
            return Err(Error::InvalidInput("reason: voiding needs a reason".into()));
        }
        let event = Event::new("invoice.void").target("invoice", id);
        self.gate(
            Need::Permission(Permission::InvoicesWrite),
            event,
            |tx, ev| {
                let inv = load(tx, id)?;
                ev.about_patient(&inv.patient_id);
                if inv.status == "void" {
                    return Err(Error::Conflict("the invoice is already void".into()));
                }
                if inv.paid_minor > 0 {
                    return Err(Error::Conflict(
                        "the invoice has payments; refund them before voiding".into(),
                    ));
                }
                tx.execute(
                    "UPDATE invoices SET status = 'void', void_reason = ?1 WHERE id = ?2",
                    params![reason, id],
                )?;
                load(tx, id)
            },
        )
    }

    pub fn show_invoice(&mut self, id: &str) -> Result<Invoice> {
        let event = Event::new("invoice.view").target("invoice", id);
        self.gate(
            Need::Permission(Permission::InvoicesRead),
            event,
            |tx, ev| {
                let inv = load(tx, id)?;
                ev.about_patient(&inv.patient_id);
                Ok(inv)
            },
        )
    }

    /// What a patient owes across issued invoices.
    pub fn patient_balance(&mut self, patient_id: &str) -> Result<i64> {
        let event = Event::new("invoice.balance").target("patient", patient_id);
        self.gate(
            Need::Permission(Permission::InvoicesRead),
            event,
            |tx, _| {
                let ids: Vec<String> = tx
                    .prepare("SELECT id FROM invoices WHERE patient_id = ?1 AND status = 'issued'")?
                    .query_map([patient_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                ids.iter()
                    .map(|id| load(tx, id).map(|i| i.balance_minor))
                    .sum()
            },
        )
    }

    /// Issued invoices with a balance, oldest first.
    pub fn outstanding_invoices(&mut self) -> Result<Vec<Invoice>> {
        let event = Event::new("invoice.outstanding");
        self.gate(
            Need::Permission(Permission::InvoicesRead),
            event,
            |tx, ev| {
                let ids: Vec<String> = tx
                    .prepare("SELECT id FROM invoices WHERE status = 'issued' ORDER BY number")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut out = Vec::new();
                for id in ids {
                    let inv = load(tx, &id)?;
                    if inv.balance_minor > 0 {
                        out.push(inv);
                    }
                }
                *ev = ev.clone().detail("count", out.len());
                Ok(out)
            },
        )
    }

    /// Revenue of issued invoices dated within [from, to], by practitioner and by appointment
    /// type, with a total row. Computed in SQL, in integers.
    pub fn revenue_report(&mut self, from: &str, to: &str) -> Result<Vec<RevenueRow>> {
        let from = local_date(self, Some(from), "from")?;
        let to = local_date(self, Some(to), "to")?;
        if to < from {
            return Err(Error::InvalidInput("to: earlier than from".into()));
        }
        let event = Event::new("report.revenue")
            .detail("from", from.as_str())
            .detail("to", to.as_str());
        self.gate(Need::Permission(Permission::FinancialReports), event, |tx, _| {
            // Each invoice once (its net, tax and payments), then grouped three ways.
            let sql = |group_expr: &str, group: &str| {
                format!(
                    "WITH inv AS (
                        SELECT i.id, i.practitioner_id, min(it.type_id) AS type_id,
                               sum(it.quantity * it.unit_price_minor) AS net,
                               sum((it.quantity * it.unit_price_minor * it.tax_rate_bp + 5000) / 10000) AS tax
                        FROM invoices i JOIN invoice_items it ON it.invoice_id = i.id
                        WHERE i.status = 'issued' AND i.issued_on BETWEEN ?1 AND ?2
                        GROUP BY i.id),
                     paid AS (
                        SELECT p.invoice_id, sum(p.amount_minor) AS amount FROM payments p
                        JOIN inv ON inv.id = p.invoice_id GROUP BY p.invoice_id)
                     SELECT '{group}', {group_expr} AS key, count(*), sum(inv.net), sum(inv.tax),
                            sum(inv.net + inv.tax), coalesce(sum(paid.amount), 0)
                     FROM inv
                     LEFT JOIN paid ON paid.invoice_id = inv.id
                     LEFT JOIN practitioners pr ON pr.id = inv.practitioner_id
                     LEFT JOIN users u ON u.id = pr.user_id
                     LEFT JOIN appointment_types t ON t.id = inv.type_id
                     GROUP BY key ORDER BY key"
                )
            };
            let mut out = Vec::new();
            for (expr, group) in [("coalesce(u.username, '-')", "practitioner"), ("coalesce(t.name, 'other')", "appointment_type"), ("'all'", "total")] {
                let mut st = tx.prepare(&sql(expr, group))?;
                let rows = st
                    .query_map(params![from, to], |r| {
                        Ok(RevenueRow { group: r.get(0)?, key: r.get(1)?, invoices: r.get(2)?, net_minor: r.get(3)?, tax_minor: r.get(4)?, total_minor: r.get(5)?, paid_minor: r.get(6)? })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.extend(rows);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tax_rounds_half_up_per_line() {
        assert_eq!(super::tax_for(9_500, 1_000), 950);
        assert_eq!(super::tax_for(5, 1_000), 1); // 0.5 cent → 1
        assert_eq!(super::tax_for(4, 1_000), 0);
        assert_eq!(super::tax_for(12_345, 0), 0);
    }
}
