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

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::AllowingResource;
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
    // Every page answers the methods it does not serve with 405 and `Allow`.
    let page = AllowingResource::new;
    config
        .service(page("/static/form.css").on(Method::GET, stylesheet).finish())
        .service(page("/static/results.css").on(Method::GET, results::stylesheet).finish())
        .service(page("/results").on(Method::GET, results::index).finish())
        .service(page("/results/{campaign}").on(Method::GET, results::page).finish())
        .service(page("/results/{campaign}/stats.{format}").on(Method::GET, results::download).finish())
        .service(
            page("/login")
                .app_data(form_config.clone())
                .on(Method::GET, session::login_form)
                .on(Method::POST, session::login)
                .finish(),
        )
        .service(page("/logout").app_data(form_config.clone()).on(Method::POST, session::logout).finish())
        .service(
            page("/s/{campaign}/{agency}")
                .app_data(form_config.clone())
                .on(Method::GET, survey_page)
                .on(Method::POST, survey_post)
                .finish(),
        )
        .service(page("/s/{campaign}/{agency}/qr.svg").on(Method::GET, form::qr).finish())
        .service(page("/s/{campaign}/{agency}/poster").on(Method::GET, form::poster).finish())
        .service(
            page("/r/{campaign}/{agency}")
                .app_data(form_config.clone())
                .on(Method::GET, rating_page)
                .on(Method::POST, rating_post)
                .finish(),
        )
        .service(
            page("/i/{token}")
                .app_data(form_config.clone())
                .on(Method::GET, invitation_page)
                .on(Method::POST, invitation_post)
                .finish(),
        )
        .service(
            page("/u/{token}")
                .app_data(form_config)
                .on(Method::GET, form::unsubscribe_page)
                .on(Method::POST, form::unsubscribe)
                .finish(),
        );
}
