//! Statistics, population counts, microdata, codebook and reliability of a campaign (analyst or
//! admin keys).

use std::io::Write;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, put, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use crate::app::AppState;
use crate::auth::Role;
use crate::campaign::context::CampaignContext;
use crate::db::{self, DbError};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::report::microdata::{self, Codebook, ExportError, MicrodataFormat, Reliability, XLSX_MAX_ROWS};
use crate::report::output::StatsReport;
use crate::report::{self, ReportError, Rollup, Scope, StatsRequest, Weights, population};
use crate::stats::Confidence;

/// Largest population table accepted.
const POPULATION_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Output formats of the stats endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatsFormat {
    /// JSON (default).
    #[default]
    Json,
    /// One row per unit and measure.
    Csv,
    /// A sheet per level.
    Xlsx,
}

/// Languages of labels, as the document names them (the handlers read `lang` as text and refuse
/// others naming the parameter).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LabelLanguage {
    /// Vietnamese (default).
    Vi,
    /// English.
    En,
}

/// Formats of the codebook, as the document names them (the query reads a [`StatsFormat`] and
/// refuses `xlsx` naming the parameter).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CodebookFormat {
    /// JSON (default).
    Json,
    /// One row per value label.
    Csv,
}

/// Query of `GET /api/v1/campaigns/{id}/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Agency code (default: the top of the campaign's tree; for a key limited to agencies, its
    /// own agency in the campaign). A limited key may name only its agencies and those below.
    pub agency: Option<String>,
    /// `self` (the agency, against its parent) or `children` (default).
    pub scope: Option<Scope>,
    /// `mean_of_units` (default) or `pooled`.
    pub method: Option<Rollup>,
    /// `none` (default) or `cells`.
    pub weights: Option<Weights>,
    /// A breakdown question id or `respondent_type`.
    pub breakdown: Option<String>,
    /// An earlier campaign of the same survey to compare with.
    #[param(min_length = 1)]
    pub compare: Option<String>,
    /// Confidence level, 0.5 to 0.999 (default 0.95).
    #[param(minimum = 0.5, maximum = 0.999)]
    pub confidence: Option<f64>,
    /// `json` (default), `csv` or `xlsx`.
    pub format: Option<StatsFormat>,
    /// Language of labels: `vi` (default) or `en`.
    #[param(value_type = Option<LabelLanguage>)]
    pub lang: Option<String>,
}

fn language(lang: Option<&str>) -> Result<String, ApiError> {
    match lang.unwrap_or("vi") {
        "vi" | "en" => Ok(lang.unwrap_or("vi").to_owned()),
        other => Err(ApiError::invalid_parameter("lang", format!("`{other}` is not one of vi, en"))),
    }
}

fn report_error(error: ReportError) -> ApiError {
    match error {
        ReportError::CampaignNotFound(id) => ApiError::new(ErrorCode::CampaignNotFound, format!("no campaign `{id}`")),
        ReportError::AgencyNotInCampaign(code, campaign) => ApiError::new(
            ErrorCode::AgencyNotInCampaign,
            format!("agency `{code}` is not part of campaign `{campaign}`"),
        )
        .with_errors(vec![FieldError {
            field: "agency".to_owned(),
            code: "not_in_campaign".to_owned(),
            message: format!("`{code}` is not an agency of this campaign"),
        }]),
        ReportError::InvalidParameter { field, message } => ApiError::invalid_parameter(field, message),
        error @ ReportError::PopulationMissing(_) => ApiError::new(ErrorCode::PopulationMissing, error.to_string())
            .with_errors(vec![FieldError {
                field: "weights".to_owned(),
                code: "population_missing".to_owned(),
                message: "no population counts for this campaign".to_owned(),
            }]),
        error @ ReportError::NotComparable(..) => ApiError::new(ErrorCode::CampaignsNotComparable, error.to_string())
            .with_errors(vec![FieldError {
                field: "compare".to_owned(),
                code: "other_survey".to_owned(),
                message: error.to_string(),
            }]),
        error @ ReportError::OutsideKeyScope { .. } => {
            let message = error.to_string();
            ApiError::new(ErrorCode::Forbidden, message.clone()).with_errors(vec![FieldError {
                field: "agency".to_owned(),
                code: "outside_key_scope".to_owned(),
                message,
            }])
        }
        ReportError::Db(error) => error.into(),
    }
}

