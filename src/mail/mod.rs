//! Invitations by email: personal one-time links, an outbox sent by a worker with retries,
//! reminders, opting out, and the erasure of addresses after the campaign. Anonymous by
//! construction: an invitation records only that its link was used, never which response it gave.

pub mod message;
pub mod worker;

use std::collections::HashMap;

use base64::Engine;
use chrono::{Duration, Utc};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use validator::ValidateEmail;

use crate::auth::Principal;
use crate::campaign::context::CampaignContext;
use crate::db::schema::{campaigns, invitations, outbox};
use crate::db::{DbConnection, DbError, write_transaction};

/// Status of an invitation.
pub mod status {
    /// Waiting in the outbox.
    pub const QUEUED: &str = "queued";
    /// Delivered to the mail server.
    pub const SENT: &str = "sent";
    /// The mail server refused it for good.
    pub const FAILED: &str = "failed";
}

/// One invitation to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRow {
    /// Address to send the link to.
    #[schema(min_length = 3)]
    pub email: String,
    /// Agency code whose service the person used.
    #[schema(min_length = 1)]
    pub agency: String,
    /// `vi` (default) or `en`.
    #[serde(default)]
    pub language: Option<String>,
    /// Dossier identifier, for a per-dossier rating.
    #[serde(default)]
    pub dossier: Option<String>,
}

/// A row refused, with where it was.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowProblem {
    /// `line 3` (CSV) or `invitations[2]` (JSON).
    pub row: String,
    /// Column at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What an invitation request did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct InvitationReport {
    /// Invitations created and queued for sending.
    pub queued: usize,
    /// Addresses already invited in this campaign (or twice in the request): invited once.
    pub duplicates: usize,
    /// Rows refused, by line.
    pub refused: Vec<RowProblem>,
}

/// Reads invitation rows from CSV with the columns `email,agency[,language][,dossier]`.
pub fn parse_csv(text: &str) -> Result<Vec<(String, InvitationRow)>, Vec<RowProblem>> {
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_ascii_lowercase()).collect(),
        Err(e) => {
            return Err(vec![RowProblem {
                row: "line 1".to_owned(),
                field: "header".to_owned(),
                message: e.to_string(),
            }]);
        }
    };
    let at = |name: &str| header.iter().position(|h| h == name);
    let (Some(email), Some(agency)) = (at("email"), at("agency")) else {
        return Err(vec![RowProblem {
            row: "line 1".to_owned(),
            field: "header".to_owned(),
            message: "the header needs the columns email and agency (language and dossier are optional)".to_owned(),
        }]);
    };
    let (language, dossier) = (at("language"), at("dossier"));
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = format!("line {}", index + 2);
        match record {
            Ok(record) => {
                let cell =
                    |i: Option<usize>| i.and_then(|i| record.get(i)).map(str::to_owned).filter(|v| !v.is_empty());
                rows.push((
                    line,
                    InvitationRow {
                        email: cell(Some(email)).unwrap_or_default(),
                        agency: cell(Some(agency)).unwrap_or_default(),
                        language: cell(language),
                        dossier: cell(dossier),
                    },
                ));
            }
            Err(e) => problems.push(RowProblem { row: line, field: "row".to_owned(), message: e.to_string() }),
        }
    }
    if problems.is_empty() { Ok(rows) } else { Err(problems) }
}

fn keyed(secret: &[u8], domain: &str, parts: &[&str]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return Vec::new() };
    mac.update(domain.as_bytes());
    for part in parts {
        mac.update(&[0]);
        mac.update(part.as_bytes());
    }
    mac.finalize().into_bytes().to_vec()
}

