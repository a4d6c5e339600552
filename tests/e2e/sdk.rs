//! The Rust SDK's documented tour (`examples/sdk_tour.rs`), run against a live core.

use crate::agents::fleet;
use crate::kit::{Backend, Core, binary};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_sdk_tour_runs_against_a_live_core() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let admin_id =
        core.get("/auth/session", &fleet.admin).await.body["data"]["user"]["id"].as_str().unwrap().to_owned();
    let gateway_id = &fleet.gateways[0].0;
    core.post(&format!("/admin/gateways/{gateway_id}/users"), &fleet.admin, json!({"user_id": admin_id}))
        .await
        .expect(StatusCode::OK);
    let key = core.post("/api-keys", &fleet.admin, json!({"name": "sdk"})).await.expect(StatusCode::CREATED);
    let key = key.body["data"]["secret"].as_str().unwrap().to_owned();

    let tour = || {
        tokio::process::Command::new(binary("examples/sdk_tour"))
            .env("GATEKEY_URL", format!("http://{}", core.grpc_address))
            .env("GATEKEY_API_KEY", &key)
            .env("GATEKEY_NETWORK_ID", &fleet.network_id)
            .output()
    };
    let output = tour().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("signed in as admin@gatekey.invalid"), "{stdout}");
    assert!(stdout.contains(&format!("gateway gw0 gw0.example.com:1194 {gateway_id}")), "{stdout}");
    assert!(stdout.contains("config gatekey-gw0.ovpn") && stdout.contains("has key: true"), "{stdout}");
    assert!(stdout.contains("rules after create: 1") && stdout.contains("rules after delete: 0"), "{stdout}");

    // A revoked key stops the SDK with the core's reason.
    let keys = core.get("/api-keys", &fleet.admin).await;
    let key_id = keys.body["data"][0]["id"].as_str().unwrap();
    core.delete(&format!("/api-keys/{key_id}"), &fleet.admin).await.expect(StatusCode::OK);
    let refused = tour().await.unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revoked"));
}
