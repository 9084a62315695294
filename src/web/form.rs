//! The citizen form: open links (`/s/{campaign}/{agency}`), the per-dossier rating
//! (`/r/{campaign}/{agency}`), the QR code and the printable poster. Server-rendered, one column,
//! no JavaScript; answers travel between sections in hidden fields, and the last page goes through
//! the same intake write path as the API.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::texts::{Texts, texts};
use crate::app::AppState;
use crate::campaign::Channel;
use crate::campaign::context::CampaignContext;
use crate::db::{self, DbError};
use crate::intake::writer::ItemOutcome;
use crate::intake::{self, Origin, Refusal};
use crate::survey::answers::check_answers;
use crate::survey::model::{Question, QuestionKind, SurveyDefinition};

/// Name of the cookie the CSRF token is bound to.
const CSRF_COOKIE: &str = "sipas_form";
/// Prefix of answer fields (`q:s01`), keeping them apart from the control fields.
const ANSWER_PREFIX: &str = "q:";

/// Which page layout a form uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One page per section with a progress indicator.
    Paged,
    /// Every question on one long page (`?view=all`).
    All,
    /// The one-screen per-dossier rating (`/r/…`).
    Rating,
}

impl Mode {
    fn prefix(self) -> &'static str {
        if self == Self::Rating { "r" } else { "s" }
    }
}

/// Security headers on every page: nothing from another origin, no inline script or style.
pub(crate) fn secure(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn html(status: StatusCode, body: String) -> HttpResponse {
    secure(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body))
}

/// A page rendered from its template, or an empty 500 (logged) if the template fails.
pub(crate) fn render<T: Template>(page: &T, status: StatusCode) -> HttpResponse {
    match page.render() {
        Ok(body) => html(status, body),
        Err(error) => {
            tracing::error!(error.cause = %error, page = std::any::type_name::<T>(), "page rendering failed");
            html(StatusCode::INTERNAL_SERVER_ERROR, String::new())
        }
    }
}

/// The language of a request: `?lang=`, then the form's own field, then `Accept-Language`.
pub fn language(request: &HttpRequest, explicit: Option<&str>) -> &'static str {
    match explicit {
        Some("en") => return "en",
        Some("vi") => return "vi",
        _ => {}
    }
    let accept = request.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    for tag in accept.split(',') {
        let tag = tag.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if tag.starts_with("vi") {
            return "vi";
        }
        if tag.starts_with("en") {
            return "en";
        }
    }
    "vi"
}

pub(crate) fn query_value(request: &HttpRequest, name: &str) -> Option<String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(request.query_string()).ok()?.into_inner();
    pairs.into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    lang: &'a str,
    heading: &'a str,
    paragraphs: Vec<&'a str>,
    agency_name: Option<String>,
    switch_url: Option<String>,
    switch_lang: &'a str,
    switch_label: &'a str,
    link: Option<(String, &'a str)>,
}

fn message(
    status: StatusCode,
    t: &Texts,
    heading: &str,
    paragraphs: Vec<&str>,
    link: Option<(String, &str)>,
) -> HttpResponse {
    let page = MessagePage {
        lang: t.lang,
        heading,
        paragraphs,
        agency_name: None,
        switch_url: None,
        switch_lang: t.other_lang,
        switch_label: t.other_label,
        link,
    };
    render(&page, status)
}

/// A campaign and agency ready for the form, or the page that says why not.
struct Target {
    context: Arc<CampaignContext>,
    agency: String,
    agency_name: String,
    /// Path the form posts to (`/s/…`, `/r/…` or `/i/TOKEN`).
    base: String,
    channel: Channel,
    /// The invitation whose one-time link this is.
    invitation: Option<String>,
    /// Dossier named by the invitation.
    dossier: Option<String>,
    /// Language of the invitation mail.
    language: Option<String>,
}

