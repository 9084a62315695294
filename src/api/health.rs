//! Liveness and readiness probes.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use diesel::prelude::*;
use serde::Serialize;
use subtle::ConstantTimeEq;
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
            static LOGGED: crate::telemetry::LogThrottle = crate::telemetry::LogThrottle::outage();
            if let Some(held) = LOGGED.admit() {
                tracing::warn!(error.cause = %cause, failed.since_last_line = held, "readiness check: database unavailable");
            }
            Err(ApiError::new(ErrorCode::DatabaseUnavailable, "the database does not answer"))
        }
        Err(other) => {
            tracing::warn!(error.cause = %other, "readiness check failed");
            Err(ApiError::new(ErrorCode::DatabaseUnavailable, "the database is not ready"))
        }
    }
}

/// `GET /metrics`: Prometheus metrics for a scraper presenting the configured token; 404 when no
/// token is configured (the endpoint is off), 401 without the right token.
pub async fn metrics(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(token) = state.settings.metrics_token.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(super::not_found(request, None).await);
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        return Err(ApiError::new(ErrorCode::Unauthorized, "present the metrics token as a bearer token"));
    }
    let depth = db::run(&state.pool, |conn| {
        use crate::db::schema::outbox;
        outbox::table
            .filter(outbox::status.eq(crate::mail::worker::PENDING))
            .count()
            .get_result::<i64>(conn)
            .map_err(DbError::from)
    })
    .await;
    let depth = match depth {
        Ok(depth) => Some(depth),
        Err(error) => {
            tracing::warn!(error.cause = %error, "metrics: the outbox could not be counted");
            None
        }
    };
    let pool = state.pool.state();
    let text = state.metrics.render(depth, pool.connections, pool.idle_connections);
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}
