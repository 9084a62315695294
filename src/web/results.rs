//! The results pages: what analysts and the public look at. Server-rendered, inline SVG, no
//! JavaScript. Every figure comes from [`crate::report::stats`], the same function behind
//! `GET /api/v1/campaigns/{id}/stats`; the page only rounds it for display in its language.
//!
//! A campaign's pages are public once an admin sets `results_public`; otherwise only signed-in
//! analysts (see [`super::session`]) see them. Anonymous visitors get the same answer for a
//! campaign that does not exist as for one that is not public, so nothing about unpublished
//! campaigns leaks.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};

use super::charts::{self, BarRow, DotRow, Frame, TrendPoint};
use super::form::{csrf_cookie, csrf_token, language, new_cookie_value, query_value, render, set_cookie};
use super::session;
use super::texts::{ResultsTexts, results_texts};
use crate::app::AppState;
use crate::campaign::context::CampaignCache;
use crate::campaign::{self, Campaign};
use crate::db::{self, DbConnection, DbError};
use crate::report::output::{ChangeReport, MeasureReport, StatsReport, UnitReport};
use crate::report::{self, ReportError, Rollup, Scope, StatsRequest, Weights};
use crate::stats::Confidence;

/// The stylesheet of the results pages, compiled into the binary.
const RESULTS_CSS: &str = include_str!("../../static/results.css");

/// `GET /static/results.css`.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(RESULTS_CSS)
}

/// A number with two decimals in the page's language (Vietnamese writes a decimal comma).
pub fn decimal(value: f64, lang: &str) -> String {
    let mut text = format!("{value:.2}");
    if text == "-0.00" {
        text = "0.00".to_owned();
    }
    if lang == "vi" { text.replace('.', ",") } else { text }
}

/// A signed difference with two decimals (`+1,23`, `−0,45`).
pub fn signed(value: f64, lang: &str) -> String {
    let text = decimal(value.abs(), lang);
    if text.trim_start_matches(['0', ',', '.']).is_empty() {
        return text;
    }
    if value < 0.0 { format!("−{text}") } else { format!("+{text}") }
}

/// A count with thousands grouped the way the language does (`36.512` / `36,512`).
pub fn integer(value: u64, lang: &str) -> String {
    let digits = value.to_string();
    let separator = if lang == "vi" { '.' } else { ',' };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(c);
    }
    out
}

/// One row of a chart's table: a key for machines, a label (with a link where it leads to the
/// unit's own page) and the formatted cells.
#[derive(Debug, Clone)]
pub struct RowView {
    key: String,
    label: String,
    link: Option<String>,
    cells: Vec<String>,
}

/// A chart with its caption, legend and table.
#[derive(Debug, Clone)]
pub struct ChartView {
    id: &'static str,
    heading: String,
    note: String,
    svg: String,
    legend: Vec<(&'static str, String)>,
    headers: Vec<String>,
    rows: Vec<RowView>,
    after: Vec<String>,
    after_heading: String,
}

#[derive(Template)]
#[template(path = "results.html")]
struct ResultsPage<'a> {
    lang: &'a str,
    t: &'static ResultsTexts,
    switch_url: String,
    campaign_title: String,
    synthetic: bool,
    /// (link, name) from the top of the tree down to the unit; no link to an agency the viewer
    /// may not open.
    breadcrumbs: Vec<(Option<String>, String)>,
    unit_name: String,
    headline: Option<String>,
    interval: Option<String>,
    respondents: String,
    change: Option<String>,
    computed: String,
    charts: Vec<ChartView>,
    choices: Vec<(String, String)>,
    campaign_id: String,
    csv_url: String,
    xlsx_url: String,
    other_campaigns: Vec<(String, String)>,
    signed_in: bool,
    csrf: String,
    here: String,
}

#[derive(Template)]
#[template(path = "results_index.html")]
struct IndexPage<'a> {
    lang: &'a str,
    t: &'static ResultsTexts,
    switch_url: String,
    campaigns: Vec<(String, String, bool)>,
    signed_in: bool,
    csrf: String,
    here: String,
}

#[derive(Template)]
#[template(path = "results_message.html")]
struct MessagePage<'a> {
    lang: &'a str,
    t: &'static ResultsTexts,
    heading: &'a str,
    body: &'a str,
    sign_in: Option<String>,
}

