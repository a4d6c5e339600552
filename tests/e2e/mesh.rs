//! Mesh hubs: their administration on every backend, and the whole site-to-site path
//! with real components in namespaces this test creates: the core, a stock OpenVPN
//! server driven by `gatekey-agent` as a hub (management interface, nftables), a
//! spoke site whose OpenVPN client runs the configuration `gatekey-agent spoke`
//! fetched, a host network behind the spoke, and a user's stock OpenVPN client.
//!
//! Addresses: core 10.63.1.1 ↔ hub 10.63.1.2; hub 10.63.2.1 ↔ spoke 10.63.2.2 (the
//! hub's public address); hub 10.63.3.1 ↔ user 10.63.3.2; spoke 10.63.5.1 ↔ site
//! hosts 10.63.5.10 and 10.63.5.20; hub VPN pool 10.63.4.0/24.

use crate::gateway_e2e::{CONNECTED, download, eventually, start_client, start_server, text};
use crate::kit::{Backend, Core, TempDir, backends, binary};
use crate::netns::{Graceful, Lab, available, wait_for_text};
use crate::rest_admin::id_of;
use gatekey::v1::ProvisionSpokeRequest;
use gatekey::v1::mesh_spoke_agent_service_client::MeshSpokeAgentServiceClient;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::Code;

const SITE_HOST: &str = "10.63.5.10";
const OTHER_SITE_HOST: &str = "10.63.5.20";

/// Asks the core for a spoke's material over gRPC, as the spoke agent does.
async fn provision(
    core: &Core,
    token: &str,
    advertise: &[&str],
) -> Result<gatekey::v1::ProvisionSpokeResponse, tonic::Status> {
    let mut request = tonic::Request::new(ProvisionSpokeRequest {
        advertised_cidrs: advertise.iter().map(|cidr| (*cidr).to_owned()).collect(),
    });
    request.metadata_mut().insert("x-spoke-token", token.parse().unwrap());
    MeshSpokeAgentServiceClient::new(core.channel().await).provision_spoke(request).await.map(|r| r.into_inner())
}

/// A call to `/gateway/{method}` with a hub's agent token: the answer's status and data.
async fn hub_agent_call(core: &Core, hub_token: &str, method: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/gateway/{method}", core.http_base))
        .header("x-gateway-token", hub_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (response.status(), response.json::<Value>().await.unwrap()["data"].clone())
}

/// The hub's rule snapshot, which must be served.
async fn hub_snapshot(core: &Core, hub_token: &str) -> Value {
    let (status, snapshot) = hub_agent_call(core, hub_token, "all-rules").await;
    assert_eq!(status, StatusCode::OK);
    snapshot
}

/// The serial of the certificate inline in an OpenVPN profile, as openssl reads it.
fn certificate_serial(profile: &str) -> String {
    let start = profile.find("<cert>\n").expect("an inline certificate") + "<cert>\n".len();
    let end = profile.find("</cert>").expect("the end of the certificate");
    let mut openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut openssl.stdin.take().unwrap(), &profile.as_bytes()[start..end]).unwrap();
    let output = openssl.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().trim_start_matches("serial=").to_owned()
}

/// The current CRL, PEM.
async fn crl_pem(core: &Core) -> String {
    let url = format!("{}/api/v1/pki/crl.pem", core.http_base);
    reqwest::get(url).await.unwrap().error_for_status().unwrap().text().await.unwrap()
}

