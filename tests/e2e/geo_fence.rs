//! Geo-fencing with a real MaxMind-format country database: the admin endpoints over
//! REST, and enforcement at sign-in, config generation and connection verdicts. Client
//! addresses reach the core as a trusted gRPC proxy forwards them (`x-forwarded-for`
//! from loopback, trusted with `--grpc-trusted-proxies`), so documentation-range
//! addresses can stand for other countries.

use crate::agents::{alice_serial, fleet};
use crate::kit::{Backend, Core, TempDir, USER_PASSWORD, backends, missing};
use gatekey::ERROR_CODE_METADATA;
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::config_service_client::ConfigServiceClient;
use gatekey::v1::{DownloadConfigRequest, GenerateConfigRequest, LocalLoginRequest};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use tonic::Code;

const GERMANY: &str = "198.51.100.7";
const NORTH_KOREA: &str = "203.0.113.9";
const NOWHERE: &str = "192.0.2.44";
const UNPLACED: &str = "100.64.0.1";

/// Writes a country database that places 198.51.100.0/24 in DE and 203.0.113.0/24 in KP.
fn country_database(dir: &Path) -> Option<PathBuf> {
    let Ok(python) = std::env::var("GATEKEY_TEST_MMDB_PYTHON") else {
        missing("mmdb-writer (GATEKEY_TEST_MMDB_PYTHON)");
        return None;
    };
    let path = dir.join("countries.mmdb");
    let status = std::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/geo/write_country_db.py"))
        .arg(&path)
        .args(["198.51.100.0/24=DE", "203.0.113.0/24=KP"])
        .status()
        .unwrap();
    assert!(status.success(), "writing the country database failed");
    Some(path)
}

fn from_address<T>(message: T, address: &str, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// Alice's sign-in from `address`: her session token or the core's refusal.
async fn sign_in_from(core: &Core, address: &str) -> Result<String, tonic::Status> {
    let login = LocalLoginRequest { username: "alice".into(), password: USER_PASSWORD.into() };
    let reply = AuthServiceClient::new(core.channel().await).local_login(from_address(login, address, None)).await?;
    Ok(reply.into_inner().session_token)
}

fn assert_geo_denied(status: &tonic::Status) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.metadata().get(ERROR_CODE_METADATA).unwrap(), "forbidden");
    assert!(status.message().contains("geo-fence"), "{}", status.message());
}

#[tokio::test]
async fn geo_fence_governs_sign_in_config_generation_and_connections() {
    let dir = TempDir::new("geo");
    let Some(database) = country_database(dir.path()) else { return };
    for backend in backends() {
        geo_fence_on(backend, &dir, database.to_str().unwrap()).await;
    }
}

