//! The `Authorization: Bearer` extractor: missing, unknown or revoked keys are refused with 401,
//! a role that does not fit with 403.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use crate::app::AppState;
use crate::auth::{self, Principal, Role};
use crate::db;
use crate::error::{ApiError, ErrorCode};

/// A caller who presented a valid API key.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The principal, if its role is one of `roles`; otherwise 403.
    pub fn require(self, roles: &[Role]) -> Result<Principal, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(self.0)
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this needs a key with role {}; this key has role {}", allowed.join(" or "), self.0.role),
            ))
        }
    }
}

fn bearer_token(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let token = bearer_token(request);
        let state = request.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let unauthorized = |detail: &str| ApiError::new(ErrorCode::Unauthorized, detail);
            let token = token.ok_or_else(|| unauthorized("send an API key as `Authorization: Bearer KEY`"))?;
            let state = state.ok_or_else(|| ApiError::new(ErrorCode::Internal, "application state missing"))?;
            let principal = db::run(&state.pool, move |conn| auth::authenticate(conn, &token)).await?;
            principal.map(Authenticated).ok_or_else(|| unauthorized("the API key is unknown or revoked"))
        })
    }
}
