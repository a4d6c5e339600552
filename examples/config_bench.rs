//! Benchmark: VPN configs generated per second through the REST facade, with the
//! per-config latency distribution. Runs a real core in-process on loopback with a
//! temporary SQLite database.
//!
//! `cargo run --release --example config_bench -- [total] [concurrency]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/in_process_core.rs"]
#[allow(dead_code)] // Shared by the benchmarks; this one does not speak gRPC.
mod in_process_core;

use in_process_core::{InProcessCore, ms, quantile};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(2000, |n| n.parse().expect("total"));
    let concurrency: usize = args.next().map_or(16, |n| n.parse().expect("concurrency"));

    let core = InProcessCore::start().await;
    let client = reqwest::Client::new();
    let admin_id = {
        let response = client.get(format!("{}/auth/session", core.api)).bearer_auth(&core.token).send().await.unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        body["data"]["user"]["id"].as_str().unwrap().to_owned()
    };
    let gateway = core.post(&client, "/admin/gateways", json!({"name": "bench", "hostname": "vpn.example.com"})).await;
    let gateway_id = gateway["data"]["id"].as_str().unwrap().to_owned();
    core.post(&client, &format!("/admin/gateways/{gateway_id}/users"), json!({"user_id": admin_id})).await;

    let started = Instant::now();
    let per_worker = total / concurrency;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, api, token, gateway_id) =
            (client.clone(), core.api.clone(), core.token.clone(), gateway_id.clone());
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let sent = Instant::now();
                let response = client
                    .post(format!("{api}/configs/generate"))
                    .bearer_auth(&token)
                    .json(&json!({"gateway_id": gateway_id, "protocol": "openvpn"}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                latencies.push(sent.elapsed());
            }
            latencies
        });
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(total);
    while let Some(done) = workers.join_next().await {
        latencies.extend(done.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| quantile(&latencies, q);
    println!(
        "configs generated: {} with {concurrency} concurrent clients in {:.2} s",
        latencies.len(),
        elapsed.as_secs_f64()
    );
    println!("throughput: {:.0} configs/s", latencies.len() as f64 / elapsed.as_secs_f64());
    println!("latency p50: {:.2} ms  p99: {:.2} ms  max: {:.2} ms", ms(at(0.5)), ms(at(0.99)), ms(at(1.0)));
}
