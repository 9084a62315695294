//! Posting responses (partner systems and admins), one at a time or in batches, and reading one
//! back (analysts and admins). Every response goes through the intake write path.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Authenticated;
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::campaign::Channel;
use crate::campaign::context::CampaignContext;
use crate::db;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::intake::writer::recorded_outcome;
use crate::intake::writer::{DOSSIER_CONFLICT_RECORD, ItemOutcome};
use crate::intake::{self, Idempotency, Origin, Prepared, RawSubmission, Refusal, SubmissionProblem};

/// Largest single response body.
pub const RESPONSE_BODY_LIMIT: usize = 64 * 1024;
/// Largest batch body per allowed item.
const BATCH_BYTES_PER_ITEM: usize = 16 * 1024;

// The bodies below are for the document only: the handlers read bodies with their own reader,
// which builds no objects of the answers (the intake path's speed), and check the answers against
// the campaign's definition, which no fixed schema can express. `Deserialize` is derived for
// serde's `flatten`, which the schema derive reads.

/// One response. Its answers are checked against the campaign's survey definition (which
/// questions, which options, which are required); members not listed here are refused.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SubmissionBody {
    /// Campaign id.
    campaign: String,
    /// Official code of the agency that served the respondent (one of the campaign's agencies or
    /// below them).
    agency: String,
    /// Who answers.
    respondent_type: RespondentTypeName,
    /// Language the respondent answered in (one of the survey's languages; default its first).
    #[schema(example = "vi")]
    language: Option<String>,
    /// Answers by question id: a scale point or number (integer), an option's value (string),
    /// several options' values (array of strings), or free text (string).
    #[schema(value_type = Object, example = json!({"s01": 4, "s02": 5, "gender": "female"}))]
    answers: Value,
    /// The administrative service used (a code of the partner's catalogue).
    service: Option<String>,
    /// The dossier's number: one rating per dossier, campaign and agency (stored as a keyed hash).
    dossier: Option<String>,
    /// When the respondent finished (RFC 3339).
    completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The respondent types of the SIPAS questionnaires.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RespondentTypeName {
    /// A citizen.
    Individual,
    /// A business or other organization.
    Organization,
}

/// One item of a batch: a response's members and its `client_id`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct BatchItemBody {
    /// The item's idempotency key (1–255 printable ASCII characters), unique within the key's
    /// requests: an item sent again with it is answered with its first result.
    client_id: String,
    #[schema(inline)]
    #[serde(flatten)]
    response: SubmissionBody,
}

/// The body of a batch.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct BatchBody {
    /// At most the server's `batch_max_items` (default 1,000).
    items: Vec<BatchItemBody>,
}

/// The answer to an accepted response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// Response id.
    pub id: String,
    /// When it was committed (UTC).
    pub received_at: String,
}

/// One item's result in a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// The item's `client_id`.
    pub client_id: Option<String>,
    /// 201 stored, 409 conflict, 422 refused, 403 outside the key's agencies.
    pub status: u16,
    /// Response id, when stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// The fields at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The answer to a batch, in item order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResults {
    /// One result per item.
    pub results: Vec<BatchResult>,
}

/// A stored response.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredResponse {
    /// Response id.
    pub id: String,
    /// Campaign id.
    pub campaign: String,
    /// Agency code.
    pub agency: String,
    /// Survey id.
    pub survey: String,
    /// Survey version.
    pub version: i32,
    /// `individual` or `organization`.
    pub respondent_type: String,
    /// Answers by question id.
    #[schema(value_type = Object)]
    pub answers: serde_json::Map<String, Value>,
    /// When it was stored (UTC).
    pub received_at: String,
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(ErrorCode::MalformedBody, format!("malformed JSON: {e}")))
}

fn problems_to_errors(problems: Vec<SubmissionProblem>) -> Vec<FieldError> {
    problems.into_iter().map(|p| FieldError { field: p.field, code: p.code.to_owned(), message: p.message }).collect()
}

fn invalid(problems: Vec<SubmissionProblem>) -> ApiError {
    ApiError::new(ErrorCode::InvalidResponse, format!("{} field(s) at fault", problems.len()))
        .with_errors(problems_to_errors(problems))
}

fn unknown_campaign(id: &str) -> SubmissionProblem {
    SubmissionProblem { field: "campaign".to_owned(), code: "unknown_campaign", message: format!("no campaign `{id}`") }
}

fn dossier_conflict() -> ApiError {
    ApiError::new(ErrorCode::DossierAlreadyRated, "this dossier has already been rated in this campaign and agency")
}

fn key_reused() -> ApiError {
    ApiError::new(ErrorCode::IdempotencyKeyReused, "this idempotency key was used for a different request")
}