fn message(
    t: &'static ResultsTexts,
    status: StatusCode,
    heading: &str,
    body: &str,
    sign_in: Option<String>,
) -> HttpResponse {
    let mut response = render(&MessagePage { lang: t.lang, t, heading, body, sign_in }, status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    response
}

fn unavailable(t: &'static ResultsTexts, error: &DbError) -> HttpResponse {
    tracing::warn!(error.cause = %error, "results page could not reach the database");
    message(t, StatusCode::SERVICE_UNAVAILABLE, t.unavailable, t.unavailable, None)
}

fn login_url(here: &str, lang: &str) -> String {
    format!("/login?{}", serde_urlencoded::to_string([("lang", lang), ("next", here)]).unwrap_or_default())
}

/// The path and query of this request (where to come back after signing in).
fn here(request: &HttpRequest) -> String {
    let query = request.query_string();
    if query.is_empty() { request.path().to_owned() } else { format!("{}?{query}", request.path()) }
}

fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
    if pairs.is_empty() {
        return path.to_owned();
    }
    format!("{path}?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
}

/// Who is looking: signed in or not (and then limited to some agencies or not), and whether a
/// session cookie sent was not valid (to be removed).
struct Viewer {
    signed_in: bool,
    /// The agencies a signed-in analyst's key is limited to (`None`: all).
    limited_to: Option<Vec<i64>>,
    stale_cookie: bool,
}

impl Viewer {
    /// What this viewer may see of `campaign`: everything when its results are public, else
    /// what the key allows.
    fn limit_for(&self, campaign: &Campaign) -> Option<Vec<i64>> {
        if campaign.results_public { None } else { self.limited_to.clone() }
    }
}

async fn viewer(state: &AppState, request: &HttpRequest) -> Result<Viewer, DbError> {
    let principal = session::signed_in(state, request).await?;
    let signed_in = principal.is_some();
    let stale_cookie = !signed_in && request.cookie(session::SESSION_COOKIE).is_some();
    Ok(Viewer { signed_in, limited_to: principal.and_then(|p| p.read_limit()), stale_cookie })
}

fn finish(mut response: HttpResponse, viewer: &Viewer, state: &AppState, request: &HttpRequest) -> HttpResponse {
    if viewer.stale_cookie {
        response = session::forget_session(response);
    }
    // The sign-out form needs a CSRF cookie.
    if viewer.signed_in && csrf_cookie(request).is_none() {
        set_cookie(&mut response, &new_cookie_value(), state.settings.public_base().starts_with("https://"));
    }
    response
}

fn csrf_for(state: &AppState, request: &HttpRequest) -> String {
    csrf_cookie(request).map(|cookie| csrf_token(&state.dossier_secret, &cookie)).unwrap_or_default()
}

/// `GET /results`: the campaigns whose results the visitor may see.
pub async fn index(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let lang = language(&request, query_value(&request, "lang").as_deref());
    let t = results_texts(lang);
    let viewer = match viewer(&state, &request).await {
        Ok(viewer) => viewer,
        Err(error) => return unavailable(t, &error),
    };
    let campaigns = match db::run(&state.pool, campaign::list).await {
        Ok(campaigns) => campaigns,
        Err(error) => return unavailable(t, &error),
    };
    let campaigns = campaigns
        .into_iter()
        .filter(|c| viewer.signed_in || c.results_public)
        .map(|c| {
            (with_query(&format!("/results/{}", c.id), &[("lang", lang)]), c.title.get(lang).to_owned(), c.synthetic)
        })
        .collect();
    let page = IndexPage {
        lang,
        t,
        switch_url: with_query("/results", &[("lang", t.other_lang)]),
        campaigns,
        signed_in: viewer.signed_in,
        csrf: csrf_for(&state, &request),
        here: here(&request),
    };
    finish(render(&page, StatusCode::OK), &viewer, &state, &request)
}

/// An estimate with its interval: (value, lower, upper).
type Interval = (f64, f64, f64);

/// What one results view shows, computed in one database round.
struct View {
    report: StatsReport,
    /// The unit the page is about.
    code: String,
    /// Whether the report lists the unit's siblings (a unit without children) rather than its
    /// children.
    siblings: bool,
    /// The previous campaign compared with.
    previous: Option<Campaign>,
    /// (campaign, its index for this territory) from the oldest to this one.
    trend: Vec<(Campaign, Option<Interval>)>,
    /// (code, name, whether the viewer may open its page) from the top of the tree down to the
    /// unit.
    breadcrumbs: Vec<(String, String, bool)>,
}

fn request_for(
    agency: Option<String>,
    scope: Scope,
    compare: Option<String>,
    lang: &str,
    limited_to: Option<&[i64]>,
) -> StatsRequest {
    StatsRequest {
        limited_to: limited_to.map(<[i64]>::to_vec),
        agency,
        scope,
        rollup: Rollup::MeanOfUnits,
        weights: Weights::None,
        breakdown: None,
        compare,
        confidence: Confidence::default(),
        language: lang.to_owned(),
    }
}

/// The unit a report is about: its parent when it lists children, else the unit with the code.
fn unit_of<'r>(report: &'r StatsReport, code: &str) -> Option<&'r UnitReport> {
    report.parent.iter().find(|p| p.agency.code == code).or_else(|| report.units.iter().find(|u| u.agency.code == code))
}

