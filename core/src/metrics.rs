//! Prometheus metrics, kept and rendered with `prometheus-client`: gRPC requests (count
//! and latency by method and status), connected gateways, live VPN sessions, connected
//! mesh spokes, rule-push latency (change to the agent's acknowledgement) and configs
//! issued. Request series are labelled only with GateKey's own methods (read from the
//! contract's descriptors) and gRPC's own status codes; any other path is `other`, so
//! a client cannot mint series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

/// Upper bounds (seconds) of the latency histograms.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// The label of every path that is not one of GateKey's methods.
const OTHER: &str = "other";

/// Upper bounds (seconds) of the relay-delay histogram, finer where its target (20 ms) lies.
const RELAY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0];

/// Upper bounds of the histogram of configs per group commit.
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Labels of a request count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    code: String,
}

/// Labels of a request latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// The core's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    configs_issued: Counter,
    config_commit_batch: Histogram,
    rule_push: Histogram,
    relay_delay: Histogram,
    connected_gateways: Gauge,
    live_sessions: Gauge,
    connected_spokes: Gauge,
    pending_pushes: Mutex<HashMap<String, Instant>>,
    known_methods: HashSet<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("known_methods", &self.known_methods.len()).finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of core node `node_id`, which every series carries as its `node`
    /// label (so a cluster's nodes can be told apart, and summed, in one query).
    pub fn for_node(node_id: &str) -> Metrics {
        let node = (std::borrow::Cow::Borrowed("node"), std::borrow::Cow::Owned(node_id.to_owned()));
        let mut registry = Registry::with_labels(std::iter::once(node));
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let configs_issued = Counter::default();
        let config_commit_batch = Histogram::new(BATCH_BUCKETS);
        let rule_push = histogram();
        let relay_delay = Histogram::new(RELAY_BUCKETS);
        let (connected_gateways, live_sessions, connected_spokes) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("gatekey_grpc_requests", "gRPC requests by method and status code", requests.clone());
        registry.register(
            "gatekey_grpc_request_duration_seconds",
            "gRPC request latency (to the response headers)",
            latency.clone(),
        );
        registry.register(
            "gatekey_connected_gateways",
            "Gateways holding a stream to this node",
            connected_gateways.clone(),
        );
        registry.register("gatekey_live_vpn_sessions", "Open VPN sessions reported by agents", live_sessions.clone());
        registry.register(
            "gatekey_mesh_spokes_connected",
            "Mesh spokes whose tunnel to their hub is up",
            connected_spokes.clone(),
        );
        registry.register("gatekey_configs_issued", "VPN configs generated", configs_issued.clone());
        registry.register(
            "gatekey_config_commit_batch_configs",
            "Configs stored by one group commit (a batch that fails is retried one by one)",
            config_commit_batch.clone(),
        );
        registry.register("gatekey_rule_push_seconds", "Rule change to the agent's acknowledgement", rule_push.clone());
        registry.register(
            "gatekey_fleet_relay_delay_seconds",
            "Another node's event, from being made there to being applied here",
            relay_delay.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            configs_issued,
            config_commit_batch,
            rule_push,
            relay_delay,
            connected_gateways,
            live_sessions,
            connected_spokes,
            pending_pushes: Mutex::default(),
            known_methods: gatekey_methods(),
        }
    }
}

/// Every method of the contract as a request path, `/gatekey.v1.Service/Method`.
fn gatekey_methods() -> HashSet<String> {
    use prost::Message;
    let Ok(set) = prost_types::FileDescriptorSet::decode(gatekey::FILE_DESCRIPTOR_SET) else { return HashSet::new() };
    let mut methods = HashSet::new();
    for file in set.file {
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    methods
}

/// A gRPC status code as its number, or `other` if it is not one.
fn status_code(code: &str) -> String {
    match code.parse::<u8>() {
        Ok(number) if number <= 16 => number.to_string(),
        _ => OTHER.to_owned(),
    }
}

/// Values read at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Gateways holding a stream to this node.
    pub connected_gateways: usize,
    /// Open VPN sessions (all gateways).
    pub live_sessions: u64,
    /// Mesh spokes whose tunnel to their hub is up.
    pub connected_spokes: u64,
}

impl Metrics {
    /// Records one gRPC request to `path` that ended with status `code`.
    pub fn observe_request(&self, path: &str, code: &str, seconds: f64) {
        let method = if self.known_methods.contains(path) { path.to_owned() } else { OTHER.to_owned() };
        self.requests.get_or_create(&RequestLabels { method: method.clone(), code: status_code(code) }).inc();
        self.latency.get_or_create(&MethodLabels { method }).observe(seconds);
    }

    /// Counts an issued config.
    pub fn config_issued(&self) {
        self.configs_issued.inc();
    }

