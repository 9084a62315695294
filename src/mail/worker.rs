//! The outbox worker: claims due messages (a lease per message; `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL so that several workers share the work), sends them over SMTP with lettre, retries
//! transient failures with exponential backoff, marks permanent ones failed, and queues reminders.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::message::{MailFacts, render};
use super::{status, token_of};
use crate::campaign::context::CampaignCache;
use crate::db::schema::{campaigns, invitations, outbox};
use crate::db::{self, DbConnection, DbError, Pool, write_transaction};

/// Outbox message states.
pub const PENDING: &str = "pending";
/// Delivered.
pub const SENT: &str = "sent";
/// Given up.
pub const FAILED: &str = "failed";
/// Not to be sent any more (opted out, already answered, erased).
pub const CANCELLED: &str = "cancelled";

/// Attempts before a transiently failing message is given up.
pub const MAX_ATTEMPTS: i32 = 8;
/// How long a claimed message is reserved for the worker that claimed it.
const LEASE: i64 = 300;
/// Messages claimed at once.
const CLAIM: i64 = 20;

/// How the worker sends.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// lettre's SMTP URL (`smtp://host:port`, `smtps://user:pass@host`, `…?tls=required`).
    pub smtp_url: String,
    /// Sender address.
    pub from: Mailbox,
    /// Public base URL of the links.
    pub public_url: String,
    /// Secret the tokens are derived with.
    pub secret: Vec<u8>,
    /// First retry delay; doubled on every further attempt (capped at six hours).
    pub retry_base: StdDuration,
    /// Pause between polls when there is nothing to do.
    pub poll: StdDuration,
}

/// Why the worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The SMTP URL does not parse.
    #[error("SIPAS_SMTP_URL: {0}")]
    SmtpUrl(String),
    /// The sender address does not parse.
    #[error("SIPAS_MAIL_FROM: {0}")]
    From(String),
}

/// A message claimed for sending.
struct Claimed {
    id: String,
    kind: String,
    attempts: i32,
    invitation: String,
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered.
    Sent,
    /// Will be tried again.
    Retry,
    /// Given up.
    Failed,
    /// Not sent (opted out, already answered or erased).
    Cancelled,
}

/// Runs the worker until the process ends: reminders, then due messages, then a pause.
pub async fn run(pool: Pool, campaigns: Arc<CampaignCache>, config: MailConfig) -> Result<(), WorkerError> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
        .map_err(|e| WorkerError::SmtpUrl(e.to_string()))?
        .timeout(Some(StdDuration::from_secs(30)))
        .build();
    tracing::info!(smtp = %redact(&config.smtp_url), "mail worker started");
    loop {
        let reminders = db::run(&pool, schedule_reminders).await;
        if let Err(error) = reminders {
            tracing::warn!(error.cause = %error, "scheduling reminders failed");
        }
        match step(&pool, &campaigns, &transport, &config).await {
            Ok(0) => tokio::time::sleep(config.poll).await,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error.cause = %error, "mail worker step failed");
                tokio::time::sleep(config.poll).await;
            }
        }
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Claims due messages and sends them; returns how many were handled.
pub async fn step(
    pool: &Pool,
    campaigns: &Arc<CampaignCache>,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    config: &MailConfig,
) -> Result<usize, DbError> {
    let claimed = db::run(pool, claim).await?;
    let count = claimed.len();
    for message in claimed {
        let id = message.id.clone();
        let outcome = deliver(pool, campaigns, transport, config, message).await;
        match outcome {
            Ok(delivery) => tracing::debug!(outbox.id = %id, ?delivery, "outbox message handled"),
            Err(error) => tracing::warn!(outbox.id = %id, error.cause = %error, "outbox message left for later"),
        }
    }
    Ok(count)
}

fn claim(conn: &mut DbConnection) -> Result<Vec<Claimed>, DbError> {
    write_transaction(conn, |conn| {
        let now = Utc::now().naive_utc();
        let due = outbox::table
            .filter(outbox::status.eq(PENDING))
            .filter(outbox::next_attempt_at.le(now))
            .filter(outbox::claimed_until.is_null().or(outbox::claimed_until.lt(now)))
            .order(outbox::next_attempt_at)
            .limit(CLAIM)
            .select((outbox::id, outbox::kind, outbox::attempts, outbox::invitation_id));
        let rows: Vec<(String, String, i32, String)> = match conn {
            // Several workers: each skips the rows another has locked.
            DbConnection::Postgres(pg) => due.for_update().skip_locked().load(pg)?,
            // SQLite: the write transaction (BEGIN IMMEDIATE) already excludes every other writer.
            DbConnection::Sqlite(sqlite) => due.load(sqlite)?,
        };
        let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
            .set(outbox::claimed_until.eq(now + Duration::seconds(LEASE)))
            .execute(conn)?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, attempts, invitation)| Claimed { id, kind, attempts, invitation })
            .collect())
    })
}

