//! Benchmark: VPN configs generated per second through the REST facade, with the
//! per-config latency distribution. Runs a real core in-process on loopback with a
//! temporary SQLite database.
//!
//! `cargo run --release --example config_bench -- [total] [concurrency]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use clap::Parser;
use gatekey_core::config::{Cli, Command};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "bench-admin-password";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let response = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(2000, |n| n.parse().expect("total"));
    let concurrency: usize = args.next().map_or(16, |n| n.parse().expect("concurrency"));

    let data_dir = std::env::temp_dir().join(format!("gatekey-bench-{}", std::process::id()));
    let (grpc_port, http_port) = (free_port(), free_port());
    let cli = Cli::parse_from([
        "gatekey-core".to_owned(),
        "serve".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--grpc-listen".into(),
        format!("127.0.0.1:{grpc_port}"),
        "--http-listen".into(),
        format!("127.0.0.1:{http_port}"),
        "--plain-http-cookies".into(),
        "--no-rate-limits".into(),
    ]);
    let Command::Serve(serve_args) = cli.command;
    std::fs::create_dir_all(&data_dir).unwrap();
    let store = gatekey_core::store::Store::open(&serve_args.database_url()).await.unwrap();
    gatekey_core::bootstrap::ensure_admin(&store, Some(ADMIN_PASSWORD)).await.unwrap();
    store.close().await;
    tokio::spawn(gatekey_core::server::serve(serve_args));

    let base = format!("http://127.0.0.1:{http_port}/api/v1");
    let client = reqwest::Client::new();
    let mut token = None;
    for _ in 0..100 {
        let attempt = client
            .post(format!("{base}/auth/local/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await;
        if let Ok(response) = attempt {
            let body: Value = response.json().await.unwrap();
            token = body["data"]["session_token"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = token.expect("core did not start");
    let admin_id = {
        let response = client.get(format!("{base}/auth/session")).bearer_auth(&token).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        body["data"]["user"]["id"].as_str().unwrap().to_owned()
    };
    let gateway = post(
        &client,
        format!("{base}/admin/gateways"),
        &token,
        json!({"name": "bench", "hostname": "vpn.example.com"}),
    )
    .await;
    let gateway_id = gateway["data"]["id"].as_str().unwrap().to_owned();
    post(&client, format!("{base}/admin/gateways/{gateway_id}/users"), &token, json!({"user_id": admin_id})).await;

    let started = Instant::now();
    let per_worker = total / concurrency;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, base, token, gateway_id) = (client.clone(), base.clone(), token.clone(), gateway_id.clone());
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let sent = Instant::now();
                post(
                    &client,
                    format!("{base}/configs/generate"),
                    &token,
                    json!({"gateway_id": gateway_id, "protocol": "openvpn"}),
                )
                .await;
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
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "configs generated: {} with {concurrency} concurrent clients in {:.2} s",
        latencies.len(),
        elapsed.as_secs_f64()
    );
    println!("throughput: {:.0} configs/s", latencies.len() as f64 / elapsed.as_secs_f64());
    println!("latency p50: {:.2} ms  p99: {:.2} ms  max: {:.2} ms", ms(at(0.5)), ms(at(0.99)), ms(at(1.0)));
    let _ = std::fs::remove_dir_all(&data_dir);
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
