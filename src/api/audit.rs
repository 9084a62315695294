//! The audit log of admin actions (admin keys).

use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::Role;
use crate::db;
use crate::error::ApiError;

/// Most entries in one answer.
const MAX_LIMIT: i64 = 1_000;

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action (`key.created`, `campaign.updated`, …).
    pub action: Option<String>,
    /// Entries older than this id (the previous answer's `next`).
    pub before: Option<i64>,
    /// At most this many, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// `before` for the next page; `null` on the last.
    pub next: Option<i64>,
}

/// Admin actions, newest first: who (key id, `null` for the command line), what, on what, when.
#[utoipa::path(tag = "keys", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[get("/audit")]
pub async fn list(
    state: web::Data<AppState>,
    key: Authenticated,
    query: super::Query<AuditQuery>,
) -> Result<web::Json<AuditPage>, ApiError> {
    key.require(&[Role::Admin])?;
    let AuditQuery { action, before, limit } = query.into_inner();
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_parameter("limit", format!("must be from 1 to {MAX_LIMIT}")));
    }
    let entries = db::run(&state.pool, move |conn| audit::list(conn, action.as_deref(), before, limit)).await?;
    let next = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(web::Json(AuditPage { entries, next }))
}