/// The campaign's report for the page (the unit's children, or its siblings when it has none and
/// the viewer may see them), compared with `compare`.
fn page_report(
    conn: &mut DbConnection,
    cache: &CampaignCache,
    campaign: &str,
    agency: Option<&str>,
    compare: Option<String>,
    lang: &str,
    limited_to: Option<&[i64]>,
) -> Result<(StatsReport, String, bool), ReportError> {
    let children = report::stats(
        conn,
        cache,
        campaign,
        &request_for(agency.map(str::to_owned), Scope::Children, compare.clone(), lang, limited_to),
    )?;
    let code = match (&children.parent, agency) {
        (Some(parent), _) => parent.agency.code.clone(),
        (None, Some(code)) => code.to_owned(),
        (None, None) => String::new(),
    };
    if !children.units.is_empty() || children.parent.is_none() {
        return Ok((children, code, false));
    }
    // A unit without children is shown among its siblings: its parent's children.
    let context = cache.get(conn, campaign)?.ok_or_else(|| ReportError::CampaignNotFound(campaign.to_owned()))?;
    let parent = context.tree.find(&code).and_then(|n| n.parent).and_then(|p| context.tree.node(p));
    let Some(parent) = parent else { return Ok((children, code, false)) };
    let among_siblings = request_for(Some(parent.code.clone()), Scope::Children, compare, lang, limited_to);
    match report::stats(conn, cache, campaign, &among_siblings) {
        Ok(siblings) => Ok((siblings, code, true)),
        // The siblings lie outside what the viewer's key may see: the unit alone.
        Err(ReportError::OutsideKeyScope { .. }) => Ok((children, code, false)),
        Err(error) => Err(error),
    }
}

fn load_view(
    conn: &mut DbConnection,
    cache: &CampaignCache,
    current: &Campaign,
    earlier: &[Campaign],
    agency: Option<&str>,
    lang: &str,
    limited_to: Option<&[i64]>,
) -> Result<View, ReportError> {
    let previous = earlier.last().cloned();
    let (report, code, siblings) =
        page_report(conn, cache, &current.id, agency, previous.as_ref().map(|c| c.id.clone()), lang, limited_to)?;
    let mut trend = Vec::new();
    for campaign in earlier {
        let point = if previous.as_ref().is_some_and(|p| p.id == campaign.id) {
            unit_of(&report, &code).and_then(|u| u.figures.index.change.flatten())
        } else {
            let (other, _, _) =
                page_report(conn, cache, &current.id, Some(&code), Some(campaign.id.clone()), lang, limited_to)?;
            unit_of(&other, &code).and_then(|u| u.figures.index.change.flatten())
        };
        trend.push((campaign.clone(), point.map(|c| (c.previous, c.previous_ci_low, c.previous_ci_high))));
    }
    let now = unit_of(&report, &code).and_then(|u| {
        let m = &u.figures.index;
        Some((m.estimate?, m.ci_low?, m.ci_high?))
    });
    trend.push((current.clone(), now));
    let context = cache.get(conn, &current.id)?.ok_or_else(|| ReportError::CampaignNotFound(current.id.clone()))?;
    let mut breadcrumbs = Vec::new();
    let mut cursor = context.tree.find(&code).map(|n| n.id);
    while let Some(id) = cursor {
        let Some(node) = context.tree.node(id) else { break };
        // An ancestor above a limited key's agencies is named, for context, but not linked: its
        // page would only answer 403.
        let open = context.tree.readable(node.id, limited_to);
        breadcrumbs.push((node.code.clone(), node.name(lang).to_owned(), open));
        cursor = node.parent;
        if breadcrumbs.len() > 64 {
            break;
        }
    }
    breadcrumbs.reverse();
    Ok(View { report, code, siblings, previous, trend, breadcrumbs })
}

/// The query of a results view.
#[derive(Debug, Clone, Default)]
struct ViewQuery {
    agency: Option<String>,
    lang: &'static str,
}