/// Loads the contexts of the named campaigns (from the cache while fresh).
async fn contexts(
    state: &web::Data<AppState>,
    ids: Vec<String>,
) -> Result<HashMap<String, Arc<CampaignContext>>, ApiError> {
    // Fresh cached campaigns need no database at all (the usual case: a campaign is rechecked
    // every few seconds, not on every response).
    let fresh: HashMap<String, Arc<CampaignContext>> =
        ids.iter().filter_map(|id| state.campaigns.fresh(id).map(|context| (id.clone(), context))).collect();
    if ids.iter().all(|id| fresh.contains_key(id)) {
        return Ok(fresh);
    }
    let cache = state.campaigns.clone();
    let found = db::run(&state.pool, move |conn| {
        let mut found = HashMap::new();
        for id in ids {
            if let Some(context) = cache.get(conn, &id)? {
                found.insert(id, context);
            }
        }
        Ok::<_, ApiError>(found)
    })
    .await?;
    Ok(found)
}

fn poster(key: Authenticated) -> Result<Principal, ApiError> {
    key.require(&[Role::Partner, Role::Admin])
}

fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(raw) = request.headers().get("idempotency-key") else { return Ok(None) };
    let key = raw.to_str().ok().filter(|k| intake::valid_idempotency_key(k)).ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidIdempotencyKey, "Idempotency-Key must be 1–255 printable ASCII characters")
    })?;
    Ok(Some(key.to_owned()))
}

/// Posts one response. 201 only once it is committed; a retry with the same `Idempotency-Key`
/// and body returns the first result with `Idempotent-Replayed: true`.
#[utoipa::path(tag = "responses",
    request_body(content = SubmissionBody, description = "One response; checked against its campaign's definition"),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable characters; retries with the same key and body are answered with the first result")),
    responses(
        (status = 201, body = Created), (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 415, body = crate::error::Problem), (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)
    ),
    security(("api_key" = [])))]
#[post("/responses")]
pub async fn create(
    state: web::Data<AppState>,
    key: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let principal = poster(key)?;
    let idempotency = idempotency_key(&request)?;
    let body = super::read_json(&request, payload, RESPONSE_BODY_LIMIT).await?;
    // A body that is no well-formed JSON object is read as a value, which says what is wrong.
    let read = match RawSubmission::from_slice(&body) {
        Some(raw) => Ok(raw),
        None => RawSubmission::from_value(parse_json(&body)?),
    };
    let submission = read.and_then(|raw| raw.parse(&[])).map_err(|problems| {
        state.metrics.refused(Channel::Api, "invalid");
        invalid(problems)
    })?;
    let campaign_id = submission.campaign.clone();
    let context = contexts(&state, vec![campaign_id.clone()])
        .await?
        .remove(&campaign_id)
        .ok_or_else(|| invalid(vec![unknown_campaign(&campaign_id)]))?;
    let origin = Origin { channel: Channel::Api, principal: Some(principal) };
    let prepared = match intake::prepare(context, submission, &origin, Utc::now(), &state.dossier_secret, idempotency) {
        Ok(prepared) => prepared,
        Err(Refusal::OutsideWindow { problems, idempotency }) => {
            let recorded = db::run(&state.pool, move |conn| recorded_outcome(conn, &idempotency)).await?;
            if recorded.is_none() {
                state.metrics.refused(Channel::Api, "invalid");
            }
            return single_result(recorded.ok_or_else(|| invalid(problems))?);
        }
        Err(refusal) => {
            state.metrics.refused(Channel::Api, refusal.reason());
            return Err(match refusal {
                Refusal::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
                Refusal::Invalid(problems) | Refusal::OutsideWindow { problems, .. } => invalid(problems),
            });
        }
    };
    let outcome = state.writer.write(vec![prepared]).await?.into_iter().next();
    single_result(outcome.ok_or_else(|| ApiError::new(ErrorCode::Internal, "the writer returned no result"))?)
}

/// The answer to a single posted response, from the writer's outcome (or a recorded one).
fn single_result(outcome: ItemOutcome) -> Result<HttpResponse, ApiError> {
    match outcome {
        ItemOutcome::Created { id, received_at } => Ok(HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/v1/responses/{id}")))
            .content_type("application/json")
            .body(intake::writer::created_record(&id, received_at))),
        ItemOutcome::Replayed { status, record } => {
            let mut response = match status {
                201 => HttpResponse::Created().content_type("application/json").body(record),
                _ if record == DOSSIER_CONFLICT_RECORD => actix_web::ResponseError::error_response(&dossier_conflict()),
                _ => actix_web::ResponseError::error_response(&ApiError::new(
                    ErrorCode::Internal,
                    "unknown recorded result",
                )),
            };
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));
            Ok(response)
        }
        ItemOutcome::KeyReused => Err(key_reused()),
        ItemOutcome::InvitationUsed => {
            Err(ApiError::new(ErrorCode::InvitationUsed, "the invitation's link has already been used"))
        }
        ItemOutcome::DossierConflict => Err(dossier_conflict()),
    }
}