/// How the citizen reached the form.
#[derive(Debug, Clone)]
pub enum Reach {
    /// An open link or QR code: campaign and agency in the path.
    Open {
        /// Campaign id.
        campaign: String,
        /// Agency code.
        agency: String,
    },
    /// A personal one-time link from an invitation mail.
    Invitation {
        /// The token from the link.
        token: String,
    },
}

async fn target(state: &AppState, reach: &Reach, mode: Mode, t: &'static Texts) -> Result<Target, HttpResponse> {
    let not_found = || message(StatusCode::NOT_FOUND, t, t.not_found_heading, vec![t.not_found_body], None);
    let (campaign, agency_code, channel, invitation) = match reach {
        Reach::Open { campaign, agency } => (campaign.clone(), Some(agency.clone()), Channel::Link, None),
        Reach::Invitation { token } => {
            let token = token.clone();
            let found = db::run(&state.pool, move |conn| crate::mail::find_by_token(conn, &token)).await;
            match found {
                Ok(Some(invitation)) => (invitation.campaign.clone(), None, Channel::Invitation, Some(invitation)),
                Ok(None) => return Err(not_found()),
                Err(error) => return Err(unavailable(t, &error)),
            }
        }
    };
    if let Some(invitation) = invitation.as_ref().filter(|i| i.used) {
        // Said in the language the invitation was written in.
        let t = texts(&invitation.language);
        return Err(message(StatusCode::GONE, t, t.used_heading, vec![t.used_body], None));
    }
    let cache = state.campaigns.clone();
    let found = match db::run(&state.pool, move |conn| cache.get(conn, &campaign)).await {
        Ok(found) => found,
        Err(error) => return Err(unavailable(t, &error)),
    };
    let Some(context) = found else { return Err(not_found()) };
    let node = match (&agency_code, &invitation) {
        (Some(code), _) => context.members.get(code).and_then(|m| context.tree.node(m.agency_id)),
        (None, Some(invitation)) => context.tree.node(invitation.agency_id),
        (None, None) => None,
    };
    let Some(node) = node else { return Err(not_found()) };
    let now = Utc::now();
    if now >= context.campaign.closes_at {
        return Err(message(StatusCode::GONE, t, t.closed_heading, vec![t.closed_body], None));
    }
    if now < context.campaign.opens_at || !context.campaign.channels.contains(&channel) {
        return Err(message(StatusCode::NOT_FOUND, t, t.not_found_heading, vec![t.not_open_body], None));
    }
    let base = match reach {
        Reach::Open { campaign, agency } => format!("/{}/{campaign}/{agency}", mode.prefix()),
        Reach::Invitation { token } => format!("/i/{token}"),
    };
    Ok(Target {
        agency: node.code.clone(),
        agency_name: node.name(t.lang).to_owned(),
        base,
        channel,
        dossier: invitation.as_ref().and_then(|i| i.dossier.clone()),
        language: invitation.as_ref().map(|i| i.language.clone()),
        invitation: invitation.map(|i| i.id),
        context,
    })
}