fn view_query(request: &HttpRequest) -> ViewQuery {
    ViewQuery {
        agency: query_value(request, "agency").map(|a| a.trim().to_owned()).filter(|a| !a.is_empty() && a.len() <= 64),
        lang: language(request, query_value(request, "lang").as_deref()),
    }
}

/// The campaign, the earlier campaigns of its survey the viewer may see (oldest first), or the
/// response to give instead.
async fn allowed(
    state: &AppState,
    request: &HttpRequest,
    id: String,
    t: &'static ResultsTexts,
) -> Result<(Viewer, Campaign, Vec<Campaign>), HttpResponse> {
    let viewer = viewer(state, request).await.map_err(|e| unavailable(t, &e))?;
    let campaigns = db::run(&state.pool, campaign::list).await.map_err(|e| unavailable(t, &e))?;
    let visible = |c: &Campaign| viewer.signed_in || c.results_public;
    let Some(current) = campaigns.iter().find(|c| c.id == id && visible(c)).cloned() else {
        let response = if viewer.signed_in {
            message(t, StatusCode::NOT_FOUND, t.not_found_heading, t.not_found_body, None)
        } else {
            message(
                t,
                StatusCode::UNAUTHORIZED,
                t.not_public_heading,
                t.not_public_body,
                Some(login_url(&here(request), t.lang)),
            )
        };
        return Err(finish(response, &viewer, state, request));
    };
    let mut earlier: Vec<Campaign> = campaigns
        .into_iter()
        .filter(|c| c.survey == current.survey && c.id != current.id && c.opens_at < current.opens_at && visible(c))
        .collect();
    earlier.sort_by_key(|c| c.opens_at);
    Ok((viewer, current, earlier))
}

fn report_failure(t: &'static ResultsTexts, error: ReportError) -> HttpResponse {
    match error {
        ReportError::Db(error) => unavailable(t, &error),
        ReportError::CampaignNotFound(_) | ReportError::AgencyNotInCampaign(..) => {
            message(t, StatusCode::NOT_FOUND, t.not_found_heading, t.not_found_body, None)
        }
        ReportError::OutsideKeyScope { .. } => {
            message(t, StatusCode::FORBIDDEN, t.outside_scope_heading, t.outside_scope_body, None)
        }
        other => {
            tracing::warn!(error.cause = %other, "results view refused");
            message(t, StatusCode::BAD_REQUEST, t.not_found_heading, t.not_found_body, None)
        }
    }
}

