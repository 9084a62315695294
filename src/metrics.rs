//! Prometheus metrics: requests by route and status, latency histograms, responses accepted and
//! refused by channel, the mail outbox's depth and the database pool's use. Served at `/metrics`
//! in the OpenMetrics text format, only when a token is configured (`metrics_token`), and only to
//! requests that present it: the figures say how busy a survey is, which is nobody else's business.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::campaign::Channel;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// The route's pattern (`/api/v1/campaigns/{id}/stats`), `unmatched` for unknown paths.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The route's pattern.
    pub route: String,
}

/// Labels of an accepted response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// `api`, `link` or `invitation`.
    pub channel: String,
}

/// Labels of a refused response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `api`, `link` or `invitation`.
    pub channel: String,
    /// Why: `invalid`, `forbidden`, `idempotency_key_reused`, `dossier_rated`, `invitation_used`.
    pub reason: String,
}

/// Every metric sipas exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    accepted: Family<ChannelLabels, Counter>,
    refused: Family<RefusalLabels, Counter>,
    outbox_depth: Gauge,
    pool_connections: Gauge,
    pool_idle: Gauge,
    write_group_size: Histogram,
    write_group_duration: Histogram,
    tally_fold_size: Histogram,
    tally_fold_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sipas");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by method, route and status", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to about 16 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", latency.clone());
        let accepted = Family::<ChannelLabels, Counter>::default();
        registry.register("responses_accepted", "Survey responses stored, by channel", accepted.clone());
        let refused = Family::<RefusalLabels, Counter>::default();
        registry.register("responses_refused", "Survey responses refused, by channel and reason", refused.clone());
        let outbox_depth = Gauge::default();
        registry.register("outbox_depth", "Mails waiting in the outbox", outbox_depth.clone());
        let pool_connections = Gauge::default();
        registry.register("db_pool_connections", "Database connections open", pool_connections.clone());
        let pool_idle = Gauge::default();
        registry.register("db_pool_idle_connections", "Database connections open and idle", pool_idle.clone());
        // 1 to 2,048 submissions.
        let write_group_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "write_group_size",
            "Submissions committed together by the writer (group commit)",
            write_group_size.clone(),
        );
        // 0.1 ms to about 3 s.
        let write_group_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "write_group_duration_seconds",
            "Time to write and commit one group of submissions",
            write_group_duration.clone(),
        );
        // 1 to about 16,000 responses.
        let tally_fold_size = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        registry.register(
            "tally_fold_size",
            "Responses added to the tally rows together by the writer after their commit",
            tally_fold_size.clone(),
        );
        let tally_fold_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "tally_fold_duration_seconds",
            "Time to add one set of committed responses to the tally rows",
            tally_fold_duration.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            accepted,
            refused,
            outbox_depth,
            pool_connections,
            pool_idle,
            write_group_size,
            write_group_duration,
            tally_fold_size,
            tally_fold_duration,
        }
    }

    /// Counts an answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { method: method.to_owned(), route: route.to_owned(), status })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method: method.to_owned(), route: route.to_owned() })
            .observe(seconds);
    }

    /// Counts a stored response.
    pub fn accepted(&self, channel: Channel) {
        self.accepted.get_or_create(&ChannelLabels { channel: channel.as_str().to_owned() }).inc();
    }

    /// Counts a refused response.
    pub fn refused(&self, channel: Channel, reason: &str) {
        self.refused
            .get_or_create(&RefusalLabels { channel: channel.as_str().to_owned(), reason: reason.to_owned() })
            .inc();
    }

    /// Records one group commit: how many submissions it held and how long it took.
    pub fn observe_group(&self, size: usize, seconds: f64) {
        self.write_group_size.observe(size as f64);
        self.write_group_duration.observe(seconds);
    }

    /// Records one fold of committed responses into the tally rows.
    pub fn observe_fold(&self, size: usize, seconds: f64) {
        self.tally_fold_size.observe(size as f64);
        self.tally_fold_duration.observe(seconds);
    }

    /// The metrics in the OpenMetrics text format, with the gauges read at this moment (the
    /// outbox's depth keeps its last value when the database could not be asked).
    pub fn render(&self, outbox_depth: Option<i64>, pool_connections: u32, pool_idle: u32) -> String {
        if let Some(depth) = outbox_depth {
            self.outbox_depth.set(depth);
        }
        self.pool_connections.set(i64::from(pool_connections));
        self.pool_idle.set(i64::from(pool_idle));
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error.cause = %error, "metrics could not be encoded");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.observe_request("GET", "/healthz", 200, 0.002);
        metrics.observe_request("GET", "/healthz", 200, 0.004);
        metrics.accepted(Channel::Api);
        metrics.refused(Channel::Link, "invalid");
        metrics.observe_group(3, 0.0005);
        metrics.observe_fold(1_500, 0.002);
        let text = metrics.render(Some(3), 4, 2);
        assert!(
            text.contains("sipas_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("sipas_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 2"));
        assert!(
            text.contains(
                "sipas_http_request_duration_seconds_bucket{le=\"0.004\",method=\"GET\",route=\"/healthz\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("sipas_responses_accepted_total{channel=\"api\"} 1"));
        assert!(text.contains("sipas_responses_refused_total{channel=\"link\",reason=\"invalid\"} 1"));
        assert!(text.contains("sipas_outbox_depth 3"));
        assert!(text.contains("sipas_db_pool_connections 4"));
        assert!(text.contains("sipas_db_pool_idle_connections 2"));
        assert!(text.contains("sipas_write_group_size_bucket{le=\"4.0\"} 1"), "{text}");
        assert!(text.contains("sipas_write_group_duration_seconds_count 1"));
        assert!(text.contains("sipas_tally_fold_size_bucket{le=\"1024.0\"} 0"), "{text}");
        assert!(text.contains("sipas_tally_fold_size_bucket{le=\"2048.0\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
