//! Campaigns: admins create and change them; any key may read them.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Authenticated;
use crate::app::{AppState, JSON_BODY_LIMIT};
use crate::audit::{Actor, audited};
use crate::auth::Role;
use crate::campaign::{self, Campaign, CampaignError, CampaignPatch, NewCampaign};
use crate::db;
use crate::error::{ApiError, ErrorCode, FieldError};
use serde_json::json;

/// Every campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    /// Newest opening first.
    pub campaigns: Vec<Campaign>,
}

fn campaign_error(error: CampaignError) -> ApiError {
    match error {
        CampaignError::NotFound(id) => ApiError::new(ErrorCode::CampaignNotFound, format!("no campaign `{id}`")),
        CampaignError::AlreadyExists(id) => {
            ApiError::new(ErrorCode::CampaignExists, format!("campaign `{id}` already exists"))
        }
        CampaignError::HasResponses(id) => ApiError::new(
            ErrorCode::CampaignHasResponses,
            format!("campaign `{id}` has responses: its survey version and agencies can no longer change"),
        ),
        CampaignError::Invalid(problems) => {
            ApiError::new(ErrorCode::InvalidCampaign, format!("{} field(s) at fault", problems.len())).with_errors(
                problems
                    .into_iter()
                    .map(|p| FieldError { field: p.field, code: p.code.to_owned(), message: p.message })
                    .collect(),
            )
        }
        CampaignError::Db(db_error) => db_error.into(),
    }
}

/// Creates a campaign (admin).
#[utoipa::path(tag = "campaigns", request_body = NewCampaign,
    responses((status = 201, body = Campaign), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[post("/campaigns")]
pub async fn create(
    state: web::Data<AppState>,
    key: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let admin = key.require(&[Role::Admin])?;
    let new: NewCampaign = super::from_json(&super::read_json(&request, payload, JSON_BODY_LIMIT).await?)?;
    let created = db::run(&state.pool, move |conn| {
        audited(
            conn,
            Actor::Key(admin.key_id),
            "campaign.created",
            |conn| campaign::create(conn, &new),
            |c| Some((c.id.clone(), json!({"survey": c.survey, "version": c.version, "agencies": c.agencies}))),
        )
    })
    .await
    .map_err(campaign_error)?;
    tracing::info!(campaign.id = %created.id, "campaign created");
    Ok(HttpResponse::Created().json(created))
}

/// Lists campaigns (any key).
#[utoipa::path(tag = "campaigns", responses((status = 200, body = CampaignList)), security(("api_key" = [])))]
#[get("/campaigns")]
pub async fn list(state: web::Data<AppState>, _key: Authenticated) -> Result<web::Json<CampaignList>, ApiError> {
    let campaigns = db::run(&state.pool, campaign::list).await?;
    Ok(web::Json(CampaignList { campaigns }))
}

/// One campaign (any key).
#[utoipa::path(tag = "campaigns", params(("id" = String, Path)), responses((status = 200, body = Campaign), (status = 404, body = crate::error::Problem)), security(("api_key" = [])))]
#[get("/campaigns/{id}")]
pub async fn detail(
    state: web::Data<AppState>,
    _key: Authenticated,
    id: web::Path<String>,
) -> Result<web::Json<Campaign>, ApiError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let found = db::run(&state.pool, move |conn| campaign::get(conn, &lookup)).await?;
    found.map(web::Json).ok_or_else(|| ApiError::new(ErrorCode::CampaignNotFound, format!("no campaign `{id}`")))
}

/// Changes a campaign (admin); only the fields given change.
#[utoipa::path(tag = "campaigns", params(("id" = String, Path)), request_body = CampaignPatch,
    responses((status = 200, body = Campaign), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[patch("/campaigns/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<Campaign>, ApiError> {
    let admin = key.require(&[Role::Admin])?;
    let id = id.into_inner();
    let patch: CampaignPatch = super::from_json(&super::read_json(&request, payload, JSON_BODY_LIMIT).await?)?;
    let lookup = id.clone();
    let changes = patch.changes();
    let updated = db::run(&state.pool, move |conn| {
        audited(
            conn,
            Actor::Key(admin.key_id),
            "campaign.updated",
            |conn| campaign::update(conn, &lookup, &patch),
            |c| Some((c.id.clone(), changes)),
        )
    })
    .await
    .map_err(campaign_error)?;
    state.campaigns.forget(&id);
    tracing::info!(campaign.id = %id, "campaign changed");
    Ok(web::Json(updated))
}
