//! Builds the service: prepares the database (migrations, shipped definitions, the agency
//! registry), then the actix application with its routes, middleware and shared state.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::Method;
use actix_web::{App, HttpResponse, HttpServer, web};
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, scope};

use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::agency::import::{ImportError, ensure_embedded_registry};
use crate::api::{
    self, AllowingResource, agencies, audit, campaigns, health, invitations, keys, responses, stats, surveys,
};
use crate::campaign::context::CampaignCache;
use crate::config::Settings;
use crate::db::{self, DatabaseTarget, DbError, Pool, PoolOptions, UnsupportedDatabaseUrl};
use crate::intake::writer::Writer;
use crate::survey::defaults::{EmbeddedDefinitionError, embedded_definitions};
use crate::survey::store::{self as survey_store, PublishError, PublishOutcome};

/// Largest JSON body accepted by default.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;
/// Largest total size of a request's header fields (names and values): browsers and partner
/// systems send a few kilobytes; more is refused before any handler runs.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest definition file accepted over the API.
const DEFINITION_BODY_LIMIT: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Database connections.
    pub pool: Pool,
    /// The settings the server was started with.
    pub settings: Arc<Settings>,
    /// Campaigns as the write path needs them.
    pub campaigns: Arc<CampaignCache>,
    /// The group-commit writer of responses.
    pub writer: Writer,
    /// Key of the dossier identifiers' keyed hash (and, domain-separated, of the form's CSRF
    /// tokens).
    pub dossier_secret: Arc<Vec<u8>>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// API keys verified in the last few seconds.
    pub keys: Arc<crate::api::auth::KeyCache>,
    /// Per-IP limit on completed open-link submissions (`None`: no limit).
    pub form_limiter: Option<Arc<crate::web::FormLimiter>>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database URL names no supported backend.
    #[error(transparent)]
    DatabaseUrl(#[from] UnsupportedDatabaseUrl),
    /// The database could not be reached or prepared.
    #[error("database {target}: {source}")]
    Database {
        /// The database, with any password hidden.
        target: String,
        /// What failed.
        source: DbError,
    },
    /// A shipped definition is broken.
    #[error(transparent)]
    Definition(#[from] EmbeddedDefinitionError),
    /// A shipped definition conflicts with one already published under the same version.
    #[error("shipped definition: {0}")]
    Publish(PublishError),
    /// The shipped agency registry could not be loaded.
    #[error("loading the agency registry: {0}")]
    Registry(ImportError),
    /// The listening address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A blocking task failed to run.
    #[error("startup task failed: {0}")]
    Task(String),
    /// The mail settings are not valid.
    #[error("mail settings: {0}")]
    Mail(String),
}

/// What preparing the database did, for the start-up log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Preparation {
    /// Migrations applied now.
    pub migrations_applied: usize,
    /// Shipped definitions published now.
    pub definitions_published: usize,
    /// Agencies added to the registry now.
    pub agencies_loaded: usize,
}

/// Connects to the database (failing fast with the real error), applies pending migrations and,
/// when `load_defaults`, publishes the shipped definitions and loads the agency registry.
/// Blocking: call it off the async executor.
pub fn prepare_database(target: &DatabaseTarget, load_defaults: bool) -> Result<Preparation, StartupError> {
    let database_error = |source: DbError| StartupError::Database { target: target.to_string(), source };
    let mut conn = db::connect(target).map_err(database_error)?;
    db::with_setup_lock(&mut conn, |conn| prepare_locked(conn, load_defaults)).map_err(|error| match error {
        StartupError::Database { source, .. } => database_error(source),
        other => other,
    })
}

/// Migrations and the shipped data, under the setup lock.
fn prepare_locked(conn: &mut db::DbConnection, load_defaults: bool) -> Result<Preparation, StartupError> {
    let database_error = |source: DbError| StartupError::Database { target: String::new(), source };
    let mut preparation =
        Preparation { migrations_applied: db::run_migrations(conn).map_err(database_error)?, ..Default::default() };
    if load_defaults {
        for definition in embedded_definitions()? {
            match survey_store::publish(conn, &definition) {
                Ok(PublishOutcome::Published) => preparation.definitions_published += 1,
                Ok(PublishOutcome::Unchanged) => {}
                Err(PublishError::Db(source)) => return Err(database_error(source)),
                Err(conflict) => return Err(StartupError::Publish(conflict)),
            }
        }
        match ensure_embedded_registry(conn) {
            Ok(report) => preparation.agencies_loaded = report.map_or(0, |r| r.created),
            Err(ImportError::Db(source)) => return Err(database_error(source)),
            Err(other) => return Err(StartupError::Registry(other)),
        }
    }
    Ok(preparation)
}

impl From<DbError> for StartupError {
    fn from(source: DbError) -> Self {
        Self::Database { target: String::new(), source }
    }
}

