//! API keys, for admins: issue, list, revoke.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Authenticated;
use crate::app::{AppState, JSON_BODY_LIMIT};
use crate::audit::{Actor, audited};
use crate::auth::{self, CreatedKey, KeyError, KeyInfo, Role};
use crate::db;
use crate::error::{ApiError, ErrorCode, FieldError};
use serde_json::json;

/// The body of `POST /api/v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// `admin`, `analyst` or `partner`.
    pub role: Role,
    /// Who or what the key is for, 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Agency codes the key is limited to (required for partners).
    #[serde(default)]
    pub agencies: Vec<String>,
}

/// Every key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Newest first; secrets are never shown.
    pub keys: Vec<KeyInfo>,
}

/// Issues a key; the secret is in this answer only.
#[utoipa::path(tag = "keys", request_body = NewKey, responses((status = 201, body = CreatedKey), (status = 422, body = crate::error::Problem)), security(("api_key" = [])))]
#[post("/keys")]
pub async fn create(
    state: web::Data<AppState>,
    key: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let admin = key.require(&[Role::Admin])?;
    let NewKey { role, name, agencies } =
        super::from_json(&super::read_json(&request, payload, JSON_BODY_LIMIT).await?)?;
    let created = db::run(&state.pool, move |conn| {
        audited(
            conn,
            Actor::Key(admin.key_id),
            "key.created",
            |conn| auth::create_key(conn, &name, role, &agencies),
            |k| Some((k.id.to_string(), json!({"name": name, "role": role.as_str(), "agencies": agencies}))),
        )
    })
    .await
    .map_err(|e| match e {
        KeyError::Db(db_error) => ApiError::from(db_error),
        other => {
            let field = match &other {
                KeyError::BadName => "name",
                _ => "agencies",
            };
            ApiError::new(ErrorCode::InvalidKey, other.to_string()).with_errors(vec![FieldError {
                field: field.to_owned(),
                code: "invalid".to_owned(),
                message: other.to_string(),
            }])
        }
    })?;
    tracing::info!(key.id = created.id, key.role = %role, "API key created");
    Ok(HttpResponse::Created().json(created))
}

/// Lists keys (never their secrets).
#[utoipa::path(tag = "keys", responses((status = 200, body = KeyList)), security(("api_key" = [])))]
#[get("/keys")]
pub async fn list(state: web::Data<AppState>, key: Authenticated) -> Result<web::Json<KeyList>, ApiError> {
    key.require(&[Role::Admin])?;
    let keys = db::run(&state.pool, auth::list_keys).await?;
    Ok(web::Json(KeyList { keys }))
}

/// Revokes a key at once.
#[utoipa::path(tag = "keys", params(("id" = i64, Path, description = "Key id")), responses((status = 204), (status = 404, body = crate::error::Problem)), security(("api_key" = [])))]
#[delete("/keys/{id}")]
pub async fn revoke(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = key.require(&[Role::Admin])?;
    let id: i64 = id.parse().map_err(|_| ApiError::invalid_parameter("id", "must be a whole number"))?;
    let found = db::run(&state.pool, move |conn| {
        audited(
            conn,
            Actor::Key(admin.key_id),
            "key.revoked",
            |conn| auth::revoke_key(conn, id),
            |found| found.then(|| (id.to_string(), json!({}))),
        )
    })
    .await?;
    if found {
        state.keys.forget(id);
        tracing::info!(key.id = id, "API key revoked");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(ErrorCode::KeyNotFound, format!("no key {id}")))
    }
}
