//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::db::{self, DbError};
use crate::error::{ApiError, ErrorCode};

/// Probe answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// 200 while the process runs.
#[utoipa::path(tag = "health", responses((status = 200, body = Status)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// 200 when the database answers and every migration is applied, else 503.
#[utoipa::path(tag = "health", responses((status = 200, body = Status), (status = 503, body = crate::error::Problem)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let migrated = db::run(&state.pool, db::is_migrated).await;
    match migrated {
        Ok(true) => Ok(HttpResponse::Ok().json(Status { status: "ready" })),
        Ok(false) => Err(ApiError::new(ErrorCode::DatabaseUnavailable, "database migrations are pending")),
        Err(DbError::Unavailable(cause)) => {
            tracing::warn!(error.cause = %cause, "readiness check: database unavailable");
            Err(ApiError::new(ErrorCode::DatabaseUnavailable, "the database does not answer"))
        }
        Err(other) => {
            tracing::warn!(error.cause = %other, "readiness check failed");
            Err(ApiError::new(ErrorCode::DatabaseUnavailable, "the database is not ready"))
        }
    }
}
