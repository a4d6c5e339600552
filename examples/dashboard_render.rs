//! Benchmark: how long the admin dashboard takes to render, page and live fragment,
//! with a fleet of 1,000 gateways and 10,000 issued configs, next to the floor measured
//! in the same run (the sign-in page, which asks the core almost nothing).
//!
//! `cargo run --release --example dashboard_render -- [gateways] [configs] [requests]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/in_process_core.rs"]
mod in_process_core;

use in_process_core::{InProcessCore, ms, quantile};
use serde_json::json;
use std::time::{Duration, Instant};

/// Fetches `path` `requests` times in a row with the admin's cookie; prints and answers
/// the median.
async fn measure(client: &reqwest::Client, base: &str, cookie: &str, path: &str, requests: usize) -> Duration {
    let mut samples = Vec::with_capacity(requests);
    for round in 0..requests + requests / 10 {
        let sent = Instant::now();
        let response = client.get(format!("{base}{path}")).header("cookie", cookie).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.bytes().await.unwrap();
        if round >= requests / 10 {
            samples.push(sent.elapsed());
        }
    }
    samples.sort();
    let median = quantile(&samples, 0.5);
    println!(
        "{path:<16} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms",
        ms(median),
        ms(quantile(&samples, 0.9)),
        ms(quantile(&samples, 0.99))
    );
    median
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let gateways: usize = args.next().map_or(1000, |n| n.parse().expect("gateways"));
    let configs: usize = args.next().map_or(10_000, |n| n.parse().expect("configs"));
    let requests: usize = args.next().map_or(200, |n| n.parse().expect("requests"));
    let core = InProcessCore::start().await;
    let client = reqwest::Client::new();

    let started = Instant::now();
    let mut ids = Vec::with_capacity(gateways);
    for index in 0..gateways {
        let body = json!({"name": format!("gw-{index}"), "hostname": format!("gw{index}.example.com")});
        ids.push(core.post(&client, "/admin/gateways", body).await["data"]["id"].as_str().unwrap().to_owned());
    }
    let session = client.get(format!("{}/auth/session", core.api)).bearer_auth(&core.token).send().await.unwrap();
    let admin_id =
        session.json::<serde_json::Value>().await.unwrap()["data"]["user"]["id"].as_str().unwrap().to_owned();
    for id in &ids {
        core.post(&client, &format!("/admin/gateways/{id}/users"), json!({"user_id": admin_id})).await;
    }
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (client, api, token, ids) = (client.clone(), core.api.clone(), core.token.clone(), ids.clone());
        workers.spawn(async move {
            for index in (worker..configs).step_by(8) {
                let gateway_id = &ids[index % ids.len()];
                let response = client
                    .post(format!("{api}/configs/generate"))
                    .bearer_auth(&token)
                    .json(&json!({"gateway_id": gateway_id}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
            }
        });
    }
    while workers.join_next().await.is_some() {}
    println!("fleet: {gateways} gateways, {configs} configs, built in {:.1} s", started.elapsed().as_secs_f64());

    let base = core.api.trim_end_matches("/api/v1").to_owned();
    let cookie = format!("gatekey_session={}", core.token);
    println!("{requests} sequential renders each:");
    let floor = measure(&client, &base, "", "/", requests).await;
    let page = measure(&client, &base, &cookie, "/admin", requests).await;
    let figures = measure(&client, &base, &cookie, "/admin/figures", requests).await;
    println!(
        "dashboard p50 {:.2} ms (floor {:.2} ms, fragment {:.2} ms); target p50 <= 50 ms: {}",
        ms(page),
        ms(floor),
        ms(figures),
        if page <= Duration::from_millis(50) { "met" } else { "MISSED" }
    );
}
