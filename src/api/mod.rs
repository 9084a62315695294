//! JSON handlers, one file per resource, and the OpenAPI document they make up. Handlers are
//! short: extract, authorise, call one service function, map to a response type.

pub mod agencies;
pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod health;
pub mod invitations;
pub mod keys;
pub mod responses;
pub mod stats;
pub mod surveys;

use actix_web::HttpRequest;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ApiError, ErrorCode, FieldError, Problem};

/// The parts of the OpenAPI document not collected from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sipas",
        description = "Satisfaction Index of Public Administrative Services: survey definitions, \
                       agency registry, response intake and statistics.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(
        Problem,
        FieldError,
        crate::report::Scope,
        crate::report::Rollup,
        crate::report::Weights,
        crate::api::stats::StatsFormat,
        crate::report::microdata::MicrodataFormat
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "surveys", description = "Published survey definitions"),
        (name = "agencies", description = "Agencies and administrative units, with their history"),
        (name = "keys", description = "API keys (admin)"),
        (name = "campaigns", description = "Survey rounds"),
        (name = "responses", description = "Posting and reading responses"),
        (name = "invitations", description = "Personal one-time links sent by email"),
        (name = "statistics", description = "Indices, exports, population counts, codebook and reliability"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme API keys use.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Error media type of every API error (RFC 9457).
const PROBLEM_JSON: &str = "application/problem+json";

/// Makes the document say what every operation can answer when it refuses: every error is
/// `application/problem+json` with the `Problem` schema, and the errors any operation can meet
/// (a malformed request, oversized headers, an unreachable database; a missing or insufficient key
/// where a key is needed; a body of the wrong size or type where there is a body) are listed on
/// each. Applied to the collected document, so that no handler can forget one.
pub fn document_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = || ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    for item in openapi.paths.paths.values_mut() {
        let operations =
            [item.get.as_mut(), item.post.as_mut(), item.put.as_mut(), item.patch.as_mut(), item.delete.as_mut()];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.as_str() >= "400", response) {
                    response.content.shift_remove("application/json");
                    response.content.insert(PROBLEM_JSON.to_owned(), problem());
                }
            }
            let mut common = vec![
                ("400", "Malformed request or parameter"),
                ("431", "Header fields too large"),
                ("500", "Unexpected failure"),
                ("503", "Database unavailable; retry after the Retry-After delay"),
            ];
            if secured {
                common.extend([
                    ("401", "Missing, unknown or revoked key"),
                    ("403", "The key's role or scope forbids this"),
                ]);
            }
            if has_body {
                common.extend([
                    ("413", "Body too large"),
                    ("415", "Unsupported media type"),
                    ("422", "The body does not fit"),
                ]);
            }
            for (status, description) in common {
                responses.entry(status.to_owned()).or_insert_with(|| {
                    RefOr::T(ResponseBuilder::new().description(description).content(PROBLEM_JSON, problem()).build())
                });
            }
        }
    }
}

/// The answer for a request no route matches: problem+json under `/api`, as for every API error.
pub async fn not_found(request: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::new(ErrorCode::NotFound, format!("no resource at {}", request.path())).error_response()
}

/// Error handler for query strings that do not deserialize.
pub fn query_error(error: actix_web::error::QueryPayloadError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::InvalidParameter, format!("query string: {error}")).into()
}

/// Error handler for path segments that do not deserialize.
pub fn path_error(error: actix_web::error::PathError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::InvalidParameter, format!("path: {error}")).into()
}

/// Error handler for JSON bodies: too large → 413, wrong media type → 415, malformed → 400.
pub fn json_error(error: actix_web::error::JsonPayloadError, _request: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let api_error = match &error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, error.to_string())
        }
        JsonPayloadError::ContentType => {
            ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json")
        }
        _ => ApiError::new(ErrorCode::MalformedBody, error.to_string()),
    };
    api_error.into()
}

/// The request's media type without parameters, lowercase (`application/json`), or empty.
pub fn media_type(request: &HttpRequest) -> String {
    let content_type =
        request.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Error handler for raw bodies over the size limit.
pub fn payload_error(error: actix_web::error::PayloadError) -> ApiError {
    match error {
        actix_web::error::PayloadError::Overflow => ApiError::new(ErrorCode::PayloadTooLarge, "request body too large"),
        other => ApiError::new(ErrorCode::MalformedBody, other.to_string()),
    }
}

/// A 422 for an uploaded table (CSV rows) with the row and column of every fault.
pub fn rows_refused(
    code: ErrorCode,
    detail: String,
    faults: impl IntoIterator<Item = (String, String, String)>,
) -> ApiError {
    ApiError::new(code, detail).with_errors(
        faults
            .into_iter()
            .map(|(row, field, message)| FieldError {
                field: format!("{row}: {field}"),
                code: "invalid".to_owned(),
                message,
            })
            .collect(),
    )
}

/// Reads a whole request body of at most `limit` bytes: a declared `Content-Length` over the
/// limit is refused before anything is read, and the stream is cut off once it passes the limit.
pub async fn read_body(
    request: &HttpRequest,
    mut payload: actix_web::web::Payload,
    limit: usize,
) -> Result<actix_web::web::BytesMut, ApiError> {
    use futures_util::StreamExt;
    let too_large = || ApiError::new(ErrorCode::PayloadTooLarge, format!("the body may be at most {limit} bytes"));
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    // Room for the declared length (already known to be within the limit), so that a large
    // batch is not copied again each time the buffer fills.
    let mut body = actix_web::web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(payload_error)?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