type InvitationRow = (String, i64, Option<String>, String, bool, bool, bool);

async fn deliver(
    pool: &Pool,
    campaigns: &Arc<CampaignCache>,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    config: &MailConfig,
    message: Claimed,
) -> Result<Delivery, DbError> {
    let invitation_id = message.invitation.clone();
    let row: Option<InvitationRow> = db::run(pool, move |conn| {
        invitations::table
            .find(&invitation_id)
            .select((
                invitations::campaign_id,
                invitations::agency_id,
                invitations::email,
                invitations::language,
                invitations::used,
                invitations::opted_out,
                invitations::purged,
            ))
            .first(conn)
            .optional()
            .map_err(DbError::from)
    })
    .await?;
    let base = config.retry_base;
    let reminder = message.kind == "reminder";
    let Some((campaign, agency_id, Some(email), language, used, opted_out, false)) = row else {
        return finish(pool, &message, Delivery::Cancelled, None, base).await;
    };
    if opted_out || (reminder && used) {
        return finish(pool, &message, Delivery::Cancelled, None, base).await;
    }
    let contexts = campaigns.clone();
    let context = db::run(pool, move |conn| contexts.get(conn, &campaign)).await?;
    let Some(context) = context else {
        return finish(pool, &message, Delivery::Cancelled, None, base).await;
    };
    let token = token_of(&config.secret, &message.invitation);
    let agency = context.tree.node(agency_id).map(|n| n.name(&language).to_owned()).unwrap_or_default();
    let closes = context.campaign.closes_at.with_timezone(&crate::agency::vietnam()).date_naive();
    let facts = MailFacts {
        language: &language,
        campaign_title: &context.campaign.title,
        settings: &context.campaign.mail,
        agency: &agency,
        closes_on: if language == "en" {
            closes.format("%-d %B %Y").to_string()
        } else {
            closes.format("%d/%m/%Y").to_string()
        },
        link: format!("{}/i/{token}", config.public_url),
        unsubscribe: format!("{}/u/{token}", config.public_url),
        reminder,
    };
    let rendered = match render(&facts) {
        Ok(rendered) => rendered,
        Err(error) => {
            return finish(pool, &message, Delivery::Failed, Some(format!("rendering: {error}")), base).await;
        }
    };
    let to: Mailbox = match email.parse() {
        Ok(to) => to,
        Err(error) => {
            return finish(pool, &message, Delivery::Failed, Some(format!("address: {error}")), base).await;
        }
    };
    let domain = config.from.email.domain().to_owned();
    let built = Message::builder()
        .from(config.from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!("<{}.{}@{domain}>", message.id, message.attempts)))
        .header(ListUnsubscribe(format!("<{}>", facts.unsubscribe)))
        .header(ListUnsubscribePost)
        .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html));
    let built = match built {
        Ok(built) => built,
        Err(error) => {
            return finish(pool, &message, Delivery::Failed, Some(format!("building: {error}")), base).await;
        }
    };
    match transport.send(built).await {
        Ok(_) => finish(pool, &message, Delivery::Sent, None, base).await,
        Err(error) if error.is_permanent() => {
            finish(pool, &message, Delivery::Failed, Some(error.to_string()), base).await
        }
        Err(error) => {
            let outcome = if message.attempts + 1 >= MAX_ATTEMPTS { Delivery::Failed } else { Delivery::Retry };
            finish(pool, &message, outcome, Some(error.to_string()), base).await
        }
    }
}