async fn geo_fence_on(backend: Backend, dir: &TempDir, database: &str) {
    let core = Core::start_with(backend, &["--grpc-trusted-proxies", "127.0.0.1/32"]).await;
    let fleet = fleet(&core, 1, 1).await;
    let admin = fleet.admin.as_str();
    let (gateway_id, gateway_token) = fleet.gateways[0].clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;

    // Off by default; bad settings are refused and change nothing.
    let defaults = json!({"enabled": false, "mode": "enforce", "database_path": "", "unknown_location_policy": "deny"});
    assert_eq!(core.get("/admin/geo-fence/settings", admin).await.expect(StatusCode::OK).body["data"], defaults);
    for (body, field) in [
        (json!({"enabled": true, "mode": "strict"}), "mode"),
        (json!({"enabled": true, "unknown_location_policy": "maybe"}), "unknown_location_policy"),
        (json!({"enabled": true, "database_path": dir.path().join("absent.mmdb")}), "database_path"),
        (
            json!({"enabled": true, "database_path": concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")}),
            "database_path",
        ),
    ] {
        let message = core
            .put("/admin/geo-fence/settings", admin, body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.contains(field), "{message}");
    }
    assert_eq!(core.get("/admin/geo-fence/settings", admin).await.body["data"], defaults);
    core.get("/admin/geo-fence/settings", &fleet.alice).await.expect_error(StatusCode::FORBIDDEN, "forbidden");

    // Bad rules are refused.
    for (body, field) in [
        (json!({"action": "block", "countries": ["DE"]}), "action"),
        (json!({"action": "allow", "countries": ["Germany"]}), "countries"),
        (json!({"action": "allow"}), "countries"),
        (json!({"action": "allow", "cidrs": ["10.0.0.0/33"]}), "cidrs"),
        (json!({"action": "allow", "countries": ["DE"], "scope": "planet"}), "scope"),
        (json!({"action": "allow", "countries": ["DE"], "scope": "global", "subject": "staff"}), "subject"),
        (json!({"action": "allow", "countries": ["DE"], "scope": "user", "subject": "usr-nobody"}), "usr-nobody"),
    ] {
        let reply = core.post("/admin/geo-fence/rules", admin, body).await;
        let status = reply.status;
        let message = reply.body["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND, "{status} {message}");
        assert!(message.contains(field), "{message}");
    }

    // Only Germany, except that alice may also come from her home network (no country).
    let germany = core
        .post("/admin/geo-fence/rules", admin, json!({"action": "allow", "countries": ["de"]}))
        .await
        .expect(StatusCode::CREATED)
        .body["data"]
        .clone();
    assert_eq!((germany["countries"].clone(), germany["scope"].clone()), (json!(["DE"]), json!("global")));
    let home = core
        .post(
            "/admin/geo-fence/rules",
            admin,
            json!({"action": "allow", "cidrs": ["192.0.2.0/24"], "scope": "user", "subject": fleet.alice_id}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["data"]
        .clone();
    let settings = json!({"enabled": true, "database_path": database});
    core.put("/admin/geo-fence/settings", admin, settings).await.expect(StatusCode::OK);
    // Switched off again, the check still explains what it would decide.
    core.put("/admin/geo-fence/settings", admin, json!({"enabled": false, "database_path": database}))
        .await
        .expect(StatusCode::OK);
    let verdict = core
        .post("/admin/geo-fence/check", admin, json!({"user_id": fleet.alice_id, "address": NORTH_KOREA}))
        .await
        .expect(StatusCode::OK)
        .body["data"]
        .clone();
    assert_eq!(verdict["allowed"], false);
    assert!(verdict["explanation"].as_str().unwrap().contains("disabled"), "{verdict}");
    sign_in_from(&core, NORTH_KOREA).await.unwrap();
    let settings = json!({"enabled": true, "database_path": database});
    core.put("/admin/geo-fence/settings", admin, settings).await.expect(StatusCode::OK);

    // The explanation an admin sees before anyone is refused.
    let check = |address: &str| {
        core.post("/admin/geo-fence/check", admin, json!({"user_id": fleet.alice_id, "address": address}))
    };
    let verdict = check(NORTH_KOREA).await.expect(StatusCode::OK).body["data"].clone();
    assert_eq!((verdict["allowed"].clone(), verdict["country"].clone()), (json!(false), json!("KP")));
    assert!(verdict["explanation"].as_str().unwrap().contains("outside every allow rule"), "{verdict}");
    let verdict = check(NOWHERE).await.expect(StatusCode::OK).body["data"].clone();
    assert_eq!((verdict["allowed"].clone(), verdict["rule_id"].clone()), (json!(true), home["id"].clone()));
    check("not-an-address").await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Sign-in.
    let token = sign_in_from(&core, GERMANY).await.unwrap();
    sign_in_from(&core, NOWHERE).await.unwrap();
    assert_geo_denied(&sign_in_from(&core, NORTH_KOREA).await.unwrap_err());

    // An address the database does not place and no rule names follows the
    // unknown-location policy: deny by default, allow when so configured.
    let status = sign_in_from(&core, UNPLACED).await.unwrap_err();
    assert_geo_denied(&status);
    assert!(!status.message().contains("policy"), "the refusal names no rules: {}", status.message());
    assert!(core.log().contains("the unknown-location policy denies it"));
    let lenient = json!({"enabled": true, "database_path": database, "unknown_location_policy": "allow"});
    core.put("/admin/geo-fence/settings", admin, lenient).await.expect(StatusCode::OK);
    sign_in_from(&core, UNPLACED).await.unwrap();
    let strict = json!({"enabled": true, "database_path": database});
    core.put("/admin/geo-fence/settings", admin, strict).await.expect(StatusCode::OK);

    // Config generation from a refused address, with a session opened elsewhere.
    let generate = GenerateConfigRequest { gateway_id: gateway_id.clone(), protocol: "openvpn".into() };
    let status = ConfigServiceClient::new(core.channel().await)
        .generate_config(from_address(generate.clone(), NORTH_KOREA, Some(&token)))
        .await
        .unwrap_err();
    assert_geo_denied(&status);
    let mut configs = ConfigServiceClient::new(core.channel().await);
    let generated = configs.generate_config(from_address(generate, GERMANY, Some(&token))).await.unwrap().into_inner();
    // Its private key cannot be fetched from a refused address either, and still can from an allowed one.
    let download = DownloadConfigRequest { config_id: generated.config_id };
    assert_geo_denied(
        &configs.download_config(from_address(download.clone(), NORTH_KOREA, Some(&token))).await.unwrap_err(),
    );
    configs.download_config(from_address(download, GERMANY, Some(&token))).await.unwrap();

    // Connection verdicts judge the address the gateway saw.
    let verify = |address: &'static str| {
        let client = reqwest::Client::new();
        let request = client
            .post(format!("{}/api/v1/gateway/verify", core.http_base))
            .header("X-Gateway-Token", gateway_token.clone())
            .json(&json!({"common_name": "alice@example.com", "serial": serial, "client_address": address}));
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap()["data"].clone() }
    };
    assert_eq!(verify(GERMANY).await["allowed"], true);
    let refused = verify(NORTH_KOREA).await;
    assert_eq!(refused["allowed"], false);
    assert!(refused["reason"].as_str().unwrap().contains("outside every allow rule"), "{refused}");

    // A deny rule for the group beats the global allow.
    let staff_deny = json!({"action": "deny", "countries": ["DE"], "scope": "group", "subject": "staff"});
    let deny = core.post("/admin/geo-fence/rules", admin, staff_deny).await.expect(StatusCode::CREATED);
    assert_geo_denied(&sign_in_from(&core, GERMANY).await.unwrap_err());
    assert_eq!(verify(GERMANY).await["allowed"], false);

    // ...and a user's own rule beats the group's.
    let own = json!({"action": "allow", "countries": ["DE"], "scope": "user", "subject": fleet.alice_id});
    let own = core.post("/admin/geo-fence/rules", admin, own).await.expect(StatusCode::CREATED).body["data"].clone();
    let verdict = check(GERMANY).await.expect(StatusCode::OK).body["data"].clone();
    assert_eq!((verdict["allowed"].clone(), verdict["rule_id"].clone()), (json!(true), own["id"].clone()));
    sign_in_from(&core, GERMANY).await.unwrap();
    let own_id = own["id"].as_str().unwrap();
    core.delete(&format!("/admin/geo-fence/rules/{own_id}"), admin).await.expect(StatusCode::OK);

    // Audit mode logs denials and lets them through.
    let audit = json!({"enabled": true, "mode": "audit", "database_path": database});
    core.put("/admin/geo-fence/settings", admin, audit).await.expect(StatusCode::OK);
    sign_in_from(&core, NORTH_KOREA).await.unwrap();
    assert_eq!(verify(NORTH_KOREA).await["allowed"], true);
    assert!(core.log().contains("geo-fence would deny (audit mode)"));

    // Rules are listed, replaced and deleted; a deleted rule is gone.
    let rules = core.get("/admin/geo-fence/rules", admin).await.expect(StatusCode::OK);
    assert_eq!(rules.body["meta"]["total"], 3);
    let ids: Vec<&serde_json::Value> = rules.body["data"].as_array().unwrap().iter().map(|rule| &rule["id"]).collect();
    assert!(ids.contains(&&germany["id"]) && ids.contains(&&home["id"]), "{ids:?}");
    let deny_id = deny.body["data"]["id"].as_str().unwrap().to_owned();
    let replaced = core
        .put(
            &format!("/admin/geo-fence/rules/{deny_id}"),
            admin,
            json!({"action": "deny", "countries": ["KP"], "scope": "group", "subject": "staff"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(replaced.body["data"]["countries"], json!(["KP"]));
    core.delete(&format!("/admin/geo-fence/rules/{deny_id}"), admin).await.expect(StatusCode::OK);
    core.delete(&format!("/admin/geo-fence/rules/{deny_id}"), admin)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    core.put(&format!("/admin/geo-fence/rules/{deny_id}"), admin, json!({"action": "deny", "countries": ["KP"]}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Switched off, nothing is judged.
    core.put("/admin/geo-fence/settings", admin, json!({"enabled": false})).await.expect(StatusCode::OK);
    sign_in_from(&core, NORTH_KOREA).await.unwrap();
}