/// A running HTTP server and the port it listens on.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Prepares the database, builds the pool and binds the listening address (port 0 picks a
    /// free port).
    pub async fn build(mut settings: Settings) -> Result<Self, StartupError> {
        let target = DatabaseTarget::parse(&settings.database_url)?;
        let prepare_target = target.clone();
        let load_defaults = settings.load_defaults;
        let preparation = tokio::task::spawn_blocking(move || prepare_database(&prepare_target, load_defaults))
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;
        tracing::info!(
            database = %target,
            migrations.applied = preparation.migrations_applied,
            definitions.published = preparation.definitions_published,
            agencies.loaded = preparation.agencies_loaded,
            "database ready"
        );
        let pool_options = PoolOptions {
            max_size: settings.pool_size.max(1),
            connection_timeout: Duration::from_secs(settings.pool_timeout_seconds.max(1)),
        };
        let pool = db::build_pool(&target, &pool_options)
            .map_err(|source| StartupError::Database { target: target.to_string(), source })?;
        let configured_secret = settings.dossier_secret.clone();
        let secret_pool = pool.clone();
        let dossier_secret = match configured_secret {
            Some(secret) => secret.into_bytes(),
            None => db::run(&secret_pool, |conn| db::server_secret(conn, "dossier"))
                .await
                .map_err(|source| StartupError::Database { target: target.to_string(), source })?,
        };
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|source| StartupError::Bind { address: settings.bind.clone(), source })?;
        let local =
            listener.local_addr().map_err(|source| StartupError::Bind { address: settings.bind.clone(), source })?;
        let port = local.port();
        if settings.public_url.is_none() {
            // Links and QR codes need a reachable address: the one actually bound (port 0 resolved).
            settings.public_url = Some(format!("http://{local}"));
        }
        let form_limiter = crate::web::form_limiter(settings.form_rate_limit);
        spawn_housekeeping(
            pool.clone(),
            settings.idempotency_retention_days,
            settings.invitation_retention_days,
            form_limiter.clone(),
        );
        let campaigns = Arc::new(CampaignCache::default());
        match settings.mail_config(dossier_secret.clone()).map_err(|e| StartupError::Mail(e.to_string()))? {
            Some(config) => {
                let (pool, campaigns) = (pool.clone(), campaigns.clone());
                tokio::spawn(async move {
                    if let Err(error) = crate::mail::worker::run(pool, campaigns, config).await {
                        tracing::error!(error.cause = %error, "the mail worker stopped");
                    }
                });
            }
            None => tracing::info!("no SMTP server configured (SIPAS_SMTP_URL): invitations wait in the outbox"),
        }
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let state = AppState {
            writer: Writer::start(
                pool.clone(),
                metrics.clone(),
                std::time::Duration::from_millis(settings.tally_fold_ms),
            ),
            metrics,
            keys: Arc::new(crate::api::auth::KeyCache::default()),
            pool,
            settings: Arc::new(settings),
            campaigns,
            dossier_secret: Arc::new(dossier_secret),
            form_limiter,
        };
        let server = run(listener, state)?;
        Ok(Self { port, server })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped (SIGTERM or Ctrl-C finish in-flight requests first).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The API routes under `/api/v1`, shared by the server and the OpenAPI document.
fn api_routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        // Partner systems post far more often than anything else is asked: their routes are
        // matched first (routes with path parameters cost a pattern match each).
        .service(responses::create)
        .service(responses::batch)
        .service(keys::create)
        .service(keys::list)
        .service(keys::revoke)
        .service(audit::list)
        .service(campaigns::create)
        .service(campaigns::list)
        .service(campaigns::detail)
        .service(campaigns::update)
        .service(invitations::create)
        .service(invitations::summary)
        .service(stats::stats)
        .service(stats::put_population)
        .service(stats::get_population)
        .service(stats::export_responses)
        .service(stats::get_codebook)
        .service(stats::get_reliability)
        .service(responses::detail)
        .service(surveys::list)
        .service(surveys::publish)
        .service(surveys::latest)
        .service(surveys::survey_version)
        .service(agencies::list)
        .service(agencies::detail);
}

/// The OpenAPI document, collected from the handlers' annotations.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, openapi) = App::new()
        .into_utoipa_app()
        .openapi(api::ApiDoc::openapi())
        .service(health::healthz)
        .service(health::readyz)
        .service(scope("/api/v1").configure(api_routes))
        .split_for_parts();
    let mut openapi = openapi;
    api::document_errors(&mut openapi);
    openapi
}