/// Posts up to `batch_max_items` responses in one request, each with its own `client_id`
/// (its idempotency key). Valid items are stored even when others are refused; results come in
/// item order.
#[utoipa::path(tag = "responses",
    request_body(content = BatchBody, description = "Responses, each with its `client_id`"),
    responses((status = 200, body = BatchResults), (status = 400, body = crate::error::Problem), (status = 413, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[post("/responses/batch")]
pub async fn batch(
    state: web::Data<AppState>,
    key: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<BatchResults>, ApiError> {
    let principal = poster(key)?;
    let max_items = state.settings.batch_max_items.max(1);
    let body = super::read_json(&request, payload, max_items * BATCH_BYTES_PER_ITEM).await?;
    // Items are read without building JSON objects of their answers; a body that is not
    // `{"items": [object, …]}` is read as a value, which says what is wrong.
    let items: Vec<Option<RawSubmission>> = match intake::RawBatch::from_slice(&body) {
        Some(batch) => batch.items.into_iter().map(Some).collect(),
        None => items_of(parse_json(&body)?)?,
    };
    if items.len() > max_items {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("{} items; at most {max_items} per batch", items.len()),
        ));
    }
    let origin = Origin { channel: Channel::Api, principal: Some(principal) };
    let campaign_ids: Vec<String> = items
        .iter()
        .filter_map(|item| item.as_ref()?.text_field("campaign").map(str::to_owned))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let contexts = contexts(&state, campaign_ids).await?;
    let now = Utc::now();
    let mut results: Vec<BatchResult> = Vec::with_capacity(items.len());
    let mut to_write: Vec<(usize, Prepared)> = Vec::new();
    // Items outside their campaign's window that may be retries: answered from their first result.
    let mut to_look_up: Vec<(usize, Vec<SubmissionProblem>, Idempotency)> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        // An item that is not an object has no client_id either.
        let client_id = item.as_ref().and_then(|raw| raw.text_field("client_id")).map(str::to_owned);
        let refuse = |status: u16, problems: Vec<SubmissionProblem>| BatchResult {
            client_id: client_id.clone(),
            status,
            id: None,
            received_at: None,
            errors: problems_to_errors(problems),
        };
        let (Some(item), Some(key)) = (item, client_id.clone().filter(|k| intake::valid_idempotency_key(k))) else {
            results.push(refuse(
                422,
                vec![SubmissionProblem {
                    field: "client_id".to_owned(),
                    code: "required",
                    message: "each item needs a client_id of 1–255 printable characters".to_owned(),
                }],
            ));
            continue;
        };
        let submission = match item.parse(&["client_id"]) {
            Ok(submission) => submission,
            Err(problems) => {
                state.metrics.refused(Channel::Api, "invalid");
                results.push(refuse(422, problems));
                continue;
            }
        };
        let Some(context) = contexts.get(&submission.campaign).cloned() else {
            state.metrics.refused(Channel::Api, "invalid");
            results.push(refuse(422, vec![unknown_campaign(&submission.campaign)]));
            continue;
        };
        match intake::prepare(context, submission, &origin, now, &state.dossier_secret, Some(key)) {
            Ok(prepared) => {
                to_write.push((index, prepared));
                results.push(refuse(0, Vec::new()));
            }
            Err(Refusal::OutsideWindow { problems, idempotency }) => {
                to_look_up.push((index, problems, idempotency));
                results.push(refuse(0, Vec::new()));
            }
            Err(refusal) => {
                state.metrics.refused(Channel::Api, refusal.reason());
                results.push(match refusal {
                    Refusal::Invalid(problems) | Refusal::OutsideWindow { problems, .. } => refuse(422, problems),
                    Refusal::Forbidden(message) => {
                        refuse(403, vec![SubmissionProblem { field: "agency".to_owned(), code: "forbidden", message }])
                    }
                });
            }
        }
    }
    let (mut indexes, prepared): (Vec<usize>, Vec<Prepared>) = to_write.into_iter().unzip();
    let mut outcomes = if prepared.is_empty() { Vec::new() } else { state.writer.write(prepared).await? };
    if !to_look_up.is_empty() {
        let recorded = db::run(&state.pool, move |conn| {
            to_look_up
                .into_iter()
                .map(|(index, problems, idempotency)| Ok((index, problems, recorded_outcome(conn, &idempotency)?)))
                .collect::<Result<Vec<_>, crate::db::DbError>>()
        })
        .await?;
        for (index, problems, outcome) in recorded {
            match outcome {
                Some(outcome) => {
                    indexes.push(index);
                    outcomes.push(outcome);
                }
                None => {
                    state.metrics.refused(Channel::Api, "invalid");
                    results[index].status = 422;
                    results[index].errors = problems_to_errors(problems);
                }
            }
        }
    }
    for (index, outcome) in indexes.into_iter().zip(outcomes) {
        let result = &mut results[index];
        match outcome {
            ItemOutcome::Created { id, received_at } => {
                result.status = 201;
                result.id = Some(id);
                result.received_at = Some(received_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            }
            ItemOutcome::Replayed { status, record } => {
                result.status = status;
                if let Ok(recorded) = serde_json::from_str::<Value>(&record) {
                    result.id = recorded.get("id").and_then(Value::as_str).map(str::to_owned);
                    result.received_at = recorded.get("received_at").and_then(Value::as_str).map(str::to_owned);
                }
                if status == 409 {
                    result.errors = dossier_conflict_errors();
                }
            }
            ItemOutcome::InvitationUsed => {
                result.status = 410;
                result.errors = vec![FieldError {
                    field: "invitation".to_owned(),
                    code: "invitation_used".to_owned(),
                    message: "the invitation's link has already been used".to_owned(),
                }];
            }
            ItemOutcome::KeyReused => {
                result.status = 409;
                result.errors = vec![FieldError {
                    field: "client_id".to_owned(),
                    code: "idempotency_key_reused".to_owned(),
                    message: "this client_id was used for a different response".to_owned(),
                }];
            }
            ItemOutcome::DossierConflict => {
                result.status = 409;
                result.errors = dossier_conflict_errors();
            }
        }
    }
    Ok(web::Json(BatchResults { results }))
}

/// The items of a batch body read as a value (`None`: an item that is not an object).
fn items_of(mut body: Value) -> Result<Vec<Option<RawSubmission<'static>>>, ApiError> {
    match body.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => Ok(items.into_iter().map(|item| RawSubmission::from_value(item).ok()).collect()),
        _ => Err(ApiError::new(ErrorCode::MalformedBody, "the body must be {\"items\": [...]}").with_errors(vec![
            FieldError {
                field: "items".to_owned(),
                code: "required".to_owned(),
                message: "an array of responses".to_owned(),
            },
        ])),
    }
}

