//! Reading stored responses back, and housekeeping of idempotency records.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::{agencies, idempotency_keys, responses};
use crate::db::{DbConnection, DbError};

/// A stored response row with its agency's code.
#[derive(Debug, Clone, Queryable)]
pub struct ResponseRow {
    /// Response id.
    pub id: String,
    /// Campaign id.
    pub campaign_id: String,
    /// Agency code.
    pub agency_code: String,
    /// `individual` or `organization`.
    pub respondent_type: String,
    /// Compact answers.
    pub answers: String,
    /// When it was stored.
    pub received_at: NaiveDateTime,
}

/// One response by id.
pub fn response(conn: &mut DbConnection, id: &str) -> Result<Option<ResponseRow>, DbError> {
    Ok(responses::table
        .inner_join(agencies::table)
        .filter(responses::id.eq(id))
        .select((
            responses::id,
            responses::campaign_id,
            agencies::code,
            responses::respondent_type,
            responses::answers,
            responses::received_at,
        ))
        .first(conn)
        .optional()?)
}

/// Deletes idempotency records older than `days`; returns how many.
pub fn purge_idempotency_keys(conn: &mut DbConnection, days: u32) -> Result<usize, DbError> {
    let cutoff = Utc::now().naive_utc() - chrono::Duration::days(i64::from(days));
    Ok(diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff))).execute(conn)?)
}

/// How many responses a campaign holds.
pub fn count(conn: &mut DbConnection, campaign: &str) -> Result<i64, DbError> {
    Ok(responses::table.filter(responses::campaign_id.eq(campaign)).count().get_result(conn)?)
}
