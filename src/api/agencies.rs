//! The agency registry, read-only and public: listings at a date and one agency with its parents,
//! predecessors and successors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use actix_web::{get, web};

use crate::agency::store::{self, AgencyFilter, ListPosition, Succession};
use crate::agency::{Agency, today};
use crate::app::AppState;
use crate::db;
use crate::error::{ApiError, ErrorCode};

/// Default page size of agency listings.
const DEFAULT_LIMIT: i64 = 100;
/// Largest page size of agency listings.
const MAX_LIMIT: i64 = 1_000;

/// An agency's name per language.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyName {
    /// Vietnamese (official).
    pub vi: String,
    /// English, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

/// An agency as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyView {
    /// Official code (unique at any one date, reused across eras).
    pub code: String,
    /// Names.
    pub name: AgencyName,
    /// Level in the hierarchy.
    pub level: String,
    /// Official type of unit.
    pub division_type: Option<String>,
    /// Code of the parent.
    pub parent: Option<String>,
    /// First day valid (`null`: since before the registry's records).
    pub valid_from: Option<NaiveDate>,
    /// Last day valid (`null`: still valid).
    pub valid_to: Option<NaiveDate>,
}

impl AgencyView {
    fn new(agency: Agency, parent: Option<String>) -> Self {
        Self {
            code: agency.code,
            name: AgencyName { vi: agency.name_vi, en: agency.name_en },
            level: agency.level,
            division_type: agency.division_type,
            parent,
            valid_from: agency.valid_from,
            valid_to: agency.valid_to,
        }
    }
}

/// A page of agencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyPage {
    /// The agencies on this page.
    pub items: Vec<AgencyView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A short reference to another agency.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyRef {
    /// Code.
    pub code: String,
    /// Names.
    pub name: AgencyName,
    /// Level.
    pub level: String,
    /// First day valid.
    pub valid_from: Option<NaiveDate>,
    /// Last day valid.
    pub valid_to: Option<NaiveDate>,
}

impl From<Agency> for AgencyRef {
    fn from(agency: Agency) -> Self {
        Self {
            code: agency.code,
            name: AgencyName { vi: agency.name_vi, en: agency.name_en },
            level: agency.level,
            valid_from: agency.valid_from,
            valid_to: agency.valid_to,
        }
    }
}

/// A succession across a reorganisation.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessionView {
    /// The agency on the other side.
    pub agency: AgencyRef,
    /// The day the successor took over.
    pub effective_on: NaiveDate,
}

impl From<Succession> for SuccessionView {
    fn from(succession: Succession) -> Self {
        Self { agency: succession.agency.into(), effective_on: succession.effective_on }
    }
}

/// One agency with its context.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyDetail {
    /// The agency.
    #[serde(flatten)]
    pub agency: AgencyView,
    /// Parents from the immediate one up to the root.
    pub parents: Vec<AgencyRef>,
    /// Number of direct children valid on the requested date.
    pub children: i64,
    /// Agencies this one took over from.
    pub predecessors: Vec<SuccessionView>,
    /// Agencies that took this one over.
    pub successors: Vec<SuccessionView>,
}

/// Parameters of an agency listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only the direct children of the agency with this code.
    parent: Option<String>,
    /// Only this level (`province`, `commune`, …).
    level: Option<String>,
    /// Text in the name or the code; diacritics optional ("Ha Noi" finds "Hà Nội").
    q: Option<String>,
    /// Date the agencies must be valid on (YYYY-MM-DD; default today in Vietnam).
    #[param(format = Date)]
    at: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// Cursor from the previous page's `next_cursor`.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// Parameters of a single agency lookup.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AtParams {
    /// Date at which the code is resolved (YYYY-MM-DD; default today in Vietnam).
    #[param(format = Date)]
    at: Option<String>,
}

fn parse_date(field: &str, value: Option<&str>) -> Result<NaiveDate, ApiError> {
    match value {
        None => Ok(today()),
        Some(text) => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| ApiError::invalid_parameter(field, format!("`{text}` is not a date (YYYY-MM-DD)"))),
    }
}

fn encode_cursor(position: &ListPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", position.id, position.code))
}

fn decode_cursor(cursor: &str) -> Result<ListPosition, ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidCursor, "pass the `next_cursor` of a previous page unchanged");
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (id, code) = text.split_once(':').ok_or_else(invalid)?;
    Ok(ListPosition { code: code.to_owned(), id: id.parse().map_err(|_| invalid())? })
}