/// Records what happened to a message (and to its invitation).
async fn finish(
    pool: &Pool,
    message: &Claimed,
    delivery: Delivery,
    error: Option<String>,
    retry_base: StdDuration,
) -> Result<Delivery, DbError> {
    let id = message.id.clone();
    let invitation = message.invitation.clone();
    let first = message.kind == "invitation";
    let attempts = message.attempts + 1;
    let retry_in = retry_delay(retry_base, message.attempts);
    db::run(pool, move |conn| {
        write_transaction(conn, |conn| {
            let now = Utc::now().naive_utc();
            match delivery {
                Delivery::Sent => {
                    diesel::update(outbox::table.find(&id))
                        .set((outbox::status.eq(SENT), outbox::sent_at.eq(now), outbox::attempts.eq(attempts)))
                        .execute(conn)?;
                    if first {
                        diesel::update(invitations::table.find(&invitation))
                            .set((invitations::status.eq(status::SENT), invitations::sent_at.eq(now)))
                            .execute(conn)?;
                    }
                }
                Delivery::Retry => {
                    diesel::update(outbox::table.find(&id))
                        .set((
                            outbox::attempts.eq(attempts),
                            outbox::next_attempt_at.eq(now + retry_in),
                            outbox::claimed_until.eq(None::<NaiveDateTime>),
                            outbox::last_error.eq(&error),
                        ))
                        .execute(conn)?;
                }
                Delivery::Failed => {
                    diesel::update(outbox::table.find(&id))
                        .set((outbox::status.eq(FAILED), outbox::attempts.eq(attempts), outbox::last_error.eq(&error)))
                        .execute(conn)?;
                    if first {
                        diesel::update(invitations::table.find(&invitation))
                            .set((invitations::status.eq(status::FAILED), invitations::failure.eq(&error)))
                            .execute(conn)?;
                    }
                }
                Delivery::Cancelled => {
                    diesel::update(outbox::table.find(&id)).set(outbox::status.eq(CANCELLED)).execute(conn)?;
                }
            }
            Ok::<_, DbError>(())
        })
    })
    .await?;
    Ok(delivery)
}

/// Exponential backoff from `base` (a minute by default): base, twice, four times, … capped at
/// six hours.
pub fn retry_delay(base: StdDuration, attempts_so_far: i32) -> Duration {
    let factor = 2u32.saturating_pow(attempts_so_far.clamp(0, 20) as u32);
    let delay = base.saturating_mul(factor).min(StdDuration::from_secs(6 * 3600));
    Duration::milliseconds(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

/// Queues due reminders: for each open campaign with a schedule, invitations sent at least the
/// reminder's days ago, not used, not opted out, that have had fewer reminders. Each reminder
/// is queued at most once (the count is raised in the same transaction).
pub fn schedule_reminders(conn: &mut DbConnection) -> Result<usize, DbError> {
    let now = Utc::now();
    let open: Vec<(String, String)> = campaigns::table
        .filter(campaigns::closes_at.gt(now.naive_utc()))
        .filter(campaigns::mail_settings.ne("{}"))
        .select((campaigns::id, campaigns::mail_settings))
        .load(conn)?;
    let mut queued = 0;
    for (campaign, settings) in open {
        let settings: crate::campaign::MailSettings = serde_json::from_str(&settings).unwrap_or_default();
        for (index, days) in settings.reminders.iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let due_before = (now - Duration::days(i64::from(*days))).naive_utc();
            queued += write_transaction(conn, |conn| {
                let due: Vec<String> = invitations::table
                    .filter(invitations::campaign_id.eq(&campaign))
                    .filter(invitations::status.eq(status::SENT))
                    .filter(invitations::used.eq(false))
                    .filter(invitations::opted_out.eq(false))
                    .filter(invitations::purged.eq(false))
                    .filter(invitations::reminders_sent.eq(index))
                    .filter(invitations::sent_at.le(due_before))
                    .select(invitations::id)
                    .limit(1_000)
                    .load(conn)?;
                for id in &due {
                    diesel::update(invitations::table.find(id).filter(invitations::reminders_sent.eq(index)))
                        .set(invitations::reminders_sent.eq(index + 1))
                        .execute(conn)?;
                    super::queue(conn, id, "reminder")?;
                }
                Ok::<_, DbError>(due.len())
            })?;
        }
    }
    Ok(queued)
}

/// `List-Unsubscribe: <https://…/u/TOKEN>`.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl header::Header for ListUnsubscribe {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): mail clients may opt out with
/// one POST to the link.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl header::Header for ListUnsubscribePost {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let minute = StdDuration::from_secs(60);
        assert_eq!(retry_delay(minute, 0), Duration::seconds(60));
        assert_eq!(retry_delay(minute, 1), Duration::seconds(120));
        assert_eq!(retry_delay(minute, 3), Duration::seconds(480));
        assert_eq!(retry_delay(minute, 30), Duration::seconds(6 * 3600));
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact("smtps://user:secret@mail.example:465"), "smtps://…@mail.example:465");
        assert_eq!(redact("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }
}