/// Starts serving on `listener`.
pub fn run(listener: TcpListener, state: AppState) -> Result<Server, StartupError> {
    let workers = match state.settings.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let keep_alive = Duration::from_secs(state.settings.keep_alive_seconds);
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let openapi = openapi_document();
    let openapi_json = web::Data::new(OpenApiJson(openapi.to_pretty_json().unwrap_or_default()));
    let documented_paths = web::Data::new(api::DocumentedPaths::of(&openapi));
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(openapi_json.clone())
            .app_data(documented_paths.clone())
            .app_data(web::JsonConfig::default().limit(JSON_BODY_LIMIT).error_handler(api::json_error))
            .app_data(web::PathConfig::default().error_handler(api::path_error))
            .app_data(web::PayloadConfig::default().limit(DEFINITION_BODY_LIMIT))
            // Before the `/api/v1` scope, which would otherwise answer 404 for this path.
            .service(AllowingResource::new("/api/v1/openapi.json").on(Method::GET, serve_openapi).finish())
            .service(health::healthz)
            .service(health::readyz)
            .service(AllowingResource::new("/metrics").on(Method::GET, health::metrics).finish())
            .service(
                web::scope("/api/v1")
                    .configure(|config| api_routes(&mut utoipa_actix_web::service_config::ServiceConfig::new(config))),
            )
            .service(
                SwaggerUi::new("/api/docs/{_:.*}")
                    .config(SwaggerConfig::new(["/api/v1/openapi.json"]).validator_url("none")),
            )
            .service(AllowingResource::new("/api/docs").on(Method::GET, || async { redirect("/api/docs/") }).finish())
            .configure(crate::web::configure)
            .default_service(web::to(api::not_found))
            // HEAD is answered as GET (RFC 9110 §9.3.2): the router sees GET, and the connection,
            // which read the request as HEAD, sends the headers alone. Innermost, so that the log
            // and the metrics name the method the client sent.
            .wrap_fn(|mut request, service| {
                use actix_web::dev::Service;
                if request.method() == Method::HEAD {
                    request.head_mut().method = Method::GET;
                    actix_web::HttpMessage::extensions_mut(&request).insert(api::SentAsHead);
                }
                service.call(request)
            })
            .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
            // Requests by route and status, and their latency.
            .wrap_fn(|request, service| {
                use actix_web::dev::Service;
                let started = std::time::Instant::now();
                let method = request.method().as_str().to_owned();
                let response = service.call(request);
                async move {
                    let response = response.await?;
                    if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
                        let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                        state.metrics.observe_request(
                            &method,
                            &route,
                            response.status().as_u16(),
                            started.elapsed().as_secs_f64(),
                        );
                    }
                    Ok(response)
                }
            })
            .wrap_fn(|request, service| {
                use actix_web::dev::Service;
                let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
                let call = if size > MAX_HEADER_BYTES {
                    Err(actix_web::Error::from(crate::error::ApiError::new(
                        crate::error::ErrorCode::HeadersTooLarge,
                        format!("the header fields take {size} bytes; at most {MAX_HEADER_BYTES} are accepted"),
                    )))
                } else {
                    Ok(service.call(request))
                };
                async move { call?.await }
            })
            // Outermost: every request has an id before its span is opened, and every response
            // carries it back.
            .wrap_fn(|mut request, service| {
                use actix_web::dev::Service;
                use actix_web::http::header::{HeaderName, HeaderValue};
                let name = HeaderName::from_static(crate::telemetry::REQUEST_ID);
                let given = request.headers().get(&name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let id = given
                    .filter(|id| crate::telemetry::valid_request_id(id))
                    .unwrap_or_else(|| ulid::Ulid::new().to_string());
                let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
                request.headers_mut().insert(name.clone(), value.clone());
                let response = service.call(request);
                async move {
                    let mut response = response.await?;
                    response.headers_mut().insert(name, value);
                    Ok(response)
                }
            })
    })
    .workers(workers)
    .keep_alive(keep_alive)
    .shutdown_timeout(30)
    .listen(listener)
    .map_err(|source| StartupError::Bind { address, source })?
    .run();
    Ok(server)
}

/// The OpenAPI document, serialised once at start.
struct OpenApiJson(String);

async fn serve_openapi(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document.0.clone())
}

/// Deletes expired idempotency records once an hour and trims the form rate limiter.
fn spawn_housekeeping(
    pool: Pool,
    retention_days: u32,
    invitation_retention_days: u32,
    form_limiter: Option<Arc<crate::web::FormLimiter>>,
) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(3600));
        loop {
            interval.tick().await;
            // Forget addresses whose limit has fully replenished: the limiter's memory stays small.
            if let Some(limiter) = &form_limiter {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            let purged =
                db::run(&pool, move |conn| crate::intake::store::purge_idempotency_keys(conn, retention_days)).await;
            match purged {
                Ok(0) => {}
                Ok(count) => tracing::info!(idempotency.purged = count, "expired idempotency keys deleted"),
                Err(error) => tracing::warn!(error.cause = %error, "idempotency purge failed"),
            }
            match db::run(&pool, move |conn| crate::mail::purge(conn, invitation_retention_days)).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(invitations.erased = count, "invitation addresses erased after retention"),
                Err(error) => tracing::warn!(error.cause = %error, "invitation purge failed"),
            }
        }
    });
}

fn redirect(location: &'static str) -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((actix_web::http::header::LOCATION, location)).finish()
}
