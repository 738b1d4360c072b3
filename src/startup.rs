//! Builds the application: database, actors, middleware and routes, bound to a listener.

use std::sync::Arc;
use std::time::Duration;

use actix::Actor as _;
use actix_cors::Cors;
use actix_web::dev::{Server, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpMessage as _, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use anyhow::Context;
use migration::MigratorTrait as _;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::auth::password::Passwords;
use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::AccessTokens;
use crate::db::{Db, Pools};
use crate::error::ApiError;
use crate::group_commit::GroupCommit;
use crate::mail::Mailer;
use crate::public::cache::PublicCache;
use crate::realtime::Broker;
use crate::realtime::bus::Bus;
use crate::scheduler::Scheduler;
use crate::settings::Settings;
use crate::state::AppState;
use crate::storage::LocalStorage;
use crate::{
    admin, auth, bootstrap, committees, directory, documents, events, indicators, meetings, openapi, public, realtime,
    tasks,
};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects, migrates, starts the actors and binds (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // As many workers as actix would start by default, said explicitly: the database's
        // connections are shared out between them.
        let workers = settings.server.workers.unwrap_or_else(default_workers);
        let Pools {
            requests: db,
            writes,
            per_worker,
        } = Db::connect_server(&settings.database, workers).await?;
        migration::Migrator::up(db.conn(), None)
            .await
            .context("Failed to run the migrations")?;
        crate::reference::load::ensure_loaded(&db)
            .await
            .context("Failed to load the reference data")?;
        bootstrap::ensure_secretariat(&db, &settings).await?;

        let mailer = Mailer::new(db.clone(), settings.mail.clone())?.start();
        let broker = Broker::new(settings.realtime.max_pending_bytes).start();
        let registry = prometheus::Registry::new();
        let bus_gauge = prometheus::IntGauge::new("dcports_bus_redis_up", "1 while the Redis bus is connected")?;
        registry.register(Box::new(bus_gauge.clone()))?;
        let public_cache = Arc::new(PublicCache::new(
            Duration::from_secs(settings.public.cache_ttl_secs),
            settings.public.cache_max_bytes,
        ));
        let bus = match settings.bus.redis_url.trim() {
            "" => Bus::local(),
            url => Bus::redis(
                url,
                &settings.bus.topic,
                broker.clone(),
                bus_gauge,
                public_cache.clone(),
            )?,
        };
        let storage = LocalStorage::new(&settings.documents.storage_dir)?;
        Scheduler::new(db.clone(), settings.events.clone(), storage.clone()).start();
        let writes = GroupCommit::start(writes, realtime::publisher(bus.clone(), broker.clone()), &registry)?;
        let state = web::Data::new(AppState {
            writes,
            tokens: Arc::new(AccessTokens::new(&settings.auth)?),
            passwords: Passwords::new(&settings.auth)?,
            throttle: Arc::new(match settings.bus.redis_url.trim() {
                "" => LoginThrottle::in_memory(Duration::from_secs(settings.auth.failure_window_secs)),
                url => LoginThrottle::shared(
                    Duration::from_secs(settings.auth.failure_window_secs),
                    url,
                    &settings.bus.topic,
                )?,
            }),
            socket_checks: realtime::Admission::new(settings.realtime.concurrent_checks),
            db,
            mailer,
            broker,
            bus,
            storage,
            public_cache,
            settings,
        });
        let metrics = PrometheusMetricsBuilder::new("dcports")
            .registry(registry)
            .endpoint("/metrics")
            .mask_unmatched_patterns("UNKNOWN")
            .build()
            .map_err(|error| anyhow::anyhow!("Failed to set up metrics: {error}"))?;
        let app_state = state.clone();
        crate::scheduler::start_reminders(state.clone());
        let address = (state.settings.server.host.clone(), state.settings.server.port);
        let public_limit = public::guard::rate_limit(
            state.settings.public.rate_limit_per_minute,
            state.settings.public.rate_limit_burst,
        )?;
        let server = HttpServer::new(move || {
            let state = match per_worker {
                Some(pool_size) => worker_state(&app_state, pool_size),
                None => app_state.clone(),
            };
            build_app(state, metrics.clone(), public_limit.clone())
        })
        .workers(workers)
        // Thousands of sockets may (re)connect at once after a restart.
        .backlog(4096)
        // Events are small frames written one after another. With Nagle's algorithm a frame
        // waits for the ACK of the one before, which a client in delayed-ACK mode holds back
        // for 40 ms or more; a socket's writes are already coalesced where it matters.
        .tcp_nodelay(true)
        .shutdown_timeout(30)
        // Signals are ours: sockets are told to reconnect elsewhere before the server stops.
        .disable_signals()
        .bind(&address)
        .with_context(|| {
            format!(
                "Failed to bind {}:{} (settings server.host, server.port)",
                address.0, address.1
            )
        })?;
        let port = server
            .addrs()
            .first()
            .map(|addr| addr.port())
            .context("the server bound no address")?;
        let server = server.run();
        tracing::info!(port, "dcports listening");
        Ok(Self { port, server, state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for embedding and for tests that reach past the HTTP API. Its `db` is
    /// the pool for the work outside requests; on PostgreSQL the workers query on their own.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: new connections are refused,
    /// sockets are closed with 1012 (service restart: reconnect and resume), in-flight requests
    /// finish, what waits for the bus is published, and the process returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let broker = self.state.broker.clone();
        actix_web::rt::spawn(async move {
            if wait_for_shutdown_signal().await.is_err() {
                return;
            }
            tracing::info!("shutting down: closing sockets with 1012 and finishing in-flight requests");
            let _ = broker.send(crate::realtime::Shutdown).await;
            handle.stop(true).await;
        });
        let served = self.server.await;
        // The last requests' events may still wait in the bus's queue, which ends with the
        // process: the other nodes' sockets would hear them only when they next resume.
        if !self.state.bus.flush(BUS_FLUSH_DEADLINE).await {
            tracing::warn!(
                "the bus could not be flushed before stopping; other nodes' clients will catch up by resuming"
            );
        }
        served
    }
}

/// actix's own default: one worker per CPU this process may use, at most 512.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .min(crate::settings::MAX_WORKERS)
}

thread_local! {
    /// This worker thread's state, and the server's it was made from.
    static WORKER_STATE: std::cell::RefCell<Option<(web::Data<AppState>, web::Data<AppState>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The state of the worker calling, with its own pool: made on the worker's first call, then
/// the same. actix builds a worker's app once per listener (a host name may resolve to two
/// addresses) and again if its service fails; each must not open a pool more.
fn worker_state(server: &web::Data<AppState>, pool_size: u32) -> web::Data<AppState> {
    WORKER_STATE.with_borrow_mut(|made| match made {
        Some((made_from, state)) if Arc::ptr_eq(made_from, server) => state.clone(),
        _ => {
            let state = web::Data::new(server.with_worker_pool(pool_size));
            *made = Some((server.clone(), state.clone()));
            state
        }
    })
}

/// The longest a stopping node waits for its bus queue to be published.
const BUS_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// The public area's rate limiter, built once so that every worker shares its counts.
type PublicLimit = actix_governor::GovernorConfig<
    public::guard::ClientAddress,
    actix_governor::governor::middleware::NoOpMiddleware<actix_governor::governor::clock::QuantaInstant>,
>;

fn build_app(
    state: web::Data<AppState>,
    metrics: PrometheusMetrics,
    public_limit: PublicLimit,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let settings = &state.settings;
    App::new()
        .app_data(state.clone())
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()))
        // Innermost: routing sees HEAD as GET, the logs and metrics see what was sent.
        .wrap(actix_web::middleware::from_fn(crate::methods::head_as_get))
        .wrap(actix_web::middleware::from_fn(crate::input::bound_body_pauses))
        .wrap(actix_web::middleware::from_fn(crate::input::refuse_nul))
        .wrap(actix_web::middleware::from_fn(crate::input::refuse_unknown_encodings))
        // CORS inside the error handlers and the security headers: its own refusals are
        // errors like any other.
        .wrap(cors(settings))
        .wrap(ErrorHandlers::new().default_handler(problem_for_bare_errors))
        .wrap(security_headers(settings))
        .wrap(metrics)
        .wrap(actix_web::middleware::from_fn(echo_request_id))
        .wrap(actix_web::middleware::from_fn(writes_expire_public_cache))
        .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/api/openapi.json", web::get().to(openapi::serve))
        .configure(realtime::routes::configure)
        .service(
            web::scope("/api/public")
                .wrap(actix_web::middleware::from_fn(public::guard::cache_validators))
                .wrap(actix_governor::Governor::new(&public_limit))
                .wrap(actix_web::middleware::from_fn(public::guard::read_only))
                .configure(public::routes::configure),
        )
        .service(
            web::scope("/api/admin")
                .configure(admin::routes::configure)
                .configure(committees::routes::configure_admin)
                .configure(documents::routes::configure_admin)
                .configure(directory::routes::configure)
                .configure(indicators::routes::configure_admin),
        )
        .service(
            web::scope("/api")
                .configure(auth::routes::configure)
                .configure(committees::routes::configure_member)
                .configure(documents::routes::configure_member)
                .configure(tasks::routes::configure)
                .configure(meetings::routes::configure)
                .configure(indicators::routes::configure_member)
                .configure(events::routes::configure),
        )
        .service(
            web::scope("")
                .guard(actix_web::guard::fn_guard(|ctx| {
                    public::pages::is_page(ctx.head().uri.path())
                }))
                .wrap(actix_web::middleware::from_fn(public::guard::cache_validators))
                .wrap(actix_governor::Governor::new(&public_limit))
                .wrap(actix_web::middleware::from_fn(public::guard::read_only))
                .configure(public::pages::configure),
        )
        .default_service(web::to(crate::methods::not_routed))
}

/// Turns any error response that is not already problem+json (unknown routes, wrong methods,
/// framework errors) into one, so clients never see HTML or an empty error body.
fn problem_for_bare_errors<B>(response: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    // WebSocket closes and upgrades are not ours to rewrite.
    if is_problem || response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let error = match response.status() {
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType("the type the API documentation gives"),
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
        StatusCode::FORBIDDEN => ApiError::Forbidden,
        status if status.is_server_error() => ApiError::Internal(anyhow::anyhow!("framework error {status}")),
        status => ApiError::BadRequest(status.canonical_reason().unwrap_or("bad request").to_lowercase()),
    };
    let (request, original) = response.into_parts();
    let mut problem = error.error_response();
    // Keep what the framework said around the error (CORS, `Allow`), not its body's type.
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, problem).map_into_right_body(),
    ))
}