fn unavailable(t: &Texts, error: &DbError) -> HttpResponse {
    static LOGGED: crate::telemetry::LogThrottle = crate::telemetry::LogThrottle::outage();
    if let Some(held) = LOGGED.admit() {
        tracing::warn!(error.cause = %error, refused.since_last_line = held, "form: database unavailable");
    }
    let mut response =
        message(StatusCode::SERVICE_UNAVAILABLE, t, t.unavailable_heading, vec![t.unavailable_body], None);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

/// The CSRF token for a cookie value: a keyed hash, so a page from this server is needed to post.
pub(crate) fn csrf_token(secret: &[u8], cookie: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(b"csrf\0");
    mac.update(cookie.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn csrf_cookie(request: &HttpRequest) -> Option<String> {
    request
        .cookie(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn new_cookie_value() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub(crate) fn set_cookie(response: &mut HttpResponse, value: &str, secure_only: bool) {
    let cookie = format!(
        "{CSRF_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure_only { "; Secure" } else { "" }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The form's state as posted.
#[derive(Debug, Default)]
struct Posted {
    answers: BTreeMap<String, Vec<String>>,
    submission: Option<String>,
    csrf: String,
    page: usize,
    lang: Option<String>,
    view_all: bool,
    respondent_type: Option<String>,
    dossier: Option<String>,
    back: bool,
    honeypot: bool,
}

fn parse_posted(fields: Vec<(String, String)>) -> Posted {
    let mut posted = Posted::default();
    for (name, value) in fields {
        if let Some(question) = name.strip_prefix(ANSWER_PREFIX) {
            let value = value.trim();
            if !value.is_empty() {
                posted.answers.entry(question.to_owned()).or_default().push(value.to_owned());
            }
            continue;
        }
        match name.as_str() {
            "_submission" => posted.submission = Some(value).filter(|v| valid_submission_id(v)),
            "_csrf" => posted.csrf = value,
            "_page" => posted.page = value.parse().unwrap_or(0),
            "_lang" => posted.lang = Some(value),
            "_view" => posted.view_all = value == "all",
            "_type" => posted.respondent_type = Some(value),
            "_dossier" => posted.dossier = Some(value).filter(|v| !v.trim().is_empty()),
            "_nav" => posted.back = value == "back",
            "website" => posted.honeypot = !value.trim().is_empty(),
            _ => {}
        }
    }
    posted
}

fn valid_submission_id(value: &str) -> bool {
    value.len() == 26 && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The answers as the JSON object the intake path takes, typed by question kind. A value that does
/// not parse is passed on as text, so that the definition's checks name it.
fn answers_json(definition: &SurveyDefinition, answers: &BTreeMap<String, Vec<String>>) -> Value {
    let mut object = Map::new();
    for question in &definition.questions {
        let Some(values) = answers.get(&question.id) else { continue };
        let value = match question.kind {
            QuestionKind::Scale | QuestionKind::Integer => {
                let text = values.first().cloned().unwrap_or_default();
                text.parse::<i64>().map(Value::from).unwrap_or(Value::String(text))
            }
            QuestionKind::SingleChoice | QuestionKind::Text => {
                Value::String(values.first().cloned().unwrap_or_default())
            }
            QuestionKind::MultiChoice => Value::Array(values.iter().cloned().map(Value::String).collect()),
        };
        object.insert(question.id.clone(), value);
    }
    Value::Object(object)
}

/// Sections that hold questions, in order.
fn sections(definition: &SurveyDefinition) -> Vec<&crate::survey::model::Section> {
    definition.sections.iter().filter(|s| definition.questions.iter().any(|q| q.section == s.id)).collect()
}

struct OptionView {
    value: String,
    label: String,
    input_id: String,
    checked: bool,
}

struct QuestionView {
    name: String,
    anchor: String,
    text: String,
    help: Option<String>,
    required: bool,
    is_choice: bool,
    input_type: &'static str,
    options: Vec<OptionView>,
    value: String,
    min: Option<i64>,
    max: Option<i64>,
    max_length: Option<u32>,
    error: Option<String>,
    describedby: String,
}

struct SectionView {
    title: Option<String>,
    description: Option<String>,
    questions: Vec<QuestionView>,
}

struct ErrorView {
    anchor: String,
    question: String,
    message: String,
}

struct Progress {
    label: String,
    value: usize,
    max: usize,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage<'a> {
    lang: &'a str,
    t: &'a Texts,
    title: String,
    intro: Option<String>,
    agency_name: String,
    action: String,
    switch_url: String,
    switch_lang: &'a str,
    switch_label: &'a str,
    progress: Option<Progress>,
    hidden: Vec<(String, String)>,
    sections: Vec<SectionView>,
    errors: Vec<ErrorView>,
    is_last: bool,
    has_back: bool,
    all_url: Option<String>,
    dossier: Option<String>,
}

fn question_view(
    question: &Question,
    lang: &str,
    answers: &BTreeMap<String, Vec<String>>,
    error: Option<String>,
) -> QuestionView {
    let given = answers.get(&question.id);
    let anchor = format!("q-{}", question.id);
    // Scale points and choice options are drawn alike: a value, its words, whether it is chosen.
    let option = |value: String, label: &crate::survey::model::LocalizedText| OptionView {
        input_id: format!("{anchor}-{value}"),
        checked: given.is_some_and(|v| v.contains(&value)),
        label: label.get(lang).to_owned(),
        value,
    };
    let (is_choice, input_type, options) = match question.kind {
        QuestionKind::Scale => {
            (true, "radio", question.labels.iter().map(|p| option(p.value.to_string(), &p.label)).collect())
        }
        QuestionKind::SingleChoice | QuestionKind::MultiChoice => (
            true,
            if question.kind == QuestionKind::MultiChoice { "checkbox" } else { "radio" },
            question.options.iter().map(|o| option(o.value.clone(), &o.label)).collect(),
        ),
        QuestionKind::Integer => (false, "number", Vec::new()),
        QuestionKind::Text => (false, "textarea", Vec::new()),
    };
    let help = question.help.as_ref().map(|h| h.get(lang).to_owned());
    let mut describedby = Vec::new();
    if help.is_some() {
        describedby.push(format!("{anchor}-help"));
    }
    if error.is_some() {
        describedby.push(format!("{anchor}-error"));
    }
    QuestionView {
        name: format!("{ANSWER_PREFIX}{}", question.id),
        text: question.text.get(lang).to_owned(),
        help,
        required: question.required,
        is_choice,
        input_type,
        options,
        value: given.and_then(|v| v.first().cloned()).unwrap_or_default(),
        min: question.min,
        max: question.max,
        max_length: question.max_length,
        error,
        describedby: describedby.join(" "),
        anchor,
    }
}

/// Everything needed to draw one page of the form.
struct PageRequest<'a> {
    target: &'a Target,
    mode: Mode,
    lang: &'static str,
    page: usize,
    answers: &'a BTreeMap<String, Vec<String>>,
    errors: BTreeMap<String, &'static str>,
    submission: String,
    csrf: String,
    respondent_type: Option<String>,
    dossier: Option<String>,
}

fn render_form(request: PageRequest, status: StatusCode) -> HttpResponse {
    let t = texts(request.lang);
    let lang = request.lang;
    let definition = &request.target.context.definition;
    let all_sections = sections(definition);
    let paged = request.mode == Mode::Paged;
    let page = request.page.min(all_sections.len().saturating_sub(1));
    let shown: Vec<&crate::survey::model::Section> =
        if paged { all_sections.get(page).into_iter().copied().collect() } else { all_sections.clone() };
    let on_page = |q: &Question| shown.iter().any(|s| s.id == q.section);
    let mut errors = Vec::new();
    let section_views: Vec<SectionView> = shown
        .iter()
        .map(|section| SectionView {
            title: Some(section.title.get(lang).to_owned()),
            description: section.description.as_ref().map(|d| d.get(lang).to_owned()),
            questions: definition
                .questions
                .iter()
                .filter(|q| q.section == section.id)
                .map(|q| {
                    let error = request.errors.get(&q.id).map(|m| (*m).to_owned());
                    if let Some(message) = &error {
                        errors.push(ErrorView {
                            anchor: format!("q-{}", q.id),
                            question: q.text.get(lang).to_owned(),
                            message: message.clone(),
                        });
                    }
                    question_view(q, lang, request.answers, error)
                })
                .collect(),
        })
        .collect();
    let mut hidden = vec![
        ("_submission".to_owned(), request.submission.clone()),
        ("_csrf".to_owned(), request.csrf.clone()),
        ("_page".to_owned(), page.to_string()),
        ("_lang".to_owned(), lang.to_owned()),
        ("_view".to_owned(), if request.mode == Mode::All { "all" } else { "paged" }.to_owned()),
    ];
    if let Some(kind) = &request.respondent_type {
        hidden.push(("_type".to_owned(), kind.clone()));
    }
    if let Some(dossier) = &request.dossier {
        hidden.push(("_dossier".to_owned(), dossier.clone()));
    }
    for question in definition.questions.iter().filter(|q| !on_page(q)) {
        for value in request.answers.get(&question.id).into_iter().flatten() {
            hidden.push((format!("{ANSWER_PREFIX}{}", question.id), value.clone()));
        }
    }
    let base = request.target.base.clone();
    let mut switch_query = vec![("lang", t.other_lang.to_owned())];
    if request.mode == Mode::All {
        switch_query.push(("view", "all".to_owned()));
    }
    if let Some(dossier) = &request.dossier {
        switch_query.push(("dossier", dossier.clone()));
    }
    let switch_url = format!("{base}?{}", serde_urlencoded::to_string(&switch_query).unwrap_or_default());
    let intro =
        (page == 0 || !paged).then(|| definition.description.as_ref().map(|d| d.get(lang).to_owned())).flatten();
    let form = FormPage {
        lang,
        t,
        title: request.target.context.campaign.title.get(lang).to_owned(),
        intro,
        agency_name: request.target.agency_name.clone(),
        action: base.clone(),
        switch_url,
        switch_lang: t.other_lang,
        switch_label: t.other_label,
        progress: paged.then(|| Progress {
            label: format!("{} {} {} {}", t.part, page + 1, t.of, all_sections.len()).replace(" / ", "/"),
            value: page + 1,
            max: all_sections.len(),
        }),
        hidden,
        sections: section_views,
        errors,
        is_last: !paged || page + 1 >= all_sections.len(),
        has_back: paged && page > 0,
        all_url: paged.then(|| format!("{base}?view=all&lang={lang}")),
        dossier: request.dossier.clone(),
    };
    render(&form, status)
}

/// `GET /s/{campaign}/{agency}` and `GET /r/{campaign}/{agency}`: the first page, with a fresh
/// submission id and the CSRF cookie.
pub async fn show(state: web::Data<AppState>, request: HttpRequest, reach: Reach, mode: Mode) -> HttpResponse {
    let mut lang = language(&request, query_value(&request, "lang").as_deref());
    let target = match target(&state, &reach, mode, texts(lang)).await {
        Ok(target) => target,
        Err(page) => return page,
    };
    if query_value(&request, "lang").is_none()
        && let Some(mailed) = &target.language
    {
        // An invitation opens in the language its mail was written in.
        lang = if mailed == "en" { "en" } else { "vi" };
    }
    let mode =
        if mode == Mode::Paged && query_value(&request, "view").as_deref() == Some("all") { Mode::All } else { mode };
    let (cookie, fresh) = match csrf_cookie(&request) {
        Some(value) => (value, false),
        None => (new_cookie_value(), true),
    };
    let answers = BTreeMap::new();
    let mut response = render_form(
        PageRequest {
            target: &target,
            mode,
            lang,
            page: 0,
            answers: &answers,
            errors: BTreeMap::new(),
            submission: ulid::Ulid::new().to_string(),
            csrf: csrf_token(&state.dossier_secret, &cookie),
            respondent_type: query_value(&request, "type").filter(|v| v == "individual" || v == "organization"),
            dossier: target.dossier.clone().or_else(|| {
                query_value(&request, "dossier").filter(|d| !d.trim().is_empty() && d.chars().count() <= 128)
            }),
        },
        StatusCode::OK,
    );
    if fresh {
        set_cookie(&mut response, &cookie, state.settings.public_base().starts_with("https://"));
    }
    response
}

/// The messages for answer problems (`answers.ID` fields) of the questions `on_page` accepts.
fn answer_errors<'a>(
    definition: &SurveyDefinition,
    problems: impl IntoIterator<Item = (&'a str, &'a str)>,
    t: &Texts,
    on_page: impl Fn(&Question) -> bool,
) -> BTreeMap<String, &'static str> {
    let mut errors = BTreeMap::new();
    for (field, code) in problems {
        let Some(id) = field.strip_prefix("answers.") else { continue };
        if let Some(question) = definition.question(id)
            && on_page(question)
        {
            errors.entry(id.to_owned()).or_insert_with(|| t.message(code, question.kind == QuestionKind::Integer));
        }
    }
    errors
}

/// Problems of the answers to the questions `on_page` accepts, checked against the definition.
fn page_errors(
    definition: &SurveyDefinition,
    json: &Value,
    t: &Texts,
    on_page: impl Fn(&Question) -> bool,
) -> BTreeMap<String, &'static str> {
    let Err(problems) = check_answers(definition, json) else { return BTreeMap::new() };
    answer_errors(definition, problems.iter().map(|p| (p.field.as_str(), p.code)), t, on_page)
}

/// `POST /s/{campaign}/{agency}` and `POST /r/{campaign}/{agency}`: moves between pages, or submits
/// on the last one.
pub async fn submit(
    state: web::Data<AppState>,
    request: HttpRequest,
    reach: Reach,
    form: web::Form<Vec<(String, String)>>,
    mode: Mode,
) -> HttpResponse {
    let posted = parse_posted(form.into_inner());
    let lang = language(&request, posted.lang.as_deref());
    let t = texts(lang);
    let target = match target(&state, &reach, mode, t).await {
        Ok(target) => target,
        Err(page) => return page,
    };
    let campaign = target.context.campaign.id.clone();
    let agency = target.agency.clone();
    let base = format!("{}?lang={lang}", target.base);
    let csrf_ok = csrf_cookie(&request).is_some_and(|cookie| {
        let expected = csrf_token(&state.dossier_secret, &cookie);
        !expected.is_empty() && subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), posted.csrf.as_bytes()).into()
    });
    let Some(submission) = posted.submission.clone().filter(|_| csrf_ok) else {
        return message(StatusCode::FORBIDDEN, t, t.expired_heading, vec![t.expired_body], Some((base, t.reload)));
    };
    if posted.honeypot {
        tracing::info!(campaign.id = %campaign, "form: honeypot filled, response dropped");
        return message(StatusCode::OK, t, t.thanks_heading, vec![t.thanks_body], None);
    }
    let mode = if mode == Mode::Paged && posted.view_all { Mode::All } else { mode };
    let definition = target.context.definition.clone();
    let all_sections = sections(&definition);
    let last_page = all_sections.len().saturating_sub(1);
    let page = posted.page.min(last_page);
    let json = answers_json(&definition, &posted.answers);
    let draw = |page: usize, errors: BTreeMap<String, &'static str>, status: StatusCode| {
        render_form(
            PageRequest {
                target: &target,
                mode,
                lang,
                page,
                answers: &posted.answers,
                errors,
                submission: submission.clone(),
                csrf: posted.csrf.clone(),
                respondent_type: posted.respondent_type.clone(),
                dossier: posted.dossier.clone(),
            },
            status,
        )
    };
    if mode == Mode::Paged && posted.back {
        return draw(page.saturating_sub(1), BTreeMap::new(), StatusCode::OK);
    }
    let section = all_sections.get(page).map(|s| s.id.clone()).unwrap_or_default();
    if mode == Mode::Paged && page < last_page {
        let errors = page_errors(&definition, &json, t, |q| q.section == section);
        if !errors.is_empty() {
            return draw(page, errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
        return draw(page + 1, BTreeMap::new(), StatusCode::OK);
    }
    // The last page: the intake path's checks are the only ones, run once.
    let respondent_type = posted.respondent_type.clone().unwrap_or_else(|| default_respondent_type(&definition));
    let mut body = json!({
        "campaign": campaign, "agency": agency, "respondent_type": respondent_type,
        "language": lang, "answers": json,
    });
    if let Some(dossier) = &posted.dossier {
        body["dossier"] = Value::String(dossier.clone());
    }
    let origin = Origin { channel: target.channel, principal: None };
    let prepared = intake::parse_submission(body, &[]).map_err(Refusal::Invalid).and_then(|submission_fields| {
        intake::prepare(
            target.context.clone(),
            submission_fields,
            &origin,
            Utc::now(),
            &state.dossier_secret,
            Some(submission.clone()),
        )
    });
    if let Err(Refusal::OutsideWindow { idempotency, .. }) = &prepared {
        let idempotency = idempotency.clone();
        let recorded = db::run(&state.pool, move |conn| intake::writer::recorded_outcome(conn, &idempotency)).await;
        if let Ok(Some(ItemOutcome::Replayed { .. } | ItemOutcome::KeyReused)) = recorded {
            // The same form sent again after the campaign closed: it was stored while it was open.
            return message(StatusCode::OK, t, t.thanks_heading, vec![t.thanks_body, t.already_received], None);
        }
    }
    let prepared = match prepared {
        Ok(mut prepared) => {
            prepared.invitation = target.invitation.clone();
            prepared
        }
        Err(Refusal::Invalid(problems)) if problems.iter().any(|p| p.field.starts_with("answers.")) => {
            state.metrics.refused(target.channel, "invalid");
            let faults = || problems.iter().map(|p| (p.field.as_str(), p.code));
            let here = answer_errors(&definition, faults(), t, |q| mode == Mode::Paged && q.section == section);
            if !here.is_empty() {
                return draw(page, here, StatusCode::UNPROCESSABLE_ENTITY);
            }
            let errors = answer_errors(&definition, faults(), t, |_| true);
            // On paged forms an earlier page's problem (a changed definition) sends the citizen there.
            let first = if mode == Mode::Paged {
                all_sections
                    .iter()
                    .position(|s| definition.questions.iter().any(|q| q.section == s.id && errors.contains_key(&q.id)))
                    .unwrap_or(page)
            } else {
                0
            };
            return draw(first, errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
        Err(refusal) => {
            state.metrics.refused(target.channel, refusal.reason());
            tracing::warn!(?refusal, "form: submission refused by the intake path");
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                t,
                t.not_found_heading,
                vec![t.msg_invalid],
                Some((base, t.reload)),
            );
        }
    };
    // Only submissions about to be stored count against the per-address limit.
    if let Some(limiter) = state.form_limiter.as_ref().filter(|_| target.channel == Channel::Link) {
        let ip = request.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if limiter.check_key(&ip).is_err() {
            let mut response =
                message(StatusCode::TOO_MANY_REQUESTS, t, t.too_many_heading, vec![t.too_many_body], None);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return response;
        }
    }
    match state.writer.write(vec![prepared]).await.map(|mut outcomes| outcomes.pop()) {
        Ok(Some(ItemOutcome::Created { .. })) => {
            message(StatusCode::OK, t, t.thanks_heading, vec![t.thanks_body], None)
        }
        Ok(Some(ItemOutcome::Replayed { .. } | ItemOutcome::KeyReused)) => {
            message(StatusCode::OK, t, t.thanks_heading, vec![t.thanks_body, t.already_received], None)
        }
        Ok(Some(ItemOutcome::InvitationUsed)) => message(StatusCode::GONE, t, t.used_heading, vec![t.used_body], None),
        Ok(Some(ItemOutcome::DossierConflict)) => {
            message(StatusCode::CONFLICT, t, t.dossier_rated_heading, vec![t.dossier_rated_body], None)
        }
        Ok(None) => unavailable(t, &DbError::Unavailable("the writer returned no result".to_owned())),
        Err(error) => unavailable(t, &error),
    }
}

/// Organizations answer the organization questionnaire; everyone else as an individual.
fn default_respondent_type(definition: &SurveyDefinition) -> String {
    if definition.id.contains("organization") { "organization" } else { "individual" }.to_owned()
}

/// `GET /s/{campaign}/{agency}/qr.svg`: a QR code of the form's public link.
pub async fn qr(state: web::Data<AppState>, request: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (campaign, agency) = path.into_inner();
    let t = texts(language(&request, query_value(&request, "lang").as_deref()));
    let reach = Reach::Open { campaign: campaign.clone(), agency: agency.clone() };
    if let Err(page) = target(&state, &reach, Mode::Paged, t).await {
        return page;
    }
    let link = format!("{}/s/{campaign}/{agency}", state.settings.public_base());
    match qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(256, 256).quiet_zone(true).build();
            secure(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
        }
        Err(error) => {
            tracing::error!(error.cause = %error, "QR encoding failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[derive(Template)]
#[template(path = "poster.html")]
struct PosterPage<'a> {
    lang: &'a str,
    t: &'a Texts,
    title: String,
    agency_name: String,
    link: String,
    qr_url: String,
    form_url: String,
}

/// `GET /s/{campaign}/{agency}/poster`: an A4 poster for the counter.
pub async fn poster(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (campaign, agency) = path.into_inner();
    let lang = language(&request, query_value(&request, "lang").as_deref());
    let t = texts(lang);
    let reach = Reach::Open { campaign: campaign.clone(), agency: agency.clone() };
    let target = match target(&state, &reach, Mode::Paged, t).await {
        Ok(target) => target,
        Err(page) => return page,
    };
    let page = PosterPage {
        lang,
        t,
        title: target.context.campaign.title.get(lang).to_owned(),
        agency_name: target.agency_name.clone(),
        link: format!("{}/s/{campaign}/{agency}", state.settings.public_base()),
        qr_url: format!("/s/{campaign}/{agency}/qr.svg"),
        form_url: format!("/s/{campaign}/{agency}?lang={lang}"),
    };
    render(&page, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::defaults::embedded_definitions;

    #[test]
    fn posted_fields_become_typed_answers() {
        let definition = embedded_definitions().unwrap().into_iter().find(|d| d.id == "sipas-individual").unwrap();
        let posted = parse_posted(vec![
            ("q:s01".to_owned(), "4".to_owned()),
            ("q:gender".to_owned(), "female".to_owned()),
            ("q:p01".to_owned(), "  ".to_owned()),
            ("_page".to_owned(), "2".to_owned()),
            ("_nav".to_owned(), "back".to_owned()),
            ("_submission".to_owned(), "not-a-ulid".to_owned()),
        ]);
        assert_eq!(posted.page, 2);
        assert!(posted.back);
        assert!(posted.submission.is_none(), "only a well-formed id is kept");
        let json = answers_json(&definition, &posted.answers);
        assert_eq!(json, json!({"s01": 4, "gender": "female"}));
    }

    #[test]
    fn csrf_tokens_depend_on_the_cookie() {
        let a = csrf_token(b"secret", "00112233445566778899aabbccddeeff");
        assert_eq!(a.len(), 64);
        assert_ne!(a, csrf_token(b"secret", "ffeeddccbbaa99887766554433221100"));
        assert_ne!(a, csrf_token(b"other", "00112233445566778899aabbccddeeff"));
    }
}

/// `GET /u/{token}`: asks to confirm opting out (a GET never changes anything: mail scanners
/// follow links).
pub async fn unsubscribe_page(request: HttpRequest, token: web::Path<String>) -> HttpResponse {
    let t = texts(language(&request, query_value(&request, "lang").as_deref()));
    let page = UnsubscribePage { lang: t.lang, t, action: format!("/u/{}", token.into_inner()) };
    render(&page, StatusCode::OK)
}

/// `POST /u/{token}`: opts out at once (also the RFC 8058 one-click target of mail clients).
pub async fn unsubscribe(state: web::Data<AppState>, request: HttpRequest, token: web::Path<String>) -> HttpResponse {
    let t = texts(language(&request, query_value(&request, "lang").as_deref()));
    let token = token.into_inner();
    match db::run(&state.pool, move |conn| crate::mail::opt_out(conn, &token)).await {
        Ok(true) => message(StatusCode::OK, t, t.unsubscribed_heading, vec![t.unsubscribed_body], None),
        Ok(false) => message(StatusCode::NOT_FOUND, t, t.not_found_heading, vec![t.not_found_body], None),
        Err(error) => unavailable(t, &error),
    }
}

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage<'a> {
    lang: &'a str,
    t: &'a Texts,
    action: String,
}
