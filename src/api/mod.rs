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

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
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
        crate::api::stats::LabelLanguage,
        crate::api::stats::CodebookFormat,
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

/// The methods each path of the OpenAPI document answers. The API's handlers are routed by
/// method guards, which pass a request to a documented path with another method on to the default
/// service; with this table that service answers it 405 with `Allow` (RFC 9110 §15.5.6) instead of
/// 404, which would tell a client that the path does not exist. Read from the document, so that it
/// lists what the document promises and nothing else.
#[derive(Debug, Default)]
pub struct DocumentedPaths(Vec<(ResourceDef, Vec<Method>)>);

impl DocumentedPaths {
    /// The table of a collected document.
    pub fn of(openapi: &utoipa::openapi::OpenApi) -> Self {
        Self(
            openapi
                .paths
                .paths
                .iter()
                .map(|(path, item)| {
                    let methods = [
                        (Method::GET, item.get.is_some()),
                        (Method::POST, item.post.is_some()),
                        (Method::PUT, item.put.is_some()),
                        (Method::PATCH, item.patch.is_some()),
                        (Method::DELETE, item.delete.is_some()),
                    ];
                    // Path templates (`/campaigns/{id}`) are the router's own syntax.
                    let served = methods.into_iter().filter(|(_, documented)| *documented).map(|(m, _)| m).collect();
                    (ResourceDef::new(path.as_str()), served)
                })
                .collect(),
        )
    }

    /// The methods documented for `path`: those of the template that is `path` itself, if one is
    /// (`/responses/batch`, although it also matches `/responses/{id}`, where no response has that
    /// id), else those of every template it matches; empty when none does.
    pub fn allowed(&self, path: &str) -> Vec<Method> {
        if let Some((_, methods)) = self.0.iter().find(|(template, _)| template.pattern() == Some(path)) {
            return methods.clone();
        }
        let mut allowed: Vec<Method> = Vec::new();
        for (_, methods) in self.0.iter().filter(|(template, _)| template.is_match(path)) {
            for method in methods {
                if !allowed.contains(method) {
                    allowed.push(method.clone());
                }
            }
        }
        allowed
    }
}

/// The answer for a request no route matches: when its path is documented for other methods, 405
/// with `Allow` (to OPTIONS, 204 with `Allow`), else 404; problems in problem+json, as for every
/// API error.
pub async fn not_found(request: HttpRequest, documented: Option<web::Data<DocumentedPaths>>) -> HttpResponse {
    use actix_web::ResponseError;
    let allowed = documented.map(|paths| paths.allowed(request.path())).unwrap_or_default();
    if !allowed.is_empty() {
        return method_not_allowed(&request, &allowed);
    }
    ApiError::new(ErrorCode::NotFound, format!("no resource at {}", request.path())).error_response()
}

/// Marks a request the client sent as HEAD, which is routed as GET (and answered without a body).
pub struct SentAsHead;

/// Whether the client sent this request as HEAD (it reaches the handlers as GET).
pub fn sent_as_head(request: &HttpRequest) -> bool {
    actix_web::HttpMessage::extensions(request).contains::<SentAsHead>()
}

/// The answer to a method that a path's routes do not take: to OPTIONS, 204 with `Allow`
/// (RFC 9110 §9.3.7); to any other, 405 with `Allow`. `Allow` names the routed methods, HEAD
/// wherever GET (every GET is also answered to HEAD) and OPTIONS.
pub fn method_not_allowed(request: &HttpRequest, allowed: &[Method]) -> HttpResponse {
    use actix_web::ResponseError;
    let mut names = Vec::with_capacity(allowed.len() + 2);
    for method in allowed {
        names.push(method.as_str());
        if method == Method::GET {
            names.push(Method::HEAD.as_str());
        }
    }
    names.push(Method::OPTIONS.as_str());
    let allow = names.join(", ");
    let mut response = if request.method() == Method::OPTIONS {
        HttpResponse::NoContent().finish()
    } else {
        // A HEAD request is routed as GET; the refusal names the method the client sent.
        let sent = if sent_as_head(request) { "HEAD" } else { request.method().as_str() };
        let detail = format!("{sent} is not served at {}; it answers {allow}", request.path());
        ApiError::new(ErrorCode::MethodNotAllowed, detail).error_response()
    };
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A resource outside the OpenAPI document (a page, a file) that answers the methods it does not
/// serve with 405 and `Allow`, as the documented paths do: actix-web's own answer there is a 405
/// without `Allow`, and a route added with `App::route` is not even that (its method guard makes
/// the router pass the request on, to a 404).
pub struct AllowingResource {
    resource: actix_web::Resource,
    methods: Vec<Method>,
}

impl AllowingResource {
    /// A resource at `path` serving no method yet.
    pub fn new(path: &str) -> Self {
        Self { resource: web::resource(path), methods: Vec::new() }
    }

    /// Data for this resource's handlers (a form's size limit).
    pub fn app_data<U: 'static>(mut self, data: U) -> Self {
        self.resource = self.resource.app_data(data);
        self
    }

    /// Serves `method` with `handler`.
    pub fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.methods.push(method);
        self
    }

    /// The resource, answering every other method 405.
    pub fn finish(self) -> actix_web::Resource {
        let methods = self.methods;
        self.resource.default_service(web::to(move |request: HttpRequest| {
            let methods = methods.clone();
            async move { method_not_allowed(&request, &methods) }
        }))
    }
}