fn security_headers(settings: &Settings) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if settings.uses_https() {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains"))
    } else {
        headers
    }
}

/// The headers a browser client on another allowed origin may send and read: besides the
/// API's own, those of a resumed download (`Range`, `If-Range`, `Content-Range`) and the
/// download's file name (`Content-Disposition`), which a script cannot see unless exposed.
fn cors(settings: &Settings) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_RANGE,
            header::RANGE,
        ])
        .expose_headers([
            header::ACCEPT_RANGES,
            header::CONTENT_DISPOSITION,
            header::CONTENT_RANGE,
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600);
    settings
        .server
        .allowed_origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
}

/// Sends the request id that tags this request's log lines back in `X-Request-Id`.
async fn echo_request_id(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let request_id = request.extensions().get::<RequestId>().map(|id| id.to_string());
    let mut response = next.call(request).await?;
    if let Some(value) = request_id.and_then(|id| header::HeaderValue::from_str(&id).ok()) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

/// A successful write may have changed what the public area shows: its cached answers on this
/// node are stale from now on (other nodes learn it from the bus).
async fn writes_expire_public_cache(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let writes = !matches!(
        *request.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD | actix_web::http::Method::OPTIONS
    );
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(request).await?;
    if writes && response.status().is_success() {
        if let Some(state) = state {
            state.public_cache.changed();
        }
    }
    Ok(response)
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "ok")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503)))]
pub async fn readyz(state: web::Data<AppState>, _: HttpRequest) -> HttpResponse {
    let bus = match state.bus.redis_up() {
        None => "local",
        Some(true) => "redis",
        // Still ready: local delivery goes on and clients catch up by resuming.
        Some(false) => "redis unreachable",
    };
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "database": "ok", "bus": bus })),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "status": "unavailable", "database": "unreachable" }))
        }
    }
}

async fn wait_for_shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use actix_web::body::{BoxBody, EitherBody};
    use actix_web::http::{StatusCode, header};
    use actix_web::middleware::ErrorHandlerResponse;
    use actix_web::test::TestRequest;
    use actix_web::{HttpResponse, dev::ServiceResponse};

    use super::problem_for_bare_errors;

    #[actix_web::test]
    async fn a_bare_framework_error_becomes_a_problem_and_keeps_its_headers() {
        let bare = HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "https://portal.sela.org"))
            .content_type("text/plain")
            .body("method not allowed");
        let response = ServiceResponse::new(TestRequest::default().to_http_request(), bare);
        let Ok(ErrorHandlerResponse::Response(problem)) = problem_for_bare_errors::<BoxBody>(response) else {
            panic!("the handler answers at once");
        };
        let problem: ServiceResponse<EitherBody<BoxBody>> = problem;
        assert_eq!(problem.status(), StatusCode::METHOD_NOT_ALLOWED);
        let headers = problem.headers();
        let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
        assert_eq!(header(header::CONTENT_TYPE), Some("application/problem+json"));
        assert_eq!(header(header::ALLOW), Some("GET"));
        assert_eq!(
            header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://portal.sela.org")
        );
    }
}