/// `GET /results/{campaign}`: the page.
pub async fn page(state: web::Data<AppState>, request: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let query = view_query(&request);
    let lang = query.lang;
    let t = results_texts(lang);
    let started = std::time::Instant::now();
    let (viewer, current, earlier) = match allowed(&state, &request, id.into_inner(), t).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let cache = state.campaigns.clone();
    let (campaign_for_load, agency) = (current.clone(), query.agency.clone());
    let limited_to = viewer.limit_for(&current);
    let view = db::run(&state.pool, move |conn| {
        load_view(conn, &cache, &campaign_for_load, &earlier, agency.as_deref(), lang, limited_to.as_deref())
    })
    .await;
    let view = match view {
        Ok(view) => view,
        Err(error) => return finish(report_failure(t, error), &viewer, &state, &request),
    };
    let page = build_page(&state, &request, t, &current, &view, &viewer);
    let mut response = render(&page, StatusCode::OK);
    // Server time from the request's arrival to the rendered page (what the benchmark reports).
    if let Ok(timing) = HeaderValue::from_str(&format!("page;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0)) {
        response.headers_mut().insert(header::HeaderName::from_static("server-timing"), timing);
    }
    finish(response, &viewer, &state, &request)
}

fn page_url(campaign: &str, agency: &str, lang: &str) -> String {
    with_query(&format!("/results/{campaign}"), &[("agency", agency), ("lang", lang)])
}

fn estimate_cells(m: &MeasureReport, lang: &str) -> Vec<String> {
    [m.estimate, m.ci_low, m.ci_high].iter().map(|v| v.map(|v| decimal(v, lang)).unwrap_or_default()).collect()
}

fn build_page<'a>(
    state: &AppState,
    request: &HttpRequest,
    t: &'static ResultsTexts,
    current: &Campaign,
    view: &View,
    viewer: &Viewer,
) -> ResultsPage<'a> {
    let lang = t.lang;
    let format = move |v: f64| decimal(v, lang);
    let report = &view.report;
    let unit = unit_of(report, &view.code);
    let unit_name = unit.map(|u| u.agency.name.clone()).unwrap_or_default();
    let index = unit.map(|u| &u.figures.index);
    let headline = index.and_then(|m| m.estimate).map(&format);
    let interval = index.and_then(|m| Some(format!("{}–{}", format(m.ci_low?), format(m.ci_high?))));
    let change = match (&view.previous, index.and_then(|m| m.change.flatten())) {
        (Some(previous), Some(c)) => Some(change_text(t, previous, &c)),
        (Some(_), None) | (None, _) if headline.is_some() => Some(t.no_previous.to_owned()),
        _ => None,
    };
    let mut charts = Vec::new();
    if let Some(chart) = ranking_chart(t, report, view, &format) {
        charts.push(chart);
    }
    if let Some(unit) = unit.filter(|u| !u.figures.suppressed) {
        charts.push(profile_chart(t, unit, &format));
        charts.push(scale_chart(t, unit, &format));
        charts.push(trend_chart(t, view, &format));
        if !unit.expectations.is_empty() {
            charts.push(expectations_chart(t, unit, &format));
        }
    }
    let choices = if view.siblings {
        Vec::new()
    } else {
        report.units.iter().map(|u| (u.agency.code.clone(), format!("{} ({})", u.agency.name, u.agency.code))).collect()
    };
    let breadcrumbs = view
        .breadcrumbs
        .iter()
        .map(|(code, name, open)| (open.then(|| page_url(&current.id, code, lang)), name.clone()))
        .collect();
    let download = |extension: &str| {
        with_query(&format!("/results/{}/stats.{extension}", current.id), &[("agency", &view.code), ("lang", lang)])
    };
    let other_campaigns = view
        .trend
        .iter()
        .filter(|(c, _)| c.id != current.id)
        .map(|(c, _)| (page_url(&c.id, &view.code, lang), c.title.get(lang).to_owned()))
        .collect();
    ResultsPage {
        lang,
        t,
        switch_url: page_url(&current.id, &view.code, t.other_lang),
        campaign_title: current.title.get(lang).to_owned(),
        synthetic: current.synthetic,
        breadcrumbs,
        unit_name,
        headline,
        interval,
        respondents: integer(unit.map_or(0, |u| u.figures.n), lang),
        change,
        computed: vietnam_time(report.computed_at),
        charts,
        choices,
        campaign_id: current.id.clone(),
        csv_url: download("csv"),
        xlsx_url: download("xlsx"),
        other_campaigns,
        signed_in: viewer.signed_in,
        csrf: csrf_for(state, request),
        here: here(request),
    }
}

fn vietnam_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&crate::agency::vietnam()).format("%Y-%m-%d %H:%M (UTC+7)").to_string()
}

fn change_text(t: &ResultsTexts, previous: &Campaign, change: &ChangeReport) -> String {
    let lang = t.lang;
    let significance = if change.p_value < 0.05 { t.significant } else { t.not_significant };
    format!(
        "{}: {} → {} ({} {}, {} {}–{}; p = {}), {}",
        t.change_since.replace("{}", previous.title.get(lang)),
        decimal(change.previous, lang),
        decimal(change.previous + change.difference, lang),
        signed(change.difference, lang),
        if lang == "vi" { "điểm phần trăm" } else { "percentage points" },
        t.interval,
        signed(change.ci_low, lang),
        signed(change.ci_high, lang),
        p_value(change.p_value, lang),
        significance
    )
}

/// A p-value with three decimals, or "< 0.001".
fn p_value(p: f64, lang: &str) -> String {
    let text = if p < 0.001 { "< 0.001".to_owned() } else { format!("{p:.3}") };
    if lang == "vi" { text.replace('.', ",") } else { text }
}