/// The one-time token of an invitation: derived from its id with the server secret, so that it is
/// never stored (the outbox recomputes it to write the mail).
pub fn token_of(secret: &[u8], invitation_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(keyed(secret, "invitation", &[invitation_id]))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn email_hash(secret: &[u8], campaign: &str, email: &str) -> String {
    hex::encode(keyed(secret, "email", &[campaign, &email.to_lowercase()]))
}

/// Validates and stores invitations, queueing one mail each, all in one transaction. Rows at
/// fault are reported and skipped; the others are queued.
pub fn create(
    conn: &mut DbConnection,
    context: &CampaignContext,
    rows: &[(String, InvitationRow)],
    principal: &Principal,
    secret: &[u8],
) -> Result<InvitationReport, DbError> {
    let definition = &context.definition;
    let campaign = &context.campaign.id;
    let mut report = InvitationReport::default();
    let mut accepted = Vec::new();
    for (row, invitation) in rows {
        let problem = |field: &str, message: String| RowProblem { row: row.clone(), field: field.to_owned(), message };
        let email = invitation.email.trim();
        let mut faults = Vec::new();
        if !email.validate_email() {
            faults.push(problem("email", format!("`{email}` is not an email address")));
        }
        match context.members.get(invitation.agency.trim()) {
            None => {
                faults.push(problem("agency", format!("`{}` is not an agency of this campaign", invitation.agency)))
            }
            Some(member) => {
                let allowed =
                    principal.scope.is_empty() || member.path.iter().any(|a| principal.scope.iter().any(|s| s.0 == *a));
                if !allowed {
                    faults.push(problem("agency", format!("`{}` is outside this key's agencies", invitation.agency)));
                }
            }
        }
        let language =
            invitation.language.clone().unwrap_or_else(|| definition.languages.first().cloned().unwrap_or_default());
        if !definition.languages.contains(&language) {
            faults.push(problem("language", format!("must be one of {}", definition.languages.join(", "))));
        }
        if invitation.dossier.as_ref().is_some_and(|d| d.chars().count() > 128) {
            faults.push(problem("dossier", "at most 128 characters".to_owned()));
        }
        if faults.is_empty() {
            accepted.push((
                email.to_owned(),
                invitation.agency.trim().to_owned(),
                language,
                invitation.dossier.clone(),
            ));
        } else {
            report.refused.extend(faults);
        }
    }
    let now = Utc::now().naive_utc();
    write_transaction(conn, |conn| {
        for (email, agency, language, dossier) in &accepted {
            let Some(member) = context.members.get(agency) else { continue };
            let id = ulid::Ulid::new().to_string();
            let new = NewInvitation {
                id: &id,
                campaign_id: campaign,
                agency_id: member.agency_id,
                email: Some(email),
                email_hash: email_hash(secret, campaign, email),
                language,
                dossier: dossier.as_deref(),
                token_hash: token_hash(&token_of(secret, &id)),
                status: status::QUEUED,
                used: false,
                opted_out: false,
                reminders_sent: 0,
                created_at: now,
                purged: false,
            };
            // `ON CONFLICT DO NOTHING` needs the concrete backend: the same address twice in a
            // campaign is invited once.
            let inserted = match conn {
                DbConnection::Postgres(pg) => {
                    diesel::insert_into(invitations::table).values(&new).on_conflict_do_nothing().execute(pg)?
                }
                DbConnection::Sqlite(sqlite) => {
                    diesel::insert_into(invitations::table).values(&new).on_conflict_do_nothing().execute(sqlite)?
                }
            };
            if inserted == 0 {
                report.duplicates += 1;
                continue;
            }
            queue(conn, &id, "invitation")?;
            report.queued += 1;
        }
        Ok::<_, DbError>(())
    })?;
    Ok(report)
}

#[derive(Insertable)]
#[diesel(table_name = invitations)]
struct NewInvitation<'a> {
    id: &'a str,
    campaign_id: &'a str,
    agency_id: i64,
    email: Option<&'a str>,
    email_hash: String,
    language: &'a str,
    dossier: Option<&'a str>,
    token_hash: String,
    status: &'a str,
    used: bool,
    opted_out: bool,
    reminders_sent: i32,
    created_at: chrono::NaiveDateTime,
    purged: bool,
}

/// Puts a message for an invitation in the outbox.
pub fn queue(conn: &mut DbConnection, invitation: &str, kind: &str) -> Result<(), DbError> {
    let now = Utc::now().naive_utc();
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(ulid::Ulid::new().to_string()),
            outbox::invitation_id.eq(invitation),
            outbox::kind.eq(kind),
            outbox::status.eq(worker::PENDING),
            outbox::next_attempt_at.eq(now),
            outbox::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// An invitation found from its link.
#[derive(Debug, Clone)]
pub struct LinkedInvitation {
    /// Invitation id.
    pub id: String,
    /// Campaign id.
    pub campaign: String,
    /// Agency id.
    pub agency_id: i64,
    /// Language of the mail.
    pub language: String,
    /// Dossier, for a per-dossier rating.
    pub dossier: Option<String>,
    /// Whether the link was already used.
    pub used: bool,
}

/// The invitation a token belongs to.
pub fn find_by_token(conn: &mut DbConnection, token: &str) -> Result<Option<LinkedInvitation>, DbError> {
    if token.is_empty() || token.len() > 64 {
        return Ok(None);
    }
    let row: Option<(String, String, i64, String, Option<String>, bool)> = invitations::table
        .filter(invitations::token_hash.eq(token_hash(token)))
        .select((
            invitations::id,
            invitations::campaign_id,
            invitations::agency_id,
            invitations::language,
            invitations::dossier,
            invitations::used,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(id, campaign, agency_id, language, dossier, used)| LinkedInvitation {
        id,
        campaign,
        agency_id,
        language,
        dossier,
        used,
    }))
}

/// Opts the invitation of a token out of every further mail (pending ones are cancelled at once).
/// Returns whether the token was known.
pub fn opt_out(conn: &mut DbConnection, token: &str) -> Result<bool, DbError> {
    write_transaction(conn, |conn| {
        let Some(id) = invitations::table
            .filter(invitations::token_hash.eq(token_hash(token)))
            .select(invitations::id)
            .first::<String>(conn)
            .optional()?
        else {
            return Ok(false);
        };
        diesel::update(invitations::table.find(&id)).set(invitations::opted_out.eq(true)).execute(conn)?;
        diesel::update(outbox::table.filter(outbox::invitation_id.eq(&id)).filter(outbox::status.eq(worker::PENDING)))
            .set(outbox::status.eq(worker::CANCELLED))
            .execute(conn)?;
        Ok(true)
    })
}

/// Counts of a campaign's invitations: no addresses.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct InvitationSummary {
    /// Invitations created.
    pub invited: i64,
    /// Waiting to be sent.
    pub queued: i64,
    /// Delivered to the mail server.
    pub sent: i64,
    /// Refused for good by the mail server.
    pub failed: i64,
    /// Opted out of further mail.
    pub opted_out: i64,
    /// Links used to answer.
    pub used: i64,
    /// Reminders sent.
    pub reminders_sent: i64,
    /// `used / sent`, as a percentage (`null` before anything is sent).
    pub response_rate: Option<f64>,
    /// Messages waiting in the outbox.
    pub outbox_pending: i64,
}

