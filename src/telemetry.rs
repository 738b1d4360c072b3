//! Logging: human-readable in development, JSON lines in production.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::error::ApiError;
use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: tests start many applications in one process, only the first installs.
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .finish()
            .with(QuietClientNoise)
            .try_init(),
        LogFormat::Pretty => builder.finish().with(QuietClientNoise).try_init(),
    };
}

/// Drops what the libraries log of clients' doings, which anyone could repeat without end and
/// fill the operators' log with (refused requests themselves are logged at debug):
/// - actix-http, at ERROR, every connection a client garbles or breaks ("stream error: …": a
///   request it cannot parse, a URI over 64 KiB, a reset);
/// - actix-web-prom, at WARN, every request answered before its route's parameters were read (a
///   rate-limited one, a path refused for a NUL): "Cannot build mixed cardinality pattern". The
///   metric is still counted, under the route's pattern.
struct QuietClientNoise;

const CLIENT_NOISE: [(Level, &str, &str); 2] = [
    (Level::ERROR, "actix_http::h1::dispatcher", "stream error:"),
    (Level::WARN, "actix_web_prom", "Cannot build mixed cardinality pattern"),
];

impl<S: Subscriber> Layer<S> for QuietClientNoise {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if !CLIENT_NOISE.iter().any(|(level, ..)| level == metadata.level()) {
            return true;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // An event from the `log` crate (actix-web-prom's) names its target in a field.
        let target = fields.log_target.as_deref().unwrap_or(metadata.target());
        !CLIENT_NOISE.iter().any(|(level, noisy_target, message)| {
            level == metadata.level() && target == *noisy_target && fields.message.starts_with(message)
        })
    }
}

/// An event's message, formatted, and the target of one that came from the `log` crate.
#[derive(Default)]
struct Fields {
    message: String,
    log_target: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "log.target" => self.log_target = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

/// The root span of every request. Like tracing-actix-web's default, but it records the path
/// without the query string: query strings can carry secrets (calendar feed tokens) that must
/// never reach the logs.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage as _;
        let request_id = request.extensions().get::<tracing_actix_web::RequestId>().copied();
        let route = request.match_pattern().unwrap_or_else(|| "default".to_owned());
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.path = %request.path(),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id.map(|id| id.to_string()).unwrap_or_default(),
            exception.message = tracing::field::Empty,
        )
    }

    /// Records the status, and what went wrong. A client error is recorded by its problem code
    /// only: its detail can quote the request (serde quotes the value it could not read, which
    /// may be a password), and logged at debug: refusals are the clients' business, not the
    /// operators'. A server error is logged here, unless it is an `ApiError::Internal`,
    /// which logged its cause where it was answered.
    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        span.record("http.status_code", status.as_u16());
        span.record(
            "otel.status_code",
            if status.is_server_error() { "ERROR" } else { "OK" },
        );
        let Some(error) = error else { return };
        let api_error = error.as_error::<ApiError>();
        if status.is_server_error() {
            let message = error.to_string();
            span.record("exception.message", message.as_str());
            if !matches!(api_error, Some(ApiError::Internal(_))) {
                span.in_scope(|| tracing::error!(error = %message, "request failed"));
            }
        } else {
            let code = api_error.map_or("framework_error", ApiError::code);
            span.record("exception.message", code);
            span.in_scope(|| tracing::debug!(status = status.as_u16(), code, "request refused"));
        }
    }
}
