//! The audit log of admin actions: keys created and revoked, campaigns created and changed,
//! definitions published, population counts replaced, purges run. Who (the key's id, or the
//! command line), what, on what, when; written in the same transaction as the action itself, so
//! that an action is never without its entry nor an entry without its action.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::schema::audit_log;
use crate::db::{self, DbConnection, DbError};

/// Who acted: an API key, or someone at the command line (who has the database itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The key with this id.
    Key(i64),
    /// The command line.
    CommandLine,
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Sequence number (newer entries have larger ones).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The key that acted; `null` for the command line.
    pub key_id: Option<i64>,
    /// `key.created`, `key.revoked`, `campaign.created`, `campaign.updated`,
    /// `definition.published`, `population.replaced`, `purge.run`.
    pub action: String,
    /// What it was done to (a key id, a campaign id, `survey@version`, …).
    pub target: String,
    /// What changed, as given (never a secret).
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Writes an entry.
pub fn record(
    conn: &mut DbConnection,
    actor: Actor,
    action: &str,
    target: &str,
    details: &Value,
) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(Utc::now().trunc_subsecs(6).naive_utc()),
            audit_log::key_id.eq(match actor {
                Actor::Key(id) => Some(id),
                Actor::CommandLine => None,
            }),
            audit_log::action.eq(action),
            audit_log::target.eq(target),
            audit_log::details.eq(details.to_string()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Runs `work` and, when it succeeds, records `action` on the target and details `describe`
/// draws from its result, in one write transaction.
pub fn audited<T, E>(
    conn: &mut DbConnection,
    actor: Actor,
    action: &str,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    describe: impl FnOnce(&T) -> Option<(String, Value)>,
) -> Result<T, E>
where
    E: From<DbError>,
{
    db::write_transaction(conn, |conn| {
        let result = work(conn)?;
        if let Some((target, details)) = describe(&result) {
            record(conn, actor, action, &target, &details).map_err(E::from)?;
        }
        Ok(result)
    })
}

/// Entries newest first, before the entry `before` (for paging) and of one action if asked.
pub fn list(
    conn: &mut DbConnection,
    action: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, DbError> {
    let mut query = audit_log::table.into_boxed();
    if let Some(action) = action {
        query = query.filter(audit_log::action.eq(action.to_owned()));
    }
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    let rows: Vec<(i64, NaiveDateTime, Option<i64>, String, String, String)> = query
        .order(audit_log::id.desc())
        .limit(limit)
        .select((
            audit_log::id,
            audit_log::at,
            audit_log::key_id,
            audit_log::action,
            audit_log::target,
            audit_log::details,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, at, key_id, action, target, details)| AuditEntry {
            id,
            at: DateTime::from_naive_utc_and_offset(at, Utc),
            key_id,
            action,
            target,
            details: serde_json::from_str(&details).unwrap_or(Value::Null),
        })
        .collect())
}