/// A query string read into `T`. When it does not fit, the 400 names the parameter at fault
/// (`limit`), which actix-web's `Query` does not: its error says only what went wrong.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    /// The parameters.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned> actix_web::FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(request.query_string().as_bytes());
        let read = serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs));
        std::future::ready(read.map(Query).map_err(|error| {
            let path = error.path().to_string();
            let message = plain_serde_message(&error.into_inner().to_string());
            // An unknown parameter is reported at the top; the parameter at fault is the unknown one.
            let field = match named_in(&message, "unknown field") {
                Some(name) => name.to_owned(),
                None if is_root(&path) => "query".to_owned(),
                None => path,
            };
            ApiError::invalid_parameter(&field, message)
        }))
    }
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

/// Reads a JSON request body of at most `limit` bytes, not yet parsed: 415 when its media type is
/// not JSON (`application/json` or `application/*+json`), 413 when too large, 400 when empty.
pub async fn read_json(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<actix_web::web::BytesMut, ApiError> {
    let media = media_type(request);
    if media != "application/json" && !(media.starts_with("application/") && media.ends_with("+json")) {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json"));
    }
    let body = read_body(request, payload, limit).await?;
    if body.is_empty() {
        return Err(ApiError::new(ErrorCode::MalformedBody, "the body is empty"));
    }
    Ok(body)
}

/// Parses a JSON body into `T`. When it does not fit, the 400 names the member at fault
/// (`mail.reminders[0]`) beside serde's reason; serde_json alone gives only a line and column.
pub fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let refused = |path: String, error: serde_json::Error| {
        let message = plain_serde_message(&error.to_string());
        // serde reports a missing member at the object that lacks it; the field at fault is the member.
        let within = |member: &str| if is_root(&path) { member.to_owned() } else { format!("{path}.{member}") };
        let (field, code) = match (error.classify(), named_in(&message, "missing field")) {
            (serde_json::error::Category::Data, Some(member)) => (within(member), "required"),
            (serde_json::error::Category::Data, None) if !is_root(&path) => (path.clone(), "invalid"),
            (serde_json::error::Category::Data, None) => ("body".to_owned(), "invalid"),
            // Not JSON at all: the place is a line and column, not a member.
            _ => ("body".to_owned(), "syntax"),
        };
        ApiError::new(ErrorCode::MalformedBody, format!("`{field}`: {message}")).with_errors(vec![FieldError {
            field,
            code: code.to_owned(),
            message,
        }])
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        refused(path, error.into_inner())
    })?;
    // Nothing but white space may follow the value.
    deserializer.end().map_err(|error| refused(String::new(), error))?;
    Ok(value)
}

/// The name serde quotes after `kind` at the start of its message (`missing field `x``), if any.
fn named_in<'a>(message: &'a str, kind: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(kind)?.strip_prefix(" `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// Whether a serde_path_to_error path is the value's top (it prints as `.` or nothing).
fn is_root(path: &str) -> bool {
    path.is_empty() || path == "."
}

/// serde's message with Rust's integer type names said as what a client can send.
fn plain_serde_message(message: &str) -> String {
    let mut plain = message.to_owned();
    for (rust, said) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number from 0"),
        ("expected u64", "expected a whole number from 0"),
        ("expected usize", "expected a whole number from 0"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
    ] {
        plain = plain.replace(rust, said);
    }
    plain
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