/// The agencies an analyst or admin key may read (`None`: all), or 403 for other roles.
fn analyst(key: Authenticated) -> Result<Option<Vec<i64>>, ApiError> {
    key.require(&[Role::Analyst, Role::Admin]).map(|principal| principal.read_limit())
}

/// The population table spans the whole campaign: a key limited to some agencies reads and
/// replaces it only when the top of the campaign's tree is within them.
fn whole_campaign(context: &CampaignContext, limited_to: Option<&[i64]>) -> Result<(), ReportError> {
    let (Some(limit), root) = (limited_to, context.tree.root.unwrap_or_default()) else { return Ok(()) };
    if context.tree.within(root, limit) {
        return Ok(());
    }
    Err(ReportError::outside_key_scope(&context.tree, root, limit))
}

fn attachment(name: &str) -> (header::HeaderName, String) {
    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))
}

/// SIPAS estimates of a campaign for an agency or its children, with intervals, suppression,
/// ranks and comparisons, as JSON, CSV or XLSX.
#[utoipa::path(tag = "statistics", params(("id" = String, Path), StatsQuery),
    responses(
        (status = 200, description = "JSON; `text/csv` or an XLSX workbook with `format=`", content(
            (StatsReport = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        )),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)
    ),
    security(("api_key" = [])))]
#[get("/campaigns/{id}/stats")]
pub async fn stats(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
    query: super::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limited_to = analyst(key)?;
    let query = query.into_inner();
    let confidence = match query.confidence {
        None => Confidence::default(),
        Some(level) => Confidence::new(level).filter(|c| c.level <= 0.999).ok_or_else(|| {
            ApiError::invalid_parameter("confidence", format!("{level} is not a level between 0.5 and 0.999"))
        })?,
    };
    let request = StatsRequest {
        agency: query.agency,
        scope: query.scope.unwrap_or_default(),
        rollup: query.method.unwrap_or_default(),
        weights: query.weights.unwrap_or_default(),
        breakdown: query.breakdown,
        compare: query.compare,
        confidence,
        language: language(query.lang.as_deref())?,
        limited_to,
    };
    let campaign = id.into_inner();
    let cache = state.campaigns.clone();
    let started = std::time::Instant::now();
    let lookup = campaign.clone();
    let build = request.clone();
    let report =
        db::run(&state.pool, move |conn| report::stats(conn, &cache, &lookup, &build)).await.map_err(report_error)?;
    let timing = format!("stats;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0);
    match query.format.unwrap_or_default() {
        StatsFormat::Json => Ok(HttpResponse::Ok().insert_header(("Server-Timing", timing)).json(report)),
        StatsFormat::Csv => {
            let body = report::export::stats_csv(&report)
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("CSV encoding failed: {e}")))?;
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header(attachment(&format!("{campaign}-stats.csv")))
                .insert_header(("Server-Timing", timing))
                .body(body))
        }
        StatsFormat::Xlsx => {
            let body = report::export::stats_xlsx(&report, &request.language)
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("XLSX encoding failed: {e}")))?;
            Ok(HttpResponse::Ok()
                .content_type(MicrodataFormat::Xlsx.media_type())
                .insert_header(attachment(&format!("{campaign}-stats.xlsx")))
                .insert_header(("Server-Timing", timing))
                .body(body))
        }
    }
}

/// Replaces the campaign's population counts (CSV: `agency,<weighting questions…>,population`).
#[utoipa::path(tag = "statistics", params(("id" = String, Path)),
    request_body(content = String, content_type = "text/csv", description = "agency,gender,age_band,population"),
    responses(
        (status = 200, description = "Rows stored", body = Object),
        (status = 404, body = crate::error::Problem), (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)
    ),
    security(("api_key" = [])))]