fn ranking_chart(
    t: &ResultsTexts,
    report: &StatsReport,
    view: &View,
    format: &dyn Fn(f64) -> String,
) -> Option<ChartView> {
    let lang = t.lang;
    let mut ranked: Vec<&UnitReport> =
        report.units.iter().filter(|u| !u.figures.suppressed && u.figures.index.estimate.is_some()).collect();
    if ranked.is_empty() {
        return None;
    }
    ranked.sort_by(|a, b| b.figures.index.estimate.unwrap_or(0.0).total_cmp(&a.figures.index.estimate.unwrap_or(0.0)));
    let parent = report.parent.as_ref().filter(|p| !p.figures.suppressed);
    let reference =
        parent.and_then(|p| p.figures.index.estimate.map(|v| (v, t.reference.replace("{}", &p.agency.name))));
    let rows: Vec<DotRow> = ranked
        .iter()
        .map(|u| {
            let m = &u.figures.index;
            let value = m.estimate.unwrap_or(0.0);
            DotRow {
                label: u.agency.name.clone(),
                value,
                low: m.ci_low.unwrap_or(value),
                high: m.ci_high.unwrap_or(value),
                text: format(value),
                highlight: view.siblings && u.agency.code == view.code,
                strong: false,
            }
        })
        .collect();
    let (first, last) = (ranked[0], ranked[ranked.len() - 1]);
    let describe =
        |u: &UnitReport| format!("{} {}", u.agency.name, u.figures.index.estimate.map(format).unwrap_or_default());
    let heading = if view.siblings { t.siblings } else { t.ranking };
    let mut description = format!("{}: {} {}; {} {}.", heading, t.highest, describe(first), t.lowest, describe(last));
    if let Some((value, label)) = &reference {
        description.push_str(&format!(" {}: {}.", label, format(*value)));
    }
    let svg = charts::dot_plot(
        &Frame { id: "ranking", title: heading, description: &description },
        &rows,
        reference.as_ref().map(|(v, l)| (*v, l.as_str())),
    );
    let too_few: Vec<String> = report
        .units
        .iter()
        .filter(|u| u.figures.suppressed)
        .map(|u| format!("{} (n = {})", u.agency.name, u.figures.n))
        .collect();
    Some(ChartView {
        id: "ranking",
        heading: heading.to_owned(),
        note: if view.siblings { t.siblings_note } else { t.ranking_note }.to_owned(),
        svg,
        legend: Vec::new(),
        headers: [t.unit, t.rank, t.estimate, t.low, t.high, t.n].iter().map(|s| (*s).to_owned()).collect(),
        rows: ranked
            .iter()
            .map(|u| {
                let mut cells = vec![u.rank.map(|r| r.to_string()).unwrap_or_default()];
                cells.extend(estimate_cells(&u.figures.index, lang));
                cells.push(integer(u.figures.n, lang));
                RowView {
                    key: u.agency.code.clone(),
                    label: u.agency.name.clone(),
                    link: Some(page_url(&report.campaign, &u.agency.code, lang)),
                    cells,
                }
            })
            .collect(),
        after_heading: t.too_few.replace("{}", &report.method.min_n.to_string()),
        after: too_few,
    })
}

fn profile_chart(t: &ResultsTexts, unit: &UnitReport, format: &dyn Fn(f64) -> String) -> ChartView {
    let lang = t.lang;
    let figures = &unit.figures;
    let measures: Vec<(&MeasureReport, bool)> = std::iter::once((&figures.index, true))
        .chain(figures.components.iter().map(|m| (m, true)))
        .chain(figures.elements.iter().map(|m| (m, false)))
        .filter(|(m, _)| m.estimate.is_some())
        .collect();
    let rows: Vec<DotRow> = measures
        .iter()
        .map(|(m, strong)| {
            let value = m.estimate.unwrap_or(0.0);
            DotRow {
                label: m.label.clone(),
                value,
                low: m.ci_low.unwrap_or(value),
                high: m.ci_high.unwrap_or(value),
                text: format(value),
                highlight: false,
                strong: *strong,
            }
        })
        .collect();
    let elements: Vec<&MeasureReport> = figures.elements.iter().filter(|m| m.estimate.is_some()).collect();
    let best = elements.iter().max_by(|a, b| a.estimate.unwrap_or(0.0).total_cmp(&b.estimate.unwrap_or(0.0)));
    let worst = elements.iter().min_by(|a, b| a.estimate.unwrap_or(0.0).total_cmp(&b.estimate.unwrap_or(0.0)));
    let mut description = format!("{}: {}.", t.profile, unit.agency.name);
    if let (Some(best), Some(worst)) = (best, worst) {
        description.push_str(&format!(
            " {} {} {}; {} {} {}.",
            t.highest,
            best.label,
            best.estimate.map(format).unwrap_or_default(),
            t.lowest,
            worst.label,
            worst.estimate.map(format).unwrap_or_default()
        ));
    }
    let svg = charts::dot_plot(&Frame { id: "profile", title: t.profile, description: &description }, &rows, None);
    ChartView {
        id: "profile",
        heading: t.profile.to_owned(),
        note: t.profile_note.to_owned(),
        svg,
        legend: Vec::new(),
        headers: [t.measure, t.estimate, t.low, t.high].iter().map(|s| (*s).to_owned()).collect(),
        rows: measures
            .iter()
            .map(|(m, _)| RowView {
                key: m.id.clone(),
                label: m.label.clone(),
                link: None,
                cells: estimate_cells(m, lang),
            })
            .collect(),
        after: Vec::new(),
        after_heading: String::new(),
    }
}

