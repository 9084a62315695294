//! Analysts' sessions on the results pages: sign in with an analyst or admin key at `/login`,
//! receive an HttpOnly, SameSite=Strict cookie, sign out at `/logout`.
//!
//! The cookie holds the key's id, an expiry and a keyed hash of both (the server's secret,
//! domain-separated from the form's CSRF tokens): any instance behind a load balancer can check it
//! without shared session storage, and every request also checks that the key still exists and
//! is not revoked, so revoking a key ends its sessions at once.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::form::{csrf_cookie, csrf_token, language, new_cookie_value, query_value, render, set_cookie};
use super::texts::{ResultsTexts as Texts, results_texts as texts};
use crate::app::AppState;
use crate::auth::{self, Principal, Role};
use crate::db::{self, DbError};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "sipas_session";
/// How long a session lasts.
pub const SESSION_SECONDS: i64 = 8 * 3600;

fn mac(secret: &[u8], key_id: i64, expires: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(b"session\0");
    mac.update(&key_id.to_le_bytes());
    mac.update(&expires.to_le_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The cookie value of a session of `key_id` ending at `expires` (Unix seconds).
pub fn issue(secret: &[u8], key_id: i64, expires: i64) -> String {
    format!("{key_id}.{expires}.{}", mac(secret, key_id, expires))
}

/// The key id of a genuine, unexpired session cookie value.
pub fn verify(secret: &[u8], value: &str, now: i64) -> Option<i64> {
    let mut parts = value.splitn(3, '.');
    let key_id: i64 = parts.next()?.parse().ok()?;
    let expires: i64 = parts.next()?.parse().ok()?;
    let presented = parts.next()?;
    let expected = mac(secret, key_id, expires);
    let genuine: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
    (genuine && !expected.is_empty() && now < expires).then_some(key_id)
}

/// The signed-in analyst or admin behind the request, while the key is still valid.
pub async fn signed_in(state: &AppState, request: &HttpRequest) -> Result<Option<Principal>, DbError> {
    let Some(cookie) = request.cookie(SESSION_COOKIE) else { return Ok(None) };
    let Some(key_id) = verify(&state.dossier_secret, cookie.value(), Utc::now().timestamp()) else {
        return Ok(None);
    };
    let principal = db::run(&state.pool, move |conn| auth::active_principal(conn, key_id)).await?;
    Ok(principal.filter(|p| matches!(p.role, Role::Analyst | Role::Admin)))
}

fn session_cookie(value: &str, max_age: i64, secure_only: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure_only { "; Secure" } else { "" }
    ))
    .ok()
}

/// A response that also removes a session cookie the request carried but that is not valid.
pub fn forget_session(mut response: HttpResponse) -> HttpResponse {
    if let Some(value) = session_cookie("", 0, false) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Where to go after signing in: only a results page of this server (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == "/results" || path.starts_with("/results/") || path.starts_with("/results?"))
                && !path.contains("//")
                && !path.contains('\\')
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path.to_owned()
        }
        _ => "/results".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    lang: &'a str,
    t: &'static Texts,
    csrf: String,
    next: String,
    switch_url: String,
    error: Option<&'a str>,
}

fn login_page(t: &'static Texts, status: StatusCode, csrf: String, next: String, error: Option<&str>) -> HttpResponse {
    let switch_url = format!(
        "/login?{}",
        serde_urlencoded::to_string([("lang", t.other_lang), ("next", next.as_str())]).unwrap_or_default()
    );
    let page = LoginPage { lang: t.lang, t, csrf, next, switch_url, error };
    render(&page, status)
}