#[put("/campaigns/{id}/population")]
pub async fn put_population(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let principal = key.require(&[Role::Analyst, Role::Admin])?;
    let (analyst_key, limited_to) = (principal.key_id, principal.read_limit());
    if super::media_type(&request) != "text/csv" {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the population table as text/csv"));
    }
    let body = super::read_body(&request, payload, POPULATION_BODY_LIMIT).await?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(ErrorCode::MalformedBody, "the population table is not UTF-8"))?;
    let campaign = id.into_inner();
    let cache = state.campaigns.clone();
    let outcome = db::run(&state.pool, move |conn| {
        let Some(context) = cache.get(conn, &campaign)? else { return Ok(Err(None)) };
        whole_campaign(&context, limited_to.as_deref())?;
        match population::parse(&context, &text) {
            Ok(rows) => crate::audit::audited(
                conn,
                crate::audit::Actor::Key(analyst_key),
                "population.replaced",
                |conn| population::replace(conn, &campaign, &rows),
                |n| Some((campaign.clone(), serde_json::json!({"rows": n}))),
            )
            .map(|n| Ok((n, rows.len())))
            .map_err(ReportError::from),
            Err(problems) => Ok(Err(Some(problems))),
        }
    })
    .await
    .map_err(report_error)?;
    match outcome {
        Ok((rows, _)) => Ok(HttpResponse::Ok().json(serde_json::json!({"rows": rows}))),
        Err(None) => Err(ApiError::new(ErrorCode::CampaignNotFound, "no such campaign")),
        Err(Some(problems)) => Err(super::rows_refused(
            ErrorCode::InvalidPopulation,
            format!("{} problem(s) in the population table; nothing was stored", problems.len()),
            problems.into_iter().map(|p| (format!("line {}", p.line), p.field, p.message)),
        )),
    }
}

/// The campaign's population counts as CSV, in the upload format.
#[utoipa::path(tag = "statistics", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[get("/campaigns/{id}/population")]
pub async fn get_population(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let limited_to = analyst(key)?;
    let campaign = id.into_inner();
    let cache = state.campaigns.clone();
    let csv = db::run(&state.pool, move |conn| {
        let Some(context) = cache.get(conn, &campaign)? else { return Ok::<_, ReportError>(None) };
        whole_campaign(&context, limited_to.as_deref())?;
        let table = population::load(conn, &campaign)?;
        Ok(Some(population::to_csv(&context, &table)))
    })
    .await
    .map_err(report_error)?;
    let csv = csv.ok_or_else(|| ApiError::new(ErrorCode::CampaignNotFound, "no such campaign"))?;
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(csv))
}

/// Query of the microdata export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MicrodataQuery {
    /// `csv` (default), `ndjson` or `xlsx`.
    pub format: Option<MicrodataFormat>,
    /// Only the responses of this agency and its subtree (a key limited to agencies: its own
    /// agency by default, and only its agencies and those below).
    pub agency: Option<String>,
}

/// Writes into a channel in chunks, so that a blocking export streams into an HTTP body.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// Anonymous response rows (one column per question, value codes), streamed: no page cap, flat
/// memory. No key, dossier hash or exact time is included.
#[utoipa::path(tag = "statistics", params(("id" = String, Path), MicrodataQuery),
    responses(
        (status = 200, description = "CSV, NDJSON or XLSX", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        )),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)
    ),
    security(("api_key" = [])))]