/// Whether a serial is revoked, and why, from the public check.
async fn check_serial(core: &Core, serial: &str) -> (bool, String) {
    let check = core.call(reqwest::Method::GET, &format!("/pki/check/{serial}"), None, None).await;
    let data = &check.expect(StatusCode::OK).body["data"];
    (data["revoked"].as_bool().unwrap(), data["reason"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn mesh_hubs_and_spokes_are_administered_on_every_backend() {
    for backend in backends() {
        administer_mesh_on(backend).await;
    }
}

async fn administer_mesh_on(backend: Backend) {
    let core = Core::start(backend).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &["branch"]).await;
    let (_, bob) = core.create_user(&admin, "bob", &[]).await;
    let network = core.post("/admin/networks", &admin, json!({"name": "branch", "cidrs": ["10.70.0.0/16"]})).await;
    let network_id = id_of(&network.expect(StatusCode::CREATED).body);

    // Bad hubs are refused, name the problem, and create nothing.
    for (body, status, code, needle) in [
        (json!({"name": "hub", "hostname": "bad host"}), StatusCode::BAD_REQUEST, "invalid_request", "hostname"),
        (
            json!({"name": "hub", "hostname": "h.example.com", "protocol": "sctp"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "protocol",
        ),
        (
            json!({"name": "hub", "hostname": "h.example.com", "vpn_subnet": "10.0.0.0/8"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "vpn_subnet",
        ),
        (
            json!({"name": "hub", "hostname": "h.example.com", "network_ids": ["net-0000000000000000"]}),
            StatusCode::NOT_FOUND,
            "not_found",
            "net-0000000000000000",
        ),
        (
            json!({"name": "hub", "hostname": "h.example.com", "groups": ["a,b"]}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "groups",
        ),
    ] {
        let message = core.post("/admin/mesh/hubs", &admin, body.clone()).await.expect_error(status, code);
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(core.get("/admin/mesh/hubs", &admin).await.expect(StatusCode::OK).body["meta"]["total"], 0);
    core.post("/admin/mesh/hubs", &alice, json!({"name": "hub", "hostname": "h.example.com"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");

    let created = core
        .post(
            "/admin/mesh/hubs",
            &admin,
            json!({"name": "hub", "hostname": "h.example.com", "network_ids": [network_id], "groups": ["branch"]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let hub_id = id_of(&created);
    assert!(hub_id.starts_with("hub-"), "{created}");
    assert!(created["data"]["token"].as_str().unwrap().starts_with("gkgw_"), "the hub agent's token is shown once");
    let hub = &created["data"];
    assert_eq!(
        (hub["port"].as_u64(), hub["protocol"].as_str(), hub["status"].as_str()),
        (Some(1194), Some("udp"), Some("offline"))
    );
    assert_eq!(hub["network_ids"], json!([network_id]));
    assert_eq!(core.get("/admin/mesh/hubs", &admin).await.body["data"][0].get("token"), None, "listed without token");
    core.post("/admin/mesh/hubs", &admin, json!({"name": "hub", "hostname": "x.example.com"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    core.post("/admin/gateways", &admin, json!({"name": "hub", "hostname": "x.example.com"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    // A hub is a gateway on every gateway route, in the hub role.
    let as_gateway = core.get("/admin/gateways", &admin).await.body;
    assert_eq!((&as_gateway["meta"]["total"], &as_gateway["data"][0]["role"]), (&json!(1), &json!("hub")));
    assert_eq!(
        core.get(&format!("/admin/gateways/{hub_id}"), &admin).await.expect(StatusCode::OK).body["data"]["id"],
        hub_id.as_str()
    );
    core.put(&format!("/admin/gateways/{hub_id}"), &admin, json!({"description": "via the gateway route"}))
        .await
        .expect(StatusCode::OK);
    let hub_view = core.get(&format!("/admin/mesh/hubs/{hub_id}"), &admin).await.expect(StatusCode::OK).body;
    assert_eq!(hub_view["data"]["description"], "via the gateway route");

    // Grants: the group sees the hub (no spoke yet, so no networks); others do not.
    let listed = core.get("/mesh/hubs", &alice).await.expect(StatusCode::OK).body;
    assert_eq!(listed["data"][0]["id"], hub_id.as_str());
    assert_eq!(listed["data"][0]["advertised_cidrs"], json!([]));
    assert_eq!(listed["data"][0].get("groups"), None, "users do not see grants");
    assert_eq!(core.get("/mesh/hubs", &bob).await.body["meta"]["total"], 0);
    let usable = core.get("/gateways", &alice).await.body;
    assert_eq!((&usable["data"][0]["id"], &usable["data"][0]["role"]), (&json!(hub_id), &json!("hub")));

    // Updates: a wrong list changes nothing; given lists replace, absent ones stay.
    core.put(
        &format!("/admin/mesh/hubs/{hub_id}"),
        &admin,
        json!({"description": "new", "user_ids": ["usr-0000000000000000"]}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    let updated = core
        .put(
            &format!("/admin/mesh/hubs/{hub_id}"),
            &admin,
            json!({"description": "branch offices", "user_ids": [alice_id], "groups": []}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(updated["data"]["description"], "branch offices");
    assert_eq!((&updated["data"]["user_ids"], &updated["data"]["groups"]), (&json!([alice_id]), &json!([])));
    assert_eq!(updated["data"]["network_ids"], json!([network_id]), "an absent list stays");
    core.put("/admin/mesh/hubs/hub-0000000000000000", &admin, json!({"description": "x"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Spokes: bad ones refused; a token shown once.
    let spokes = format!("/admin/mesh/hubs/{hub_id}/spokes");
    for (body, needle) in [
        (json!({"name": "east", "local_cidrs": []}), "local_cidrs"),
        (json!({"name": "east", "local_cidrs": ["10.70.1.0/33"]}), "local_cidrs"),
        (json!({"name": "east", "local_cidrs": ["fd00::/64"]}), "IPv4"),
        (json!({"name": "east", "local_cidrs": ["0.0.0.0/0"]}), "too broad"),
        (json!({"name": "east", "local_cidrs": ["10.9.0.0/16"]}), "address pool"),
        (json!({"name": "", "local_cidrs": ["10.70.1.0/24"]}), "name"),
    ] {
        let message =
            core.post(&spokes, &admin, body.clone()).await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.contains(needle), "{body}: {message}");
    }
    core.post(
        "/admin/mesh/hubs/hub-0000000000000000/spokes",
        &admin,
        json!({"name": "e", "local_cidrs": ["10.70.1.0/24"]}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    let spoke = core
        .post(&spokes, &admin, json!({"name": "east", "local_cidrs": ["10.70.1.7/24", "10.70.2.0/24"]}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let spoke_id = id_of(&spoke);
    let spoke_token = spoke["data"]["token"].as_str().unwrap().to_owned();
    assert!(spoke_id.starts_with("spoke-") && spoke_token.starts_with("gksp_"), "{spoke}");
    assert_eq!(spoke["data"]["local_cidrs"], json!(["10.70.1.0/24", "10.70.2.0/24"]), "normalised");
    core.post(&spokes, &admin, json!({"name": "east", "local_cidrs": ["10.70.3.0/24"]}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    // Two spokes of a hub cannot share addresses, nor can the hub's pool move onto them.
    let message = core
        .post(&spokes, &admin, json!({"name": "north", "local_cidrs": ["10.70.0.0/16"]}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("spoke `east`"), "{message}");
    core.put(&format!("/admin/mesh/hubs/{hub_id}"), &admin, json!({"vpn_subnet": "10.70.2.0/24"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");

    // The spoke's agent: a wrong token or a network outside its own is refused.
    let refused = provision(&core, "gksp_notatoken", &[]).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = provision(&core, &spoke_token, &["10.71.0.0/24"]).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("10.71.0.0/24"), "{}", refused.message());
    let material = provision(&core, &spoke_token, &["10.70.1.0/25"]).await.unwrap();
    let first_serial = certificate_serial(&material.openvpn_config);
    assert!(
        material.openvpn_config.contains("remote h.example.com 1194")
            && material.openvpn_config.contains("<key>")
            && material.openvpn_config.contains("verify-x509-name h.example.com name"),
        "{}",
        material.openvpn_config
    );
    let listed = core.get(&spokes, &admin).await.expect(StatusCode::OK).body;
    assert_eq!(listed["data"][0]["advertised_cidrs"], json!(["10.70.1.0/25"]));
    assert_eq!(listed["data"][0]["status"], "offline", "no tunnel to the hub yet");
    let renewed = provision(&core, &spoke_token, &[]).await.unwrap();
    assert_eq!(renewed.spoke.unwrap().advertised_cidrs, ["10.70.1.0/24", "10.70.2.0/24"]);
    // Only the newest certificate of a spoke is valid: the earlier one is revoked.
    let serial = certificate_serial(&renewed.openvpn_config);
    assert_eq!(check_serial(&core, &first_serial).await, (true, "superseded".to_owned()));
    assert!(!check_serial(&core, &serial).await.0);

    // Tokens rotate (shown once); the old one stops working at once.
    let rotated = core.post(&format!("{spokes}/{spoke_id}/rotate-token"), &admin, json!({})).await;
    let spoke_token_2 = rotated.expect(StatusCode::OK).body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(provision(&core, &spoke_token, &[]).await.unwrap_err().code(), Code::Unauthenticated);
    let spoke_token = spoke_token_2;
    let serial = certificate_serial(&provision(&core, &spoke_token, &[]).await.unwrap().openvpn_config);
    let hub_token = created["data"]["token"].as_str().unwrap();
    hub_snapshot(&core, hub_token).await;
    let rotated = core.post(&format!("/admin/mesh/hubs/{hub_id}/rotate-token"), &admin, json!({})).await;
    let new_hub_token = rotated.expect(StatusCode::OK).body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(hub_agent_call(&core, hub_token, "all-rules").await.0, StatusCode::UNAUTHORIZED);
    hub_snapshot(&core, &new_hub_token).await;
    let (status, material) = hub_agent_call(&core, &new_hub_token, "provision").await;
    assert_eq!((status, &material["role"]), (StatusCode::OK, &json!("hub")), "the hub's agent learns its role");
    core.post(&format!("{spokes}/spoke-0000000000000000/rotate-token"), &admin, json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    core.post(&format!("{spokes}/{spoke_id}/rotate-token"), &alice, json!({}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");

    // Removing a spoke, then the hub.
    core.delete(&format!("{spokes}/{spoke_id}"), &admin).await.expect(StatusCode::OK);
    assert_eq!(check_serial(&core, &serial).await, (true, "cessation_of_operation".to_owned()));
    core.delete(&format!("{spokes}/{spoke_id}"), &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(provision(&core, &spoke_token, &[]).await.unwrap_err().code(), Code::Unauthenticated);
    let west = core.post(&spokes, &admin, json!({"name": "west", "local_cidrs": ["10.70.9.0/24"]})).await;
    let west_token = west.expect(StatusCode::CREATED).body["data"]["token"].as_str().unwrap().to_owned();
    let west_serial = certificate_serial(&provision(&core, &west_token, &[]).await.unwrap().openvpn_config);
    let crl_before = crl_pem(&core).await;
    core.delete(&format!("/admin/mesh/hubs/{hub_id}"), &admin).await.expect(StatusCode::OK);
    assert_eq!(
        check_serial(&core, &west_serial).await,
        (true, "cessation_of_operation".to_owned()),
        "a deleted hub's spokes lose their certificates"
    );
    assert_ne!(crl_pem(&core).await, crl_before, "a new CRL came with the deletion");
    assert_eq!(core.get("/admin/mesh/hubs", &admin).await.body["meta"]["total"], 0);
    assert_eq!(
        provision(&core, &west_token, &[]).await.unwrap_err().code(),
        Code::Unauthenticated,
        "spokes go with their hub"
    );
    core.get(&spokes, &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

/// Runs `gatekey-agent spoke --once`; returns its exit status and output.
async fn provision_once(core: &Core, token: &str, dir: &Path, advertise: &str) -> (bool, String) {
    let output = tokio::process::Command::new(binary("gatekey-agent"))
        .args(["spoke", "--once", "--core", &format!("http://{}", core.grpc_address), "--token", token])
        .args(["--advertise", advertise])
        .arg("--state-dir")
        .arg(dir)
        .args(["--openvpn-extra", "disable-dco"])
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test]
async fn a_user_reaches_a_spoke_site_through_the_hub_only_where_a_rule_allows() {
    if !available(&["openvpn", "ip", "nft", "conntrack", "ping"]) {
        return;
    }
    let mut lab = Lab::create("mh", &["hub", "spoke", "site", "user"]);
    lab.link(None, "10.63.1.1/24", "hub", "10.63.1.2/24");
    lab.link(Some("hub"), "10.63.2.1/24", "spoke", "10.63.2.2/24");
    lab.link(Some("hub"), "10.63.3.1/24", "user", "10.63.3.2/24");
    lab.link(Some("spoke"), "10.63.5.1/24", "site", &format!("{SITE_HOST}/24"));
    lab.exec("site", &["ip", "addr", "add", &format!("{OTHER_SITE_HOST}/24"), "dev", &site_interface(&lab)]);
    lab.exec("site", &["ip", "route", "add", "default", "via", "10.63.5.1"]);
    lab.exec("user", &["ip", "route", "add", "10.63.2.1/32", "via", "10.63.3.1"]);
    lab.exec("hub", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    lab.exec("spoke", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    // The spoke's agent reaches the core through the hub's host; the core's side routes
    // the spoke and the hub's pool back (the pool so that a hub which let tunnel traffic
    // out onto its own networks would be caught below).
    lab.exec("spoke", &["ip", "route", "add", "10.63.1.1/32", "via", "10.63.2.1"]);
    for destination in ["10.63.2.2/32", "10.63.4.0/24"] {
        let routed = std::process::Command::new("ip").args(["route", "add", destination, "via", "10.63.1.2"]).status();
        assert!(routed.unwrap().success(), "cannot route the test's own namespace to {destination}");
    }

    // Spoke certificates live a minute here, so the agent renews one during the test.
    let core =
        Core::start_with(Backend::Sqlite, &["--grpc-listen", "10.63.1.1:0", "--spoke-cert-ttl-seconds", "60"]).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &[]).await;
    let network = core.post("/admin/networks", &admin, json!({"name": "site", "cidrs": ["10.63.5.0/24"]})).await;
    let network_id = id_of(&network.expect(StatusCode::CREATED).body);
    // A rule for an address on the hub's own side: a hub only forwards into the tunnel,
    // so even a user who routes it into the tunnel by hand does not get there.
    let hub_side = core.post("/admin/networks", &admin, json!({"name": "hub-side", "cidrs": ["10.63.1.0/24"]})).await;
    let hub_side_id = id_of(&hub_side.expect(StatusCode::CREATED).body);
    core.post(
        "/admin/access-rules",
        &admin,
        json!({"name": "alice-hub-side", "network_id": hub_side_id, "user_ids": [alice_id], "destination_type": "ip",
               "destination": "10.63.1.1", "protocol": "icmp"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let hub = core
        .post(
            "/admin/mesh/hubs",
            &admin,
            json!({"name": "mesh", "hostname": "10.63.2.1", "vpn_subnet": "10.63.4.0/24",
                   "network_ids": [network_id, hub_side_id], "user_ids": [alice_id]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let (hub_id, hub_token) = (id_of(&hub), hub["data"]["token"].as_str().unwrap().to_owned());
    let rule = core
        .post(
            "/admin/access-rules",
            &admin,
            json!({"name": "alice-site", "network_id": network_id, "user_ids": [alice_id], "destination_type": "ip",
                   "destination": SITE_HOST, "protocol": "icmp"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let rule_id = id_of(&rule.body);
    let spokes = format!("/admin/mesh/hubs/{hub_id}/spokes");
    let spoke = core.post(&spokes, &admin, json!({"name": "branch", "local_cidrs": ["10.63.5.0/24"]})).await;
    let spoke = spoke.expect(StatusCode::CREATED).body;
    let (spoke_id, spoke_token) = (id_of(&spoke), spoke["data"]["token"].as_str().unwrap().to_owned());

    // The hub: the agent provisions as for a gateway and drives OpenVPN and nftables.
    let dir = TempDir::new("mesh");
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let agent_log = path("agent.log");
    let hub_agent = |log: &Path| {
        let command = format!(
            "RUST_LOG=info exec {} run --core http://{} --token {hub_token} --state-dir {} \
             --openvpn-extra 'local 10.63.2.1' --openvpn-extra disable-dco > {} 2>&1",
            binary("gatekey-agent").display(),
            core.grpc_address,
            dir.path().display(),
            log.display()
        );
        lab.spawn("hub", "sh", &["-c", &command])
    };
    let agent = hub_agent(&agent_log);
    assert!(
        wait_for_text(&path("openvpn.conf"), "management-client-auth", Duration::from_secs(20)).await,
        "{}",
        text(&agent_log)
    );
    let (_server, server_log) = start_server(&lab, "hub", dir.path()).await;
    assert!(wait_for_text(&agent_log, "connected to the core", Duration::from_secs(15)).await, "{}", text(&agent_log));

    let before = hub_snapshot(&core, &hub_token).await;
    assert_eq!(before["clients"][0]["push_routes"], json!([]), "no spoke connected, no routes: {before}");

    // The spoke: its agent advertises the site (a network outside its own is refused),
    // writes its configuration and runs OpenVPN with it.
    let spoke_dir = dir.path().join("spoke");
    let (refused, output) = provision_once(&core, &spoke_token, &spoke_dir, "10.64.0.0/24").await;
    assert!(!refused && output.contains("not inside"), "{output}");
    let spoke_log = path("spoke.log");
    let spoke_command = format!(
        "RUST_LOG=info exec {} spoke --core http://{} --token {spoke_token} --state-dir {} \
         --advertise 10.63.5.0/24 --openvpn-extra disable-dco > {} 2>&1",
        binary("gatekey-agent").display(),
        core.grpc_address,
        spoke_dir.display(),
        spoke_log.display()
    );
    let mut spoke_agent = Graceful(lab.spawn("spoke", "sh", &["-c", &spoke_command]));
    assert!(
        wait_for_text(&spoke_log, CONNECTED, Duration::from_secs(20)).await,
        "{}\n{}\n{}",
        text(&spoke_log),
        text(&server_log),
        text(&agent_log)
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            core.get(&spokes, &admin).await.body["data"][0]["status"] == "online"
        })
        .await,
        "the hub never reported the spoke's tunnel"
    );
    // The spoke's tunnel changed the hub's users' routes: a new snapshot version.
    let after = hub_snapshot(&core, &hub_token).await;
    assert!(after["version"].as_u64() > before["version"].as_u64(), "{before} {after}");
    assert_eq!(after["clients"][0]["push_routes"], json!(["10.63.5.0/24"]));
    let listed = core.get("/mesh/hubs", &alice).await.expect(StatusCode::OK).body;
    assert_eq!(listed["data"][0]["status"], "online");
    assert_eq!(listed["data"][0]["advertised_cidrs"], json!(["10.63.5.0/24"]));
    let metrics = reqwest::get(format!("{}/metrics", core.http_base)).await.unwrap().text().await.unwrap();
    let connected = format!("\ngatekey_mesh_spokes_connected{{node=\"{}\"}} 1\n", core.node_id);
    assert!(metrics.contains(&connected), "{metrics}");

    // Alice connects to the hub: the site's route is pushed, her host answers, the
    // other host (no rule) is dropped by the hub.
    let profile = download(&core, &alice, &hub_id).await;
    let (_alice_vpn, alice_log) = start_client(&lab, "user", dir.path(), "alice", &profile);
    assert!(
        wait_for_text(&alice_log, CONNECTED, Duration::from_secs(20)).await,
        "{}\n{}",
        text(&alice_log),
        text(&server_log)
    );
    assert!(text(&alice_log).contains("route 10.63.5.0 255.255.255.0"), "{}", text(&alice_log));
    assert!(lab.reaches("user", SITE_HOST).await, "the allowed site host is unreachable:\n{}", text(&agent_log));
    assert!(!lab.pings("user", OTHER_SITE_HOST).await, "a site host no rule allows is reachable");
    lab.exec("user", &["ip", "route", "add", "10.63.1.1/32", "via", "10.63.4.1"]);
    assert!(!lab.pings("user", "10.63.1.1").await, "the hub let tunnel traffic out onto its own networks");

    // The rule moves to the other host: the hub follows without a reconnect.
    core.put(
        &format!("/admin/access-rules/{rule_id}"),
        &admin,
        json!({"name": "alice-site", "network_id": network_id, "user_ids": [alice_id], "destination_type": "ip",
               "destination": OTHER_SITE_HOST, "protocol": "icmp"}),
    )
    .await
    .expect(StatusCode::OK);
    assert!(
        eventually(Duration::from_secs(10), || lab.pings("user", OTHER_SITE_HOST)).await,
        "the new rule never applied"
    );
    assert!(!lab.pings("user", SITE_HOST).await, "the old destination is still reachable");

    // The spoke's agent renews its certificate in time and reconnects with it.
    assert!(
        wait_for_text(&spoke_log, "renewed the spoke's certificate", Duration::from_secs(60)).await,
        "{}",
        text(&spoke_log)
    );
    assert!(
        eventually(Duration::from_secs(20), || async { text(&spoke_log).matches(CONNECTED).count() >= 2 }).await,
        "the spoke did not reconnect with its renewed certificate:\n{}",
        text(&spoke_log)
    );
    assert!(lab.reaches("user", OTHER_SITE_HOST).await, "the site is unreachable after the renewal");
    let connections = text(&spoke_log).matches(CONNECTED).count();

    // The hub's agent restarts: its ledger gives the live spoke its networks back, so
    // the route into the tunnel still goes when the spoke does.
    drop(agent);
    let agent_log = path("agent-2.log");
    let _agent = hub_agent(&agent_log);
    assert!(wait_for_text(&agent_log, "connected to the core", Duration::from_secs(15)).await, "{}", text(&agent_log));
    assert!(hub_route_to_site(&lab).await, "the spoke's route is gone after the agent restarted");
    assert!(lab.reaches("user", OTHER_SITE_HOST).await, "the site is unreachable after the agent restarted");

    // Removing the spoke revokes it: its tunnel is cut and stays down, so the site is gone,
    // and the spoke's agent learns that its spoke is gone, says so and exits (code 3).
    let kills = text(&server_log).matches("MANAGEMENT: CMD 'client-kill").count();
    core.delete(&format!("{spokes}/{spoke_id}"), &admin).await.expect(StatusCode::OK);
    assert!(
        eventually(Duration::from_secs(10), || async {
            text(&server_log).matches("MANAGEMENT: CMD 'client-kill").count() > kills
        })
        .await,
        "{}",
        text(&agent_log)
    );
    assert!(
        eventually(Duration::from_secs(10), || async { !hub_route_to_site(&lab).await }).await,
        "the removed spoke's route stayed"
    );
    assert!(
        eventually(Duration::from_secs(10), || async { !lab.pings("user", OTHER_SITE_HOST).await }).await,
        "the site is still reachable after its spoke was removed"
    );
    let exit = tokio::time::timeout(Duration::from_secs(30), spoke_agent.0.wait()).await;
    let exit = exit.unwrap_or_else(|_| panic!("the removed spoke's agent kept running:\n{}", text(&spoke_log)));
    assert_eq!(exit.unwrap().code(), Some(3), "{}", text(&spoke_log));
    assert!(text(&spoke_log).contains("refused this agent for good"), "{}", text(&spoke_log));
    assert_eq!(text(&spoke_log).matches(CONNECTED).count(), connections, "a removed spoke got back in");
}

/// Whether the hub's kernel routes the site's network (into the tunnel).
async fn hub_route_to_site(lab: &Lab) -> bool {
    let output = tokio::process::Command::new("ip")
        .args(["-n", lab.ns("hub"), "route", "show", "10.63.5.0/24"])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).contains("dev tun")
}

/// The site end of the spoke ↔ site link (the lab's fourth link).
fn site_interface(lab: &Lab) -> String {
    let tag = lab.ns("site").trim_start_matches("gk-").trim_end_matches("-site").to_owned();
    format!("v{tag}4b")
}
