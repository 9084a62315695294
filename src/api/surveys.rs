//! Published survey definitions: public reads, and publishing for admins.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Authenticated;
use crate::app::AppState;
use crate::audit::{Actor, audited};
use crate::auth::Role;
use crate::db;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::survey::check::{DefinitionError, parse_definition_json};
use crate::survey::store::{self, PublishError, PublishOutcome, SurveySummary};
use crate::survey::{SurveyDefinition, parse_definition};

/// The published surveys.
#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyList {
    /// One entry per survey, with its latest version.
    pub surveys: Vec<SurveySummary>,
}

/// What publishing a definition did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResult {
    /// Survey id.
    pub id: String,
    /// Version.
    pub version: i32,
    /// `published`, or `unchanged` when the same content was already published.
    pub outcome: PublishOutcome,
}

/// Lists the published surveys.
#[utoipa::path(tag = "surveys", responses((status = 200, body = SurveyList)))]
#[get("/surveys")]
pub async fn list(state: web::Data<AppState>) -> Result<web::Json<SurveyList>, ApiError> {
    let surveys = db::run(&state.pool, store::list).await?;
    Ok(web::Json(SurveyList { surveys }))
}

/// The latest version of a survey, in full.
#[utoipa::path(
    tag = "surveys",
    params(("id" = String, Path, description = "Survey id")),
    responses((status = 200, body = SurveyDefinition), (status = 404, body = crate::error::Problem))
)]
#[get("/surveys/{id}")]
pub async fn latest(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<SurveyDefinition>, ApiError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let definition = db::run(&state.pool, move |conn| store::get(conn, &lookup, None)).await?;
    definition.map(web::Json).ok_or_else(|| ApiError::new(ErrorCode::SurveyNotFound, format!("no survey `{id}`")))
}

/// One published version of a survey.
#[utoipa::path(
    tag = "surveys",
    params(("id" = String, Path, description = "Survey id"), ("version" = i32, Path, description = "Version number", minimum = 1)),
    responses((status = 200, body = SurveyDefinition), (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem))
)]
#[get("/surveys/{id}/versions/{version}")]
pub async fn survey_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<SurveyDefinition>, ApiError> {
    let (id, version) = path.into_inner();
    let version: i32 = version
        .parse()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::invalid_parameter("version", "must be a whole number from 1"))?;
    let lookup = id.clone();
    let (definition, exists) = db::run(&state.pool, move |conn| {
        let definition = store::get(conn, &lookup, Some(version))?;
        let exists = definition.is_some() || store::get(conn, &lookup, None)?.is_some();
        Ok::<_, ApiError>((definition, exists))
    })
    .await?;
    match (definition, exists) {
        (Some(definition), _) => Ok(web::Json(definition)),
        (None, true) => {
            Err(ApiError::new(ErrorCode::VersionNotFound, format!("survey `{id}` has no version {version}")))
        }
        (None, false) => Err(ApiError::new(ErrorCode::SurveyNotFound, format!("no survey `{id}`"))),
    }
}

/// Publishes a definition (admin). The body is the definition file in TOML
/// (`application/toml`) or its JSON form (`application/json`). A new version → 201; the same
/// content again → 200 and nothing changes; the same version with other content → 409.
#[utoipa::path(
    tag = "surveys",
    request_body(content = String, description = "The definition, as TOML or JSON", content_type = "application/toml"),
    responses(
        (status = 201, body = PublishResult), (status = 200, body = PublishResult),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)
    ),
    security(("api_key" = []))
)]
#[post("/surveys")]
pub async fn publish(
    state: web::Data<AppState>,
    key: Authenticated,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let admin = key.require(&[Role::Admin])?;
    let content_type = super::media_type(&request);
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::new(ErrorCode::MalformedBody, "the body is not UTF-8"))?;
    let parsed = match content_type.as_str() {
        "application/toml" | "text/toml" | "text/plain" => parse_definition(text),
        "application/json" => parse_definition_json(text),
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the definition as application/toml or application/json",
            ));
        }
    };
    let definition = parsed.map_err(definition_error)?;
    let (id, version) = (definition.id.clone(), definition.version);
    let target = format!("{id}@{version}");
    let outcome = db::run(&state.pool, move |conn| {
        audited(
            conn,
            Actor::Key(admin.key_id),
            "definition.published",
            |conn| store::publish(conn, &definition),
            |outcome| (*outcome == PublishOutcome::Published).then(|| (target, serde_json::json!({}))),
        )
    })
    .await
    .map_err(|e| match e {
        PublishError::VersionConflict { survey, version } => ApiError::new(
            ErrorCode::VersionConflict,
            format!(
                "survey `{survey}` version {version} is already published with different content; publish a new version"
            ),
        ),
        PublishError::Db(db_error) => db_error.into(),
    })?;
    if outcome == PublishOutcome::Published {
        tracing::info!(survey.id = %id, survey.version = version, "survey definition published");
    }
    let status = match outcome {
        PublishOutcome::Published => actix_web::http::StatusCode::CREATED,
        PublishOutcome::Unchanged => actix_web::http::StatusCode::OK,
    };
    Ok(HttpResponse::build(status).json(PublishResult { id, version, outcome }))
}

fn definition_error(error: DefinitionError) -> ApiError {
    match error {
        DefinitionError::Syntax(message) => ApiError::new(ErrorCode::MalformedBody, message.trim().to_owned()),
        DefinitionError::Invalid(problems) => {
            ApiError::new(ErrorCode::InvalidDefinition, format!("the definition has {} problem(s)", problems.len()))
                .with_errors(
                    problems
                        .into_iter()
                        .map(|p| FieldError { field: p.item, code: "invalid".to_owned(), message: p.message })
                        .collect(),
                )
        }
    }
}
