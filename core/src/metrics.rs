//! Prometheus metrics: gRPC requests (count and latency by method and status),
//! connected gateways, live VPN sessions, rule-push latency (change to the agent's
//! acknowledgement) and configs issued. Rendered in the text exposition format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

/// Upper bounds (seconds) of the latency histograms.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {bucket}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The core's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    configs_issued: AtomicU64,
    rule_push: Mutex<Histogram>,
    pending_pushes: Mutex<HashMap<String, Instant>>,
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
    /// Records one gRPC request.
    pub fn observe_request(&self, method: &str, code: &str, seconds: f64) {
        *lock(&self.requests).entry((method.to_owned(), code.to_owned())).or_default() += 1;
        lock(&self.latency).entry(method.to_owned()).or_default().observe(seconds);
    }

    /// Counts an issued config.
    pub fn config_issued(&self) {
        self.configs_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts the push clock of gateways whose rules changed (the first change of a
    /// burst starts it; the acknowledgement stops it).
    pub fn rules_changed<'a>(&self, gateway_ids: impl IntoIterator<Item = &'a String>) {
        let now = Instant::now();
        let mut pending = lock(&self.pending_pushes);
        for id in gateway_ids {
            pending.entry(id.clone()).or_insert(now);
        }
    }

    /// Stops a gateway's push clock.
    pub fn rules_applied(&self, gateway_id: &str) {
        if let Some(started) = lock(&self.pending_pushes).remove(gateway_id) {
            lock(&self.rule_push).observe(started.elapsed().as_secs_f64());
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP gatekey_grpc_requests_total gRPC requests by method and status code.\n");
        out.push_str("# TYPE gatekey_grpc_requests_total counter\n");
        for ((method, code), count) in lock(&self.requests).iter() {
            let _ = writeln!(out, "gatekey_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {count}");
        }
        out.push_str("# HELP gatekey_grpc_request_duration_seconds gRPC request latency (to the response headers).\n");
        out.push_str("# TYPE gatekey_grpc_request_duration_seconds histogram\n");
        for (method, histogram) in lock(&self.latency).iter() {
            histogram.render(&mut out, "gatekey_grpc_request_duration_seconds", &format!("method=\"{method}\""));
        }
        let _ = write!(
            out,
            "# HELP gatekey_connected_gateways Gateways holding a stream to this node.\n\
             # TYPE gatekey_connected_gateways gauge\ngatekey_connected_gateways {}\n\
             # HELP gatekey_live_vpn_sessions Open VPN sessions reported by agents.\n\
             # TYPE gatekey_live_vpn_sessions gauge\ngatekey_live_vpn_sessions {}\n\
             # HELP gatekey_mesh_spokes_connected Mesh spokes whose tunnel to their hub is up.\n\
             # TYPE gatekey_mesh_spokes_connected gauge\ngatekey_mesh_spokes_connected {}\n\
             # HELP gatekey_configs_issued_total VPN configs generated.\n\
             # TYPE gatekey_configs_issued_total counter\ngatekey_configs_issued_total {}\n\
             # HELP gatekey_rule_push_seconds Rule change to the agent's acknowledgement.\n\
             # TYPE gatekey_rule_push_seconds histogram\n",
            gauges.connected_gateways,
            gauges.live_sessions,
            gauges.connected_spokes,
            self.configs_issued.load(Ordering::Relaxed),
        );
        lock(&self.rule_push).render(&mut out, "gatekey_rule_push_seconds", "");
        out
    }
}

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
            if method.starts_with("/gatekey.") {
                metrics.observe_request(&method, &code, started.elapsed().as_secs_f64());
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_counters_gauges_and_histograms() {
        let metrics = Metrics::default();
        metrics.observe_request("/gatekey.v1.AuthService/LocalLogin", "0", 0.003);
        metrics.observe_request("/gatekey.v1.AuthService/LocalLogin", "16", 0.2);
        metrics.config_issued();
        metrics.rules_changed([&"gw-1".to_owned()]);
        metrics.rules_applied("gw-1");
        metrics.rules_applied("gw-unknown");
        let text = metrics.render(Gauges { connected_gateways: 3, live_sessions: 7, connected_spokes: 2 });
        assert!(
            text.contains("gatekey_grpc_requests_total{method=\"/gatekey.v1.AuthService/LocalLogin\",code=\"16\"} 1")
        );
        assert!(text.contains(
            "gatekey_grpc_request_duration_seconds_bucket{method=\"/gatekey.v1.AuthService/LocalLogin\",le=\"0.005\"} 1"
        ));
        assert!(
            text.contains(
                "gatekey_grpc_request_duration_seconds_count{method=\"/gatekey.v1.AuthService/LocalLogin\"} 2"
            )
        );
        assert!(text.contains("gatekey_connected_gateways 3\n") && text.contains("gatekey_live_vpn_sessions 7\n"));
        assert!(text.contains("gatekey_mesh_spokes_connected 2\n"), "{text}");
        assert!(text.contains("gatekey_configs_issued_total 1\n"));
        assert!(text.contains("gatekey_rule_push_seconds_count 1\n"), "{text}");
    }
}