#[get("/campaigns/{id}/responses")]
pub async fn export_responses(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
    query: super::Query<MicrodataQuery>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let limited_to = analyst(key)?;
    let format = query.format.unwrap_or(MicrodataFormat::Csv);
    let campaign = id.into_inner();
    let cache = state.campaigns.clone();
    let code = query.agency.clone();
    let lookup = campaign.clone();
    let (context, agencies) = db::run(&state.pool, move |conn| {
        let context = cache.get(conn, &lookup)?.ok_or_else(|| ReportError::CampaignNotFound(lookup.clone()))?;
        let agencies = if code.is_none() && limited_to.is_none() {
            None
        } else {
            let node = report::readable_agency(&context.tree, &lookup, code.as_deref(), limited_to.as_deref())?;
            (Some(node) != context.tree.root).then(|| microdata::subtree(&context, node))
        };
        Ok::<_, ReportError>((context, agencies))
    })
    .await
    .map_err(report_error)?;
    if format == MicrodataFormat::Xlsx && context.campaign.responses as u64 > XLSX_MAX_ROWS && agencies.is_none() {
        return Err(ApiError::invalid_parameter(
            "format",
            format!(
                "{} responses do not fit one worksheet (at most {XLSX_MAX_ROWS}): use csv or ndjson",
                context.campaign.responses
            ),
        ));
    }
    // Synthetic (demo) responses say so in the file's name and a header, as every other view of
    // them does; the columns stay those of real exports.
    let (name, synthetic) = if context.campaign.synthetic {
        (format!("{campaign}-SYNTHETIC-responses.{}", format.extension()), "true")
    } else {
        (format!("{campaign}-responses.{}", format.extension()), "false")
    };
    let mut response = HttpResponse::Ok();
    response
        .content_type(format.media_type())
        .insert_header(attachment(&name))
        .insert_header(("Synthetic-Data", synthetic));
    // HEAD gets the headers of GET and no body: the export, which would only be thrown away, is
    // not run.
    if super::sent_as_head(&request) {
        return Ok(response.streaming(futures_util::stream::empty::<Result<Bytes, std::io::Error>>()));
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let pool = state.pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut writer = ChannelWriter { sender: sender.clone(), buffer: Vec::with_capacity(CHUNK) };
        let outcome = pool
            .get()
            .map_err(|e| ExportError::Db(DbError::Unavailable(e.to_string())))
            .and_then(|mut conn| {
                microdata::export_responses(&mut conn, &context, agencies.as_ref(), format, &mut writer, &mut |_| {})
            })
            .and_then(|count| writer.flush().map(|_| count).map_err(ExportError::from));
        match outcome {
            Ok(count) => tracing::info!(export.responses = count, "microdata exported"),
            Err(error) => {
                tracing::warn!(error.cause = %error, "microdata export stopped");
                // The status is already sent: end the body with an error so the client sees a
                // truncated transfer rather than a short file that looks complete.
                let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok(response.streaming(body))
}

/// Query of the codebook.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CodebookQuery {
    /// `json` (default) or `csv`.
    #[param(value_type = Option<CodebookFormat>)]
    pub format: Option<StatsFormat>,
}

/// The questions and value labels (vi and en) of the microdata columns.
#[utoipa::path(tag = "statistics", params(("id" = String, Path), CodebookQuery),
    responses((status = 200, description = "JSON, or CSV with `format=csv`", content(
        (Codebook = "application/json"),
        (String = "text/csv")
    )), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[get("/campaigns/{id}/codebook")]
pub async fn get_codebook(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
    query: super::Query<CodebookQuery>,
) -> Result<HttpResponse, ApiError> {
    analyst(key)?;
    let campaign = id.into_inner();
    let cache = state.campaigns.clone();
    let lookup = campaign.clone();
    let context = db::run(&state.pool, move |conn| cache.get(conn, &lookup))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::CampaignNotFound, format!("no campaign `{campaign}`")))?;
    let book = microdata::codebook(&context);
    match query.format.unwrap_or_default() {
        StatsFormat::Json => Ok(HttpResponse::Ok().json(book)),
        StatsFormat::Csv => {
            let body = microdata::codebook_csv(&book)
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("CSV encoding failed: {e}")))?;
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header(attachment(&format!("{campaign}-codebook.csv")))
                .body(body))
        }
        StatsFormat::Xlsx => Err(ApiError::invalid_parameter("format", "the codebook comes as json or csv")),
    }
}

/// Query of the reliability endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityQuery {
    /// Agency code (default: the top of the campaign's tree; for a key limited to agencies, its
    /// own agency in the campaign).
    pub agency: Option<String>,
    /// Language of labels: `vi` (default) or `en`.
    #[param(value_type = Option<LabelLanguage>)]
    pub lang: Option<String>,
}

/// Cronbach's alpha per element, computed by streaming the stored answers.
#[utoipa::path(tag = "statistics", params(("id" = String, Path), ReliabilityQuery),
    responses((status = 200, body = Reliability), (status = 404, body = crate::error::Problem)),
    security(("api_key" = [])))]
#[get("/campaigns/{id}/reliability")]
pub async fn get_reliability(
    state: web::Data<AppState>,
    key: Authenticated,
    id: web::Path<String>,
    query: super::Query<ReliabilityQuery>,
) -> Result<web::Json<Reliability>, ApiError> {
    let limited_to = analyst(key)?;
    let language = language(query.lang.as_deref())?;
    let campaign = id.into_inner();
    let cache = state.campaigns.clone();
    let code = query.agency.clone();
    let result = db::run(&state.pool, move |conn| {
        let context = cache.get(conn, &campaign)?.ok_or_else(|| ReportError::CampaignNotFound(campaign.clone()))?;
        let agency = report::readable_agency(&context.tree, &campaign, code.as_deref(), limited_to.as_deref())?;
        microdata::reliability(conn, &context, agency, &language).map_err(|e| match e {
            ExportError::Db(db) => ReportError::Db(db),
            other => ReportError::Db(DbError::Corrupt(other.to_string())),
        })
    })
    .await
    .map_err(report_error)?;
    Ok(web::Json(result))
}