/// `GET /login`: the sign-in form.
pub async fn login_form(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let t = texts(language(&request, query_value(&request, "lang").as_deref()));
    let next = safe_next(query_value(&request, "next").as_deref());
    let (cookie, fresh) = match csrf_cookie(&request) {
        Some(cookie) => (cookie, false),
        None => (new_cookie_value(), true),
    };
    let mut response = login_page(t, StatusCode::OK, csrf_token(&state.dossier_secret, &cookie), next, None);
    if fresh {
        set_cookie(&mut response, &cookie, state.settings.public_base().starts_with("https://"));
    }
    response
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

fn csrf_ok(state: &AppState, request: &HttpRequest, posted: Option<&str>) -> bool {
    let Some(cookie) = csrf_cookie(request) else { return false };
    let expected = csrf_token(&state.dossier_secret, &cookie);
    !expected.is_empty() && posted.is_some_and(|p| expected.as_bytes().ct_eq(p.as_bytes()).into())
}

fn redirect(location: &str) -> HttpResponse {
    super::form::secure(HttpResponse::SeeOther().insert_header((header::LOCATION, location.to_owned())).finish())
}

/// `POST /login`: checks the key and starts a session.
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let fields = body.into_inner();
    let t = texts(language(&request, field(&fields, "_lang")));
    let next = safe_next(field(&fields, "next"));
    let again = |status, error| {
        let cookie = csrf_cookie(&request).unwrap_or_default();
        login_page(t, status, csrf_token(&state.dossier_secret, &cookie), next.clone(), Some(error))
    };
    if !csrf_ok(&state, &request, field(&fields, "_csrf")) {
        return login_form_again(&state, t, next.clone(), t.login_expired);
    }
    let token = field(&fields, "key").unwrap_or_default().trim().to_owned();
    if token.is_empty() || token.len() > 200 {
        return again(StatusCode::UNAUTHORIZED, t.login_failed);
    }
    let principal = match db::run(&state.pool, move |conn| auth::authenticate(conn, &token)).await {
        Ok(principal) => principal,
        Err(error) => {
            tracing::warn!(error.cause = %error, "sign-in could not reach the database");
            let mut response = again(StatusCode::SERVICE_UNAVAILABLE, t.unavailable);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            return response;
        }
    };
    let Some(principal) = principal.filter(|p| matches!(p.role, Role::Analyst | Role::Admin)) else {
        return again(StatusCode::UNAUTHORIZED, t.login_failed);
    };
    let expires = Utc::now().timestamp() + SESSION_SECONDS;
    let value = issue(&state.dossier_secret, principal.key_id, expires);
    tracing::info!(key.id = principal.key_id, "analyst signed in to the results pages");
    let mut response = redirect(&next);
    if let Some(cookie) = session_cookie(&value, SESSION_SECONDS, state.settings.public_base().starts_with("https://"))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The form again with a fresh CSRF cookie (the old one was missing or did not match).
fn login_form_again(state: &AppState, t: &'static Texts, next: String, error: &str) -> HttpResponse {
    let cookie = new_cookie_value();
    let mut response =
        login_page(t, StatusCode::FORBIDDEN, csrf_token(&state.dossier_secret, &cookie), next, Some(error));
    set_cookie(&mut response, &cookie, state.settings.public_base().starts_with("https://"));
    response
}

/// `POST /logout`: ends the session.
pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let fields = body.into_inner();
    if !csrf_ok(&state, &request, field(&fields, "_csrf")) {
        let t = texts(language(&request, field(&fields, "_lang")));
        return login_form_again(&state, t, "/results".to_owned(), t.login_expired);
    }
    forget_session(redirect(&safe_next(field(&fields, "next"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_and_expire() {
        let value = issue(b"secret", 7, 1_000);
        assert_eq!(verify(b"secret", &value, 999), Some(7));
        assert_eq!(verify(b"secret", &value, 1_000), None, "expired");
        assert_eq!(verify(b"other", &value, 999), None, "another server's secret");
        let forged = value.replacen("7.", "8.", 1);
        assert_eq!(verify(b"secret", &forged, 999), None, "another key id");
        let extended = value.replacen(".1000.", ".9999.", 1);
        assert_eq!(verify(b"secret", &extended, 999), None, "a longer expiry");
        assert_eq!(verify(b"secret", "garbage", 0), None);
        assert_eq!(verify(b"secret", "7.1000.", 0), None);
    }

    #[test]
    fn only_results_pages_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/results/demo-2024?agency=01&lang=en")), "/results/demo-2024?agency=01&lang=en");
        assert_eq!(safe_next(Some("https://evil.example/")), "/results");
        assert_eq!(safe_next(Some("//evil.example/results")), "/results");
        assert_eq!(safe_next(Some("/results/x//evil")), "/results");
        assert_eq!(safe_next(Some("/resultsevil")), "/results");
        assert_eq!(safe_next(None), "/results");
    }
}
