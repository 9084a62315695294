//! Invitations: admins (or partner keys, for their agencies) queue personal one-time links; the
//! summary gives counts, never addresses.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;

use super::auth::Authenticated;
use crate::app::AppState;
use crate::auth::Role;
use crate::db::{self, DbError};
use crate::error::{ApiError, ErrorCode};
use crate::mail::{self, InvitationReport, InvitationRow, InvitationSummary, RowProblem};

/// Largest invitation list accepted in one request.
const INVITATIONS_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The JSON body of `POST /api/v1/campaigns/{id}/invitations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationList {
    /// One entry per person.
    pub invitations: Vec<InvitationRow>,
}

fn refused(problems: Vec<RowProblem>) -> ApiError {
    super::rows_refused(
        ErrorCode::InvalidInvitations,
        format!("{} row(s) refused; nothing was queued", problems.len()),
        problems.into_iter().map(|p| (p.row, p.field, p.message)),
    )
}

/// Queues invitations (JSON `{"invitations": [{"email", "agency", "language", "dossier"}]}` or CSV
/// with those columns). Rows at fault are listed by line and skipped; the others are queued; an
/// address already invited in the campaign is invited once.
#[utoipa::path(tag = "invitations", params(("id" = String, Path)), request_body = InvitationList,
    responses(
        (status = 202, body = InvitationReport), (status = 404, body = crate::error::Problem),
        (status = 415, body = crate::error::Problem), (status = 422, body = crate::error::Problem)
    ),
    security(("api_key" = [])))]
#[post("/campaigns/{id}/invitations")]
pub async fn create(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let principal = key.require(&[Role::Admin, Role::Partner])?;
    let body = super::read_body(&request, payload, INVITATIONS_BODY_LIMIT).await?;
    let rows: Vec<(String, InvitationRow)> = match super::media_type(&request).as_str() {
        "application/json" => {
            let list: InvitationList = super::from_json(&body)?;
            list.invitations.into_iter().enumerate().map(|(i, row)| (format!("invitations[{i}]"), row)).collect()
        }
        "text/csv" => {
            let text = std::str::from_utf8(&body)
                .map_err(|_| ApiError::new(ErrorCode::MalformedBody, "the CSV is not UTF-8"))?;
            mail::parse_csv(text).map_err(refused)?
        }
        _ => {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send application/json or text/csv"));
        }
    };
    let campaign = id.into_inner();
    let cache = state.campaigns.clone();
    let secret = state.dossier_secret.clone();
    let lookup = campaign.clone();
    let report = db::run(&state.pool, move |conn| {
        let Some(context) = cache.get(conn, &lookup)? else { return Ok::<_, DbError>(None) };
        mail::create(conn, &context, &rows, &principal, &secret).map(Some)
    })
    .await?
    .ok_or_else(|| ApiError::new(ErrorCode::CampaignNotFound, format!("no campaign `{campaign}`")))?;
    if report.queued == 0 && report.duplicates == 0 && !report.refused.is_empty() {
        return Err(refused(report.refused));
    }
    tracing::info!(campaign.id = %campaign, invitations.queued = report.queued, "invitations queued");
    Ok(HttpResponse::Accepted().json(report))
}

/// Counts of a campaign's invitations (queued, sent, failed, opted out, used, response rate).
///
/// An analyst key limited to some agencies counts the invitations of those agencies and of what
/// lies below them.
#[utoipa::path(tag = "invitations", params(("id" = String, Path)),
    responses((status = 200, body = InvitationSummary), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[get("/campaigns/{id}/invitations/summary")]
pub async fn summary(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
) -> Result<web::Json<InvitationSummary>, ApiError> {
    let limited_to = key.require(&[Role::Admin, Role::Analyst])?.read_limit();
    let campaign = id.into_inner();
    let lookup = campaign.clone();
    let cache = state.campaigns.clone();
    let found = db::run(&state.pool, move |conn| {
        let Some(context) = cache.get(conn, &lookup)? else { return Ok::<_, DbError>(None) };
        mail::summary(conn, &lookup, |agency| context.tree.readable(agency, limited_to.as_deref())).map(Some)
    })
    .await?;
    found.map(web::Json).ok_or_else(|| ApiError::new(ErrorCode::CampaignNotFound, format!("no campaign `{campaign}`")))
}