/// The summary of a campaign's invitations to the agencies `counted` accepts (a key limited to
/// some agencies counts theirs alone).
pub fn summary(
    conn: &mut DbConnection,
    campaign: &str,
    counted: impl Fn(i64) -> bool,
) -> Result<InvitationSummary, DbError> {
    let rows: Vec<(i64, String, bool, bool, i32)> = invitations::table
        .filter(invitations::campaign_id.eq(campaign))
        .select((
            invitations::agency_id,
            invitations::status,
            invitations::used,
            invitations::opted_out,
            invitations::reminders_sent,
        ))
        .load(conn)?;
    let mut summary = InvitationSummary::default();
    for (_, state, used, opted_out, reminders) in rows.into_iter().filter(|row| counted(row.0)) {
        summary.invited += 1;
        match state.as_str() {
            status::QUEUED => summary.queued += 1,
            status::SENT => summary.sent += 1,
            status::FAILED => summary.failed += 1,
            _ => {}
        }
        summary.used += i64::from(used);
        summary.opted_out += i64::from(opted_out);
        summary.reminders_sent += i64::from(reminders);
    }
    summary.response_rate = (summary.sent > 0).then(|| 100.0 * summary.used as f64 / summary.sent as f64);
    // Counted per agency by the database: one row per agency, not per message.
    let pending: Vec<(i64, i64)> = outbox::table
        .inner_join(invitations::table)
        .filter(invitations::campaign_id.eq(campaign))
        .filter(outbox::status.eq(worker::PENDING))
        .group_by(invitations::agency_id)
        .select((invitations::agency_id, diesel::dsl::count_star()))
        .load(conn)?;
    summary.outbox_pending = pending.into_iter().filter(|(agency, _)| counted(*agency)).map(|(_, count)| count).sum();
    Ok(summary)
}

/// Erases the addresses and dossiers of campaigns closed more than `retention_days` ago, with
/// their outbox messages. Returns the invitations erased.
pub fn purge(conn: &mut DbConnection, retention_days: u32) -> Result<usize, DbError> {
    let cutoff = (Utc::now() - Duration::days(i64::from(retention_days))).naive_utc();
    write_transaction(conn, |conn| {
        let closed: Vec<String> =
            campaigns::table.filter(campaigns::closes_at.le(cutoff)).select(campaigns::id).load(conn)?;
        if closed.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = invitations::table
            .filter(invitations::campaign_id.eq_any(&closed))
            .filter(invitations::purged.eq(false))
            .select(invitations::id)
            .load(conn)?;
        for chunk in ids.chunks(500) {
            diesel::delete(outbox::table.filter(outbox::invitation_id.eq_any(chunk))).execute(conn)?;
            diesel::update(invitations::table.filter(invitations::id.eq_any(chunk)))
                .set((
                    invitations::email.eq(None::<String>),
                    invitations::dossier.eq(None::<String>),
                    invitations::email_hash.eq(invitations::id),
                    invitations::purged.eq(true),
                ))
                .execute(conn)?;
        }
        Ok(ids.len())
    })
}

/// Agency codes by id for the invitations a worker renders (from the campaign's tree).
pub fn agency_names(context: &CampaignContext, language: &str) -> HashMap<i64, String> {
    context.tree.nodes.values().map(|n| (n.id, n.name(language).to_owned())).collect()
}
