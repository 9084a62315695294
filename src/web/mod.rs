//! Pages for citizens: the survey form reached by link or QR code, the per-dossier rating, the QR
//! code and the poster. Server-rendered with compiled templates; no JavaScript.

pub mod charts;
pub mod form;
pub mod results;
pub mod session;
pub mod texts;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use form::Mode;

/// Per-IP limit on completed submissions of open-link forms.
pub type FormLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// The limiter for `per_minute` completed submissions per address; `None` when 0 (no limit).
pub fn form_limiter(per_minute: u32) -> Option<Arc<FormLimiter>> {
    NonZeroU32::new(per_minute).map(|n| Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n))))
}

/// The stylesheet, compiled into the binary.
const FORM_CSS: &str = include_str!("../../static/form.css");

/// Largest form body accepted (every question of the longest survey fits many times over).
pub const FORM_BODY_LIMIT: usize = 256 * 1024;

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(FORM_CSS)
}

fn open(path: web::Path<(String, String)>) -> form::Reach {
    let (campaign, agency) = path.into_inner();
    form::Reach::Open { campaign, agency }
}

async fn survey_page(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    form::show(state, request, open(path), Mode::Paged).await
}

async fn survey_post(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    form::submit(state, request, open(path), body, Mode::Paged).await
}

async fn rating_page(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    form::show(state, request, open(path), Mode::Rating).await
}

async fn rating_post(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    form::submit(state, request, open(path), body, Mode::Rating).await
}

async fn invitation_page(state: web::Data<AppState>, request: HttpRequest, token: web::Path<String>) -> HttpResponse {
    form::show(state, request, form::Reach::Invitation { token: token.into_inner() }, Mode::Paged).await
}

async fn invitation_post(
    state: web::Data<AppState>,
    request: HttpRequest,
    token: web::Path<String>,
    body: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    form::submit(state, request, form::Reach::Invitation { token: token.into_inner() }, body, Mode::Paged).await
}

/// A form body that does not parse: a friendly page rather than a bare error.
fn form_error(error: actix_web::error::UrlencodedError, request: &HttpRequest) -> actix_web::Error {
    let t = texts::texts(form::language(request, None));
    let body = format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1></body></html>",
        t.lang, t.msg_invalid, t.msg_invalid
    );
    let status = match error {
        actix_web::error::UrlencodedError::Overflow { .. } => actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        _ => actix_web::http::StatusCode::BAD_REQUEST,
    };
    actix_web::error::InternalError::from_response(
        error,
        HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body),
    )
    .into()
}

/// Registers the citizen pages.
pub fn configure(config: &mut web::ServiceConfig) {
    let form_config = web::FormConfig::default().limit(FORM_BODY_LIMIT).error_handler(form_error);
    config
        .route("/static/form.css", web::get().to(stylesheet))
        .route("/static/results.css", web::get().to(results::stylesheet))
        .route("/results", web::get().to(results::index))
        .route("/results/{campaign}", web::get().to(results::page))
        .route("/results/{campaign}/stats.{format}", web::get().to(results::download))
        .service(
            web::resource("/login")
                .app_data(form_config.clone())
                .route(web::get().to(session::login_form))
                .route(web::post().to(session::login)),
        )
        .service(web::resource("/logout").app_data(form_config.clone()).route(web::post().to(session::logout)))
        .service(
            web::resource("/s/{campaign}/{agency}")
                .app_data(form_config.clone())
                .route(web::get().to(survey_page))
                .route(web::post().to(survey_post)),
        )
        .route("/s/{campaign}/{agency}/qr.svg", web::get().to(form::qr))
        .route("/s/{campaign}/{agency}/poster", web::get().to(form::poster))
        .service(
            web::resource("/r/{campaign}/{agency}")
                .app_data(form_config.clone())
                .route(web::get().to(rating_page))
                .route(web::post().to(rating_post)),
        )
        .service(
            web::resource("/i/{token}")
                .app_data(form_config.clone())
                .route(web::get().to(invitation_page))
                .route(web::post().to(invitation_post)),
        )
        .service(
            web::resource("/u/{token}")
                .app_data(form_config)
                .route(web::get().to(form::unsubscribe_page))
                .route(web::post().to(form::unsubscribe)),
        );
}
