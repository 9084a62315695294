//! Logging through `tracing`: human-readable by default, JSON lines on request.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber (level from `RUST_LOG`, default `info`). Calling it twice
/// keeps the first.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The request id carried in `X-Request-Id`: the caller's when it is sensible (1–128 visible
/// ASCII characters), a fresh one otherwise. Logged with every line of the request and returned in
/// the response.
pub const REQUEST_ID: &str = "x-request-id";

/// Whether a caller's request id can be used as it is.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The root span of every request: tracing-actix-web's, plus the `X-Request-Id`.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        tracing_actix_web::root_span!(request, http.request_id = %id)
    }

    /// Records the status on the span, and logs a refused request once: 4xx at `info` (the
    /// client's doing), 5xx at `error`, except a database outage's 503, whose cause is logged
    /// (throttled) where it is turned into the answer.
    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let error = match outcome {
            Ok(response) => response.response().error().map(|error| (response.status(), error)),
            Err(error) => Some((error.as_response_error().status_code(), error)),
        };
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
        let Some((status, error)) = error else { return };
        let code = error.as_error::<crate::error::ApiError>().map(|problem| problem.code);
        let code_name = code.map_or("", crate::error::ErrorCode::as_str);
        if status.is_client_error() {
            tracing::info!(http.status_code = status.as_u16(), problem.code = code_name, "request refused: {error}");
        } else if code != Some(crate::error::ErrorCode::DatabaseUnavailable) {
            tracing::error!(http.status_code = status.as_u16(), problem.code = code_name, "request failed: {error}");
        }
    }
}

/// Least time between two log lines about the same outage, in milliseconds.
pub const OUTAGE_LOG_PERIOD_MS: u64 = 5_000;

/// Lets a line that an outage would repeat for every request through at most once per period,
/// counting the occurrences held back in between: a database that is down logs a line every few
/// seconds saying how many requests it refused, not a line per request.
pub struct LogThrottle {
    period_ms: u64,
    /// When the next line may go out, in milliseconds of [`clock_ms`].
    next_ms: AtomicU64,
    held: AtomicU64,
}

impl LogThrottle {
    /// A throttle letting a line through at most once per `period_ms` milliseconds.
    pub const fn new(period_ms: u64) -> Self {
        Self { period_ms, next_ms: AtomicU64::new(0), held: AtomicU64::new(0) }
    }

    /// The throttle of a line about a database outage: at most one every
    /// [`OUTAGE_LOG_PERIOD_MS`].
    pub const fn outage() -> Self {
        Self::new(OUTAGE_LOG_PERIOD_MS)
    }

    /// `Some(occurrences held back since the last line)` when this one is to be logged.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(clock_ms())
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(next, now_ms + self.period_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.held.swap(0, Ordering::Relaxed))
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Milliseconds since the process first asked (a monotonic clock, so that a change of the
/// system's time neither silences nor floods a throttled line).
fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(START.get_or_init(std::time::Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::LogThrottle;

    #[test]
    fn a_throttled_line_goes_out_once_per_period_with_the_count_held_back() {
        let throttle = LogThrottle::new(5_000);
        assert_eq!(throttle.admit_at(0), Some(0), "the first occurrence is logged");
        assert_eq!(throttle.admit_at(10), None);
        assert_eq!(throttle.admit_at(4_999), None);
        assert_eq!(throttle.admit_at(5_000), Some(2), "a period later, with the two held back");
        assert_eq!(throttle.admit_at(5_001), None);
        assert_eq!(throttle.admit_at(60_000), Some(1));
        assert_eq!(throttle.admit_at(65_000), Some(0), "nothing held back in between");
    }
}