fn dossier_conflict_errors() -> Vec<FieldError> {
    vec![FieldError {
        field: "dossier".to_owned(),
        code: "dossier_already_rated".to_owned(),
        message: "this dossier has already been rated in this campaign and agency".to_owned(),
    }]
}

/// One stored response (analysts and admins).
#[utoipa::path(tag = "responses", params(("id" = String, Path)), responses((status = 200, body = StoredResponse), (status = 404, body = crate::error::Problem)), security(("api_key" = [])))]
#[get("/responses/{id}")]
pub async fn detail(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
) -> Result<web::Json<StoredResponse>, ApiError> {
    let limited_to = key.require(&[Role::Analyst, Role::Admin])?.read_limit();
    let id = id.into_inner();
    let lookup = id.clone();
    let cache = state.campaigns.clone();
    let stored = db::run(&state.pool, move |conn| {
        let Some(row) = crate::intake::store::response(conn, &lookup)? else { return Ok::<_, ApiError>(None) };
        let context =
            cache.get(conn, &row.campaign_id)?.ok_or_else(|| ApiError::new(ErrorCode::Internal, "campaign missing"))?;
        // A response of an agency outside the key's limit is, to that key, no response: saying
        // it exists would already tell something.
        if let Some(limit) = &limited_to
            && !context.tree.find(&row.agency_code).is_some_and(|node| context.tree.within(node.id, limit))
        {
            return Ok(None);
        }
        Ok(Some((row, context)))
    })
    .await?;
    let (row, context) =
        stored.ok_or_else(|| ApiError::new(ErrorCode::ResponseNotFound, format!("no response `{id}`")))?;
    let answers = crate::survey::answers::Answers::decode(&context.definition, &row.answers).map_err(|e| {
        tracing::error!(response.id = %row.id, error.cause = %e, "stored answers do not decode");
        ApiError::new(ErrorCode::Internal, "the stored response could not be read")
    })?;
    Ok(web::Json(StoredResponse {
        id: row.id,
        campaign: row.campaign_id,
        agency: row.agency_code,
        survey: context.campaign.survey.clone(),
        version: context.campaign.version,
        respondent_type: row.respondent_type,
        answers: answers.to_object(&context.definition),
        received_at: chrono::DateTime::<Utc>::from_naive_utc_and_offset(row.received_at, Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    }))
}
