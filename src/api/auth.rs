//! The `Authorization: Bearer` extractor: missing, unknown or revoked keys are refused with 401,
//! a role that does not fit with 403.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// How long a verified key is trusted without asking the database again. A key revoked through
/// this instance is forgotten at once; through another instance or the command line, it stops
/// working here within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most keys remembered at once (then the memory starts over).
const KEY_CACHE_SIZE: usize = 10_000;

/// Keys verified recently, by the SHA-256 of the presented token (never the token itself): a
/// partner posting responses one by one would otherwise cost a database round trip per request
/// before its response is even read.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl KeyCache {
    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    fn get(&self, token: &str) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        let (principal, at) = entries.get(&Self::digest(token))?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| principal.clone())
    }

    fn put(&self, token: &str, principal: &Principal) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= KEY_CACHE_SIZE {
                entries.clear();
            }
            entries.insert(Self::digest(token), (principal.clone(), Instant::now()));
        }
    }

    /// Forgets a key (it was just revoked).
    pub fn forget(&self, key_id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (principal, _)| principal.key_id != key_id);
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
            if let Some(principal) = state.keys.get(&token) {
                return Ok(Authenticated(principal));
            }
            let lookup = token.clone();
            let principal = db::run(&state.pool, move |conn| auth::authenticate(conn, &lookup)).await?;
            let principal = principal.ok_or_else(|| unauthorized("the API key is unknown or revoked"))?;
            state.keys.put(&token, &principal);
            Ok(Authenticated(principal))
        })
    }
}
