//! Benchmark: the sequential latency of one REST call (`GET /api/v1/admin/gateways`)
//! and of the same call over gRPC, next to the floor measured in the same run: the gRPC
//! health check, the cheapest request the core answers. A REST call far above the
//! floor (tens of milliseconds) means a socket waits on Nagle's algorithm again.
//!
//! `cargo run --release --example request_latency -- [requests]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/in_process_core.rs"]
mod in_process_core;

use gatekey::v1::ListGatewaysRequest;
use gatekey::v1::admin_gateway_service_client::AdminGatewayServiceClient;
use in_process_core::{InProcessCore, ms, quantile};
use serde_json::json;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Runs `call` `requests` times, one after another (after a warm-up), and prints its
/// latency distribution; returns the median.
async fn measure<F, Fut>(label: &str, requests: usize, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..requests / 10 {
        call().await;
    }
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let sent = Instant::now();
        call().await;
        samples.push(sent.elapsed());
    }
    samples.sort();
    let median = quantile(&samples, 0.5);
    println!(
        "{label:<44} p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        ms(median),
        ms(quantile(&samples, 0.9)),
        ms(quantile(&samples, 0.99)),
        ms(quantile(&samples, 1.0))
    );
    median
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::args().nth(1).map_or(2000, |n| n.parse().expect("requests"));
    let core = InProcessCore::start().await;
    let client = reqwest::Client::new();
    for index in 0..5 {
        let gateway = json!({"name": format!("gw-{index}"), "hostname": format!("vpn{index}.example.com")});
        core.post(&client, "/admin/gateways", gateway).await;
    }
    let channel = tonic::transport::Endpoint::from_shared(core.grpc.clone()).unwrap().tcp_nodelay(true).connect().await;
    let channel = channel.unwrap();
    let bearer: MetadataValue<_> = format!("Bearer {}", core.token).parse().unwrap();

    println!("{requests} sequential requests each, one connection each, on loopback:");
    let health = HealthClient::new(channel.clone());
    let floor = measure("gRPC health check (floor)", requests, || {
        let mut health = health.clone();
        async move {
            health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
        }
    })
    .await;
    let admin = AdminGatewayServiceClient::new(channel);
    let grpc = measure("gRPC AdminGatewayService/ListGateways", requests, || {
        let (mut admin, bearer) = (admin.clone(), bearer.clone());
        async move {
            let mut request = tonic::Request::new(ListGatewaysRequest::default());
            request.metadata_mut().insert("authorization", bearer);
            admin.list_gateways(request).await.unwrap();
        }
    })
    .await;
    let rest = measure("REST GET /api/v1/admin/gateways", requests, || {
        let request = client.get(format!("{}/admin/gateways", core.api)).bearer_auth(&core.token);
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            response.bytes().await.unwrap();
        }
    })
    .await;
    println!(
        "median over the floor: gRPC list {:.1}x, REST list {:.1}x",
        grpc.as_secs_f64() / floor.as_secs_f64(),
        rest.as_secs_f64() / floor.as_secs_f64()
    );
}