    /// Records a group commit of `configs` configs.
    pub fn config_batch_committed(&self, configs: usize) {
        self.config_commit_batch.observe(configs as f64);
    }

    /// Starts the push clock of gateways whose rules changed (the first change of a
    /// burst starts it; the acknowledgement stops it).
    pub fn rules_changed<'a>(&self, gateway_ids: impl IntoIterator<Item = &'a String>) {
        let now = Instant::now();
        let mut pending = self.pending_pushes.lock().unwrap_or_else(PoisonError::into_inner);
        for id in gateway_ids {
            pending.entry(id.clone()).or_insert(now);
        }
    }

    /// Stops a gateway's push clock.
    pub fn rules_applied(&self, gateway_id: &str) {
        let started = self.pending_pushes.lock().unwrap_or_else(PoisonError::into_inner).remove(gateway_id);
        if let Some(started) = started {
            self.rule_push.observe(started.elapsed().as_secs_f64());
        }
    }

    /// Records how long another node's event took from being made to being applied here.
    pub fn event_relayed(&self, seconds: f64) {
        self.relay_delay.observe(seconds);
    }

    /// The metrics in the OpenMetrics text format, with the gauges set to `gauges`.
    pub fn render(&self, gauges: Gauges) -> String {
        let as_gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.connected_gateways.set(as_gauge(gauges.connected_gateways as u64));
        self.live_sessions.set(as_gauge(gauges.live_sessions));
        self.connected_spokes.set(as_gauge(gauges.connected_spokes));
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "cannot render the metrics");
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Tower layer recording every gRPC request in [`Metrics`].
#[derive(Debug, Clone)]
pub struct MetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService { inner, metrics: self.0.clone() }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let outcome = response.await;
            // Errors are trailers-only responses with `grpc-status` in the headers;
            // successes carry it in trailers, after this point.
            let code = match &outcome {
                Ok(response) => {
                    response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned()
                }
                Err(_) => "transport".to_owned(),
            };
            metrics.observe_request(&method, &code, started.elapsed().as_secs_f64());
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_counters_gauges_and_histograms() {
        let metrics = Metrics::for_node("node-1");
        metrics.observe_request("/gatekey.v1.AuthService/LocalLogin", "0", 0.003);
        metrics.observe_request("/gatekey.v1.AuthService/LocalLogin", "16", 0.2);
        metrics.config_issued();
        metrics.rules_changed([&"gw-1".to_owned()]);
        metrics.rules_applied("gw-1");
        metrics.rules_applied("gw-unknown");
        let text = metrics.render(Gauges { connected_gateways: 3, live_sessions: 7, connected_spokes: 2 });
        assert!(text.contains(
            "gatekey_grpc_requests_total{node=\"node-1\",method=\"/gatekey.v1.AuthService/LocalLogin\",code=\"16\"} 1"
        ));
        assert!(text.contains(
            "gatekey_grpc_request_duration_seconds_bucket{node=\"node-1\",le=\"0.005\",method=\"/gatekey.v1.AuthService/LocalLogin\"} 1"
        ));
        assert!(
            text.contains(
                "gatekey_grpc_request_duration_seconds_count{node=\"node-1\",method=\"/gatekey.v1.AuthService/LocalLogin\"} 2"
            )
        );
        assert!(
            text.contains("gatekey_connected_gateways{node=\"node-1\"} 3\n")
                && text.contains("gatekey_live_vpn_sessions{node=\"node-1\"} 7\n")
        );
        assert!(text.contains("gatekey_mesh_spokes_connected{node=\"node-1\"} 2\n"), "{text}");
        assert!(text.contains("gatekey_configs_issued_total{node=\"node-1\"} 1\n"));
        assert!(text.contains("gatekey_rule_push_seconds_count{node=\"node-1\"} 1\n"), "{text}");
    }

    #[test]
    fn unknown_paths_and_codes_share_one_series() {
        let metrics = Metrics::for_node("node-1");
        for n in 0..100 {
            metrics.observe_request(&format!("/gatekey.random{n}/\"x\n"), "0", 0.001);
        }
        metrics.observe_request("/gatekey.v1.AuthService/LocalLogin", "banana", 0.001);
        let text = metrics.render(Gauges { connected_gateways: 0, live_sessions: 0, connected_spokes: 0 });
        assert!(
            text.contains("gatekey_grpc_requests_total{node=\"node-1\",method=\"other\",code=\"0\"} 100"),
            "{text}"
        );
        assert!(
            text.contains("{node=\"node-1\",method=\"/gatekey.v1.AuthService/LocalLogin\",code=\"other\"} 1"),
            "{text}"
        );
        assert!(!text.contains("random"), "{text}");
    }
}