/// Lists the agencies valid on a date, filtered and paginated.
#[utoipa::path(
    tag = "agencies",
    params(ListParams),
    responses((status = 200, body = AgencyPage), (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem))
)]
#[get("/agencies")]
pub async fn list(
    state: web::Data<AppState>,
    params: super::Query<ListParams>,
) -> Result<web::Json<AgencyPage>, ApiError> {
    let params = params.into_inner();
    let at = parse_date("at", params.at.as_deref())?;
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text.trim().parse::<i64>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            ApiError::invalid_parameter("limit", format!("must be a whole number from 1 to {MAX_LIMIT}"))
        })?,
    };
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    if let Some(level) = &params.level
        && (level.is_empty() || level.len() > 32 || !level.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        return Err(ApiError::invalid_parameter("level", "must be lowercase letters or '_'"));
    }
    let text = params.q.filter(|q| !q.trim().is_empty());
    if text.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid_parameter("q", "at most 200 characters"));
    }
    let page = db::run(&state.pool, move |conn| {
        let parent = match params.parent {
            None => None,
            Some(code) => Some(
                store::resolve(conn, &code, at)?
                    .ok_or_else(|| ApiError::new(ErrorCode::AgencyNotFound, format!("no agency `{code}` on {at}")))?
                    .agency_id(),
            ),
        };
        let filter = AgencyFilter { at, parent, level: params.level, text, after, limit: limit + 1 };
        let mut rows = store::list(conn, &filter)?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let parent_ids: Vec<i64> = rows.iter().filter_map(|a| a.parent_id).collect();
        let parent_codes = store::codes_by_id(conn, &parent_ids)?;
        let next_cursor = has_more
            .then(|| rows.last().map(|a| encode_cursor(&ListPosition { code: a.code.clone(), id: a.id })))
            .flatten();
        let items = rows
            .into_iter()
            .map(|a| {
                let parent = a.parent_id.and_then(|id| parent_codes.get(&id).cloned());
                AgencyView::new(a, parent)
            })
            .collect();
        Ok::<_, ApiError>(AgencyPage { items, next_cursor })
    })
    .await?;
    Ok(web::Json(page))
}

/// One agency, with its parent chain, predecessors and successors.
#[utoipa::path(
    tag = "agencies",
    params(("code" = String, Path, description = "Official code"), AtParams),
    responses((status = 200, body = AgencyDetail), (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem))
)]
#[get("/agencies/{code}")]
pub async fn detail(
    state: web::Data<AppState>,
    code: web::Path<String>,
    params: super::Query<AtParams>,
) -> Result<web::Json<AgencyDetail>, ApiError> {
    let code = code.into_inner();
    let at = parse_date("at", params.at.as_deref())?;
    let detail = db::run(&state.pool, move |conn| {
        let Some(agency) = store::resolve(conn, &code, at)? else {
            let others = store::all_with_code(conn, &code)?;
            let hint: Vec<String> = others
                .iter()
                .map(|a| {
                    let from = a.valid_from.map_or_else(|| "…".to_owned(), |d| d.to_string());
                    let to = a.valid_to.map_or_else(|| "…".to_owned(), |d| d.to_string());
                    format!("`{code}` was {} from {from} to {to}", a.name_vi)
                })
                .collect();
            let detail = if hint.is_empty() {
                format!("no agency `{code}`")
            } else {
                format!("no agency `{code}` on {at}; {} (ask with `at=`)", hint.join("; "))
            };
            return Err(ApiError::new(ErrorCode::AgencyNotFound, detail));
        };
        let parents = store::ancestors(conn, &agency)?;
        let children = store::child_count(conn, agency.agency_id(), at)?;
        let predecessors = store::predecessors(conn, agency.agency_id())?;
        let successors = store::successors(conn, agency.agency_id())?;
        let parent_code = parents.first().map(|p| p.code.clone());
        Ok(AgencyDetail {
            agency: AgencyView::new(agency, parent_code),
            parents: parents.into_iter().map(AgencyRef::from).collect(),
            children,
            predecessors: predecessors.into_iter().map(SuccessionView::from).collect(),
            successors: successors.into_iter().map(SuccessionView::from).collect(),
        })
    })
    .await?;
    Ok(web::Json(detail))
}