fn scale_chart(t: &ResultsTexts, unit: &UnitReport, format: &dyn Fn(f64) -> String) -> ChartView {
    let lang = t.lang;
    let spreads: Vec<_> = unit.scale.iter().filter(|s| s.n > 0).collect();
    let left = spreads.first().map_or(0, |s| s.points.iter().take_while(|p| !p.satisfied).count());
    let rows: Vec<BarRow> = spreads
        .iter()
        .map(|s| {
            // The satisfied share printed is the report's criterion estimate (unweighted, its
            // satisfied points add up to it), not a sum made here.
            let estimate = unit.figures.criteria.iter().find(|c| c.id == s.id).and_then(|c| c.estimate);
            BarRow {
                label: s.label.clone(),
                shares: s.points.iter().map(|p| p.share).collect(),
                text: estimate.map(format).unwrap_or_default(),
            }
        })
        .collect();
    let legend: Vec<(&'static str, String)> = spreads
        .first()
        .map(|s| s.points.iter().zip(charts::SCALE5).map(|(p, colour)| (colour, p.label.clone())).collect())
        .unwrap_or_default();
    let description = format!("{} ({} {}).", t.scale, spreads.len(), t.criterion.to_lowercase());
    let svg = charts::diverging(
        &Frame { id: "scale", title: t.scale, description: &description },
        &rows,
        left,
        &charts::SCALE5,
    );
    let mut headers = vec![t.criterion.to_owned(), t.answers.to_owned()];
    headers.extend(
        spreads
            .first()
            .map(|s| s.points.iter().map(|p| format!("{} (%)", p.label)).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    headers.push(t.satisfied_share.to_owned());
    ChartView {
        id: "scale",
        heading: t.scale.to_owned(),
        note: t.scale_note.to_owned(),
        svg,
        legend,
        headers,
        rows: spreads
            .iter()
            .zip(&rows)
            .map(|(s, row)| {
                let mut cells = vec![integer(s.n, lang)];
                cells.extend(s.points.iter().map(|p| decimal(p.share, lang)));
                cells.push(row.text.clone());
                RowView { key: s.id.clone(), label: s.label.clone(), link: None, cells }
            })
            .collect(),
        after: Vec::new(),
        after_heading: String::new(),
    }
}

fn trend_chart(t: &ResultsTexts, view: &View, format: &dyn Fn(f64) -> String) -> ChartView {
    let lang = t.lang;
    let points: Vec<TrendPoint> = view
        .trend
        .iter()
        .filter_map(|(campaign, point)| {
            let (value, low, high) = (*point)?;
            Some(TrendPoint { label: campaign.id.clone(), value, low, high, text: format(value) })
        })
        .collect();
    let description = format!(
        "{}: {}.",
        t.trend,
        points.iter().map(|p| format!("{} {}", p.label, p.text)).collect::<Vec<_>>().join("; ")
    );
    let svg = charts::trend(&Frame { id: "trend", title: t.trend, description: &description }, &points);
    ChartView {
        id: "trend",
        heading: t.trend.to_owned(),
        note: t.trend_note.to_owned(),
        svg,
        legend: Vec::new(),
        headers: [t.campaign, t.estimate, t.low, t.high].iter().map(|s| (*s).to_owned()).collect(),
        rows: view
            .trend
            .iter()
            .map(|(campaign, point)| RowView {
                key: campaign.id.clone(),
                label: campaign.title.get(lang).to_owned(),
                link: Some(page_url(&campaign.id, &view.code, lang)),
                cells: match point {
                    Some((value, low, high)) => vec![decimal(*value, lang), decimal(*low, lang), decimal(*high, lang)],
                    None => vec![String::new(); 3],
                },
            })
            .collect(),
        after: Vec::new(),
        after_heading: String::new(),
    }
}

fn expectations_chart(t: &ResultsTexts, unit: &UnitReport, format: &dyn Fn(f64) -> String) -> ChartView {
    let lang = t.lang;
    // Options in the definition's order (highest priority first) are the order of the colours;
    // the report lists them most chosen first, so they are put back in value order here.
    let ordered: Vec<(&crate::report::output::ChoiceReport, Vec<&crate::report::output::ShareReport>)> = unit
        .expectations
        .iter()
        .map(|c| {
            let mut options: Vec<_> = c.options.iter().collect();
            options.sort_by_key(|o| priority_rank(&o.value));
            (c, options)
        })
        .collect();
    let rows: Vec<BarRow> = ordered
        .iter()
        .map(|(c, options)| BarRow {
            label: c.label.clone(),
            shares: options.iter().map(|o| o.estimate).collect(),
            text: options.first().map(|o| format(o.estimate)).unwrap_or_default(),
        })
        .collect();
    let legend = ordered
        .first()
        .map(|(_, options)| {
            options.iter().zip(charts::PRIORITY3).map(|(o, colour)| (colour, o.label.clone())).collect()
        })
        .unwrap_or_default();
    let description = match ordered.first() {
        Some((c, options)) => format!(
            "{}: {} {} ({}).",
            t.expectations,
            t.highest,
            c.label,
            options.first().map(|o| format(o.estimate)).unwrap_or_default()
        ),
        None => t.expectations.to_owned(),
    };
    let svg = charts::stacked(
        &Frame { id: "expectations", title: t.expectations, description: &description },
        &rows,
        &charts::PRIORITY3,
    );
    let mut headers = vec![t.area.to_owned(), t.n.to_owned()];
    headers.extend(
        ordered
            .first()
            .map(|(_, options)| options.iter().map(|o| format!("{} (%)", o.label)).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    ChartView {
        id: "expectations",
        heading: t.expectations.to_owned(),
        note: t.expectations_note.to_owned(),
        svg,
        legend,
        headers,
        rows: ordered
            .iter()
            .map(|(c, options)| {
                let mut cells = vec![integer(c.n, lang)];
                cells.extend(options.iter().map(|o| decimal(o.estimate, lang)));
                RowView { key: c.id.clone(), label: c.label.clone(), link: None, cells }
            })
            .collect(),
        after: Vec::new(),
        after_heading: String::new(),
    }
}

/// Order of the priority options: "very much" first.
fn priority_rank(value: &str) -> usize {
    match value {
        "very_much" => 0,
        "much" => 1,
        "little" => 2,
        _ => 3,
    }
}

/// `GET /results/{campaign}/stats.{csv,xlsx}`: the figures of the same view, for download.
pub async fn download(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, extension) = path.into_inner();
    let query = view_query(&request);
    let lang = query.lang;
    let t = results_texts(lang);
    if extension != "csv" && extension != "xlsx" {
        return message(t, StatusCode::NOT_FOUND, t.not_found_heading, t.not_found_body, None);
    }
    let (viewer, current, earlier) = match allowed(&state, &request, id, t).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let cache = state.campaigns.clone();
    let (campaign_id, agency) = (current.id.clone(), query.agency.clone());
    let previous = earlier.last().map(|c| c.id.clone());
    let limited_to = viewer.limit_for(&current);
    let built = db::run(&state.pool, move |conn| {
        page_report(conn, &cache, &campaign_id, agency.as_deref(), previous, lang, limited_to.as_deref())
    })
    .await;
    let (report, code, _) = match built {
        Ok(built) => built,
        Err(error) => return finish(report_failure(t, error), &viewer, &state, &request),
    };
    let name = format!("{}-{}.{extension}", current.id, if code.is_empty() { "all" } else { &code });
    let (body, content_type) = if extension == "csv" {
        (report::export::stats_csv(&report).map_err(|e| e.to_string()), "text/csv; charset=utf-8")
    } else {
        (
            report::export::stats_xlsx(&report, lang).map_err(|e| e.to_string()),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    };
    let response = match body {
        Ok(body) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(error) => {
            tracing::error!(error.cause = %error, "results download failed to encode");
            message(t, StatusCode::INTERNAL_SERVER_ERROR, t.unavailable, t.unavailable, None)
        }
    };
    finish(response, &viewer, &state, &request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_language() {
        assert_eq!(decimal(82.656, "vi"), "82,66");
        assert_eq!(decimal(80.084, "en"), "80.08");
        assert_eq!(p_value(0.0004, "vi"), "< 0,001");
        assert_eq!(p_value(0.0456, "en"), "0.046");
        assert_eq!(decimal(83.94, "vi"), "83,94");
        assert_eq!(decimal(-0.001, "vi"), "0,00");
        assert_eq!(signed(1.234, "vi"), "+1,23");
        assert_eq!(signed(-0.456, "en"), "−0.46");
        assert_eq!(signed(0.001, "en"), "0.00");
        assert_eq!(integer(36_512, "vi"), "36.512");
        assert_eq!(integer(1_234_567, "en"), "1,234,567");
        assert_eq!(integer(999, "en"), "999");
        assert_eq!(integer(0, "vi"), "0");
    }
}
