//! The whole path with real components inside namespaces this test creates: the
//! core, a stock OpenVPN 2.6 server driven by `gatekey-agent` (management interface,
//! nftables), a stock OpenVPN client using a config from `POST /configs/generate`,
//! and a protected network with two hosts.
//!
//! Addresses: core side 10.61.1.1 ↔ gateway 10.61.1.2; gateway 10.61.2.1 ↔ client
//! 10.61.2.2; gateway 10.61.3.1 ↔ protected hosts 10.61.3.10 and 10.61.3.20;
//! VPN pool 10.61.4.0/24.

use crate::kit::{Backend, Core, TempDir, binary};
use crate::netns::{Lab, available, wait_for_text};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALLOWED_HOST: &str = "10.61.3.10";
const OTHER_HOST: &str = "10.61.3.20";
pub(crate) const CONNECTED: &str = "Initialization Sequence Completed";

pub(crate) fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) async fn download(core: &Core, token: &str, gateway_id: &str) -> String {
    let generated =
        core.post("/configs/generate", token, json!({"gateway_id": gateway_id, "protocol": "openvpn"})).await;
    let url = generated.expect(StatusCode::CREATED).body["download_url"].as_str().unwrap().to_owned();
    let response =
        reqwest::Client::new().get(format!("{}{url}", core.http_base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Starts a stock OpenVPN client in the lab's `role` namespace with `profile`;
/// returns it (killed on drop) and its log file.
pub(crate) fn start_client(
    lab: &Lab,
    role: &str,
    dir: &Path,
    name: &str,
    profile: &str,
) -> (tokio::process::Child, PathBuf) {
    let config = dir.join(format!("{name}.ovpn"));
    let log = dir.join(format!("{name}.log"));
    std::fs::write(&config, profile).unwrap();
    let client = lab.spawn(
        role,
        "openvpn",
        &["--config", &config.to_string_lossy(), "--disable-dco", "--log", &log.to_string_lossy()],
    );
    (client, log)
}

/// Starts OpenVPN in the lab's `role` namespace with the `openvpn.conf` the agent
/// wrote in `dir`, and waits until it is up; returns it (killed on drop) and its log.
pub(crate) async fn start_server(lab: &Lab, role: &str, dir: &Path) -> (tokio::process::Child, PathBuf) {
    let log = dir.join("server.log");
    let server = lab.spawn(
        role,
        "openvpn",
        &["--config", &dir.join("openvpn.conf").to_string_lossy(), "--log", &log.to_string_lossy()],
    );
    assert!(wait_for_text(&log, CONNECTED, Duration::from_secs(15)).await, "{}", text(&log));
    (server, log)
}

/// A gateway running in a lab: the agent and the OpenVPN server it configured.
pub(crate) struct RunningGateway {
    _agent: tokio::process::Child,
    _server: tokio::process::Child,
    /// The agent's log.
    pub agent_log: PathBuf,
    /// The server's log.
    pub server_log: PathBuf,
}

/// Starts `gatekey-agent` in the lab's `gateway` namespace with `token`, state in `dir`,
/// the server answering on `local`; then the OpenVPN server it writes; waits until the
/// agent holds its stream to `core`.
pub(crate) async fn start_gateway(lab: &Lab, core: &Core, token: &str, dir: &Path, local: &str) -> RunningGateway {
    let agent_log = dir.join("agent.log");
    let agent_command = format!(
        "RUST_LOG=info exec {} run --core http://{} --token {token} --state-dir {} \
         --openvpn-extra 'local {local}' --openvpn-extra disable-dco > {} 2>&1",
        binary("gatekey-agent").display(),
        core.grpc_address,
        dir.display(),
        agent_log.display()
    );
    let agent = lab.spawn("gateway", "sh", &["-c", &agent_command]);
    assert!(
        wait_for_text(&dir.join("openvpn.conf"), "management-client-auth", Duration::from_secs(20)).await,
        "{}",
        text(&agent_log)
    );
    let (server, server_log) = start_server(lab, "gateway", dir).await;
    assert!(wait_for_text(&agent_log, "attached to OpenVPN", Duration::from_secs(15)).await, "{}", text(&agent_log));
    assert!(wait_for_text(&agent_log, "connected to the core", Duration::from_secs(15)).await, "{}", text(&agent_log));
    RunningGateway { _agent: agent, _server: server, agent_log, server_log }
}

/// Polls `check` until it holds or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A gateway as an admin sets one up in a lab whose addresses start with `prefix`
/// (`10.61` → hostname 10.61.2.1, pool 10.61.4.0/24, protected network 10.61.3.0/24):
/// the network attached, the group `staff` granted, and an ICMP rule for `user_id` to
/// `host`.
pub(crate) struct LabGateway {
    pub gateway_id: String,
    pub token: String,
    pub network_id: String,
    pub rule_id: String,
}

pub(crate) async fn lab_gateway(core: &Core, admin: &str, prefix: &str, user_id: &str, host: &str) -> LabGateway {
    let gateway = core
        .post(
            "/admin/gateways",
            admin,
            json!({"name": "lab", "hostname": format!("{prefix}.2.1"), "vpn_subnet": format!("{prefix}.4.0/24")}),
        )
        .await
        .expect(StatusCode::CREATED);
    let gateway_id = gateway.body["data"]["id"].as_str().unwrap().to_owned();
    let token = gateway.body["data"]["token"].as_str().unwrap().to_owned();
    let network =
        core.post("/admin/networks", admin, json!({"name": "protected", "cidrs": [format!("{prefix}.3.0/24")]})).await;
    let network_id = network.body["data"]["id"].as_str().unwrap().to_owned();
    core.post(&format!("/admin/gateways/{gateway_id}/networks"), admin, json!({"network_id": network_id}))
        .await
        .expect(StatusCode::OK);
    core.post(&format!("/admin/gateways/{gateway_id}/groups"), admin, json!({"group": "staff"}))
        .await
        .expect(StatusCode::OK);
    let rule = core
        .post(
            "/admin/access-rules",
            admin,
            json!({"name": "ping", "network_id": network_id, "user_ids": [user_id], "destination_type": "ip",
                   "destination": host, "protocol": "icmp"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let rule_id = rule.body["data"]["id"].as_str().unwrap().to_owned();
    LabGateway { gateway_id, token, network_id, rule_id }
}

#[tokio::test]
async fn a_vpn_client_reaches_exactly_what_its_rules_allow_until_revoked() {
    if !available(&["openvpn", "ip", "nft", "conntrack", "ping"]) {
        return;
    }
    let mut lab = Lab::create("e2e", &["gateway", "client", "protected"]);
    lab.link(None, "10.61.1.1/24", "gateway", "10.61.1.2/24");
    lab.link(Some("gateway"), "10.61.2.1/24", "client", "10.61.2.2/24");
    lab.link(Some("gateway"), "10.61.3.1/24", "protected", "10.61.3.10/24");
    lab.exec("protected", &["ip", "addr", "add", "10.61.3.20/24", "dev", &format!("v{}3b", lab_tag(&lab))]);
    lab.exec("protected", &["ip", "route", "add", "10.61.4.0/24", "via", "10.61.3.1"]);
    lab.exec("gateway", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);

    let core = Core::start_with(Backend::Sqlite, &["--grpc-listen", "10.61.1.1:0"]).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &["staff"]).await;
    let (_, bob) = core.create_user(&admin, "bob", &["staff"]).await;
    let LabGateway { gateway_id, token, network_id, rule_id } =
        lab_gateway(&core, &admin, "10.61", &alice_id, ALLOWED_HOST).await;
    let alice_profile = download(&core, &alice, &gateway_id).await;
    let bob_profile = download(&core, &bob, &gateway_id).await;

    // The gateway: the agent provisions and writes openvpn.conf; OpenVPN runs it.
    let dir = TempDir::new("gw");
    let gateway = start_gateway(&lab, &core, &token, dir.path(), "10.61.2.1").await;
    let (agent_log, server_log) = (gateway.agent_log.clone(), gateway.server_log.clone());
    let listed = core.get("/gateways", &alice).await;
    assert_eq!(listed.body["data"][0]["status"], "online", "the stream's heartbeat marks the gateway online");

    // Alice connects; nftables lets her reach her host and nothing else.
    let (mut alice_vpn, alice_log) = start_client(&lab, "client", dir.path(), "alice", &alice_profile);
    assert!(
        wait_for_text(&alice_log, CONNECTED, Duration::from_secs(20)).await,
        "{}\n{}\n{}",
        text(&server_log),
        text(&agent_log),
        core.log()
    );
    assert!(lab.reaches("client", ALLOWED_HOST).await, "the allowed host is unreachable");
    assert!(!lab.pings("client", OTHER_HOST).await, "a host no rule allows is reachable");

    // An admin moves the rule to the other host: the gateway follows without a reconnect.
    core.put(
        &format!("/admin/access-rules/{rule_id}"),
        &admin,
        json!({"name": "alice-host", "network_id": network_id, "user_ids": [alice_id], "destination_type": "ip",
               "destination": OTHER_HOST, "protocol": "icmp"}),
    )
    .await
    .expect(StatusCode::OK);
    assert!(
        eventually(Duration::from_secs(10), || lab.pings("client", OTHER_HOST)).await,
        "the new rule never applied"
    );
    assert!(!lab.pings("client", ALLOWED_HOST).await, "the old destination is still reachable");
    assert_eq!(text(&alice_log).matches(CONNECTED).count(), 1, "the client reconnected");

    // The core goes away: the gateway keeps the rules it has; when the core is back
    // (same address), the agent reconnects and resyncs.
    let grpc_address = core.grpc_address.clone();
    let stopped = core.stop().await;
    assert!(
        wait_for_text(&agent_log, "the stream to the core ended", Duration::from_secs(10)).await,
        "{}",
        text(&agent_log)
    );
    assert!(lab.pings("client", OTHER_HOST).await, "rules were lost while the core was away");
    assert!(!lab.pings("client", ALLOWED_HOST).await);
    let core = stopped.start(&["--grpc-listen", &grpc_address]).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            text(&agent_log).matches("connected to the core").count() >= 2
        })
        .await,
        "the agent did not reconnect:\n{}",
        text(&agent_log)
    );
    let admin = core.admin_token().await;

    // Bob loses his access (the group grant goes, a direct grant to alice stays).
    core.post(&format!("/admin/gateways/{gateway_id}/users"), &admin, json!({"user_id": alice_id}))
        .await
        .expect(StatusCode::OK);
    core.delete(&format!("/admin/gateways/{gateway_id}/groups/staff"), &admin).await.expect(StatusCode::OK);
    let (_bob_vpn, bob_log) = start_client(&lab, "client", dir.path(), "bob", &bob_profile);
    assert!(
        wait_for_text(&server_log, "is not granted gateway", Duration::from_secs(15)).await,
        "the gateway did not deny bob with the core's reason:\n{}",
        text(&server_log)
    );
    assert!(core.log().contains("connection denied"), "the core did not log the denial:\n{}", core.log());
    assert!(core.log().contains("`bob` is not granted gateway `lab`"), "{}", core.log());
    assert!(!text(&bob_log).contains(CONNECTED));

    // Revoking alice's certificate cuts her tunnel, and she cannot come back.
    let configs = core.get("/admin/configs", &admin).await;
    let serial = configs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user_email"] == "alice@example.com")
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked_at = Instant::now();
    core.post("/admin/pki/revoke", &admin, json!({"serial": serial, "reason": "key_compromise"}))
        .await
        .expect(StatusCode::OK);
    assert!(
        wait_for_text(&server_log, "MANAGEMENT: CMD 'client-kill", Duration::from_secs(10)).await,
        "{}",
        text(&agent_log)
    );
    println!("revocation → client-kill at the gateway: {} ms", revoked_at.elapsed().as_millis());
    assert!(
        eventually(Duration::from_secs(10), || async { !lab.pings("client", OTHER_HOST).await }).await,
        "alice still reaches the network"
    );
    // The kill halts the stock client (with the core's reason) instead of letting it
    // retry every minute.
    assert!(
        text(&server_log).contains("client-kill") && text(&server_log).contains("HALT,the certificate was revoked"),
        "the kill carried no reason:\n{}",
        text(&server_log)
    );
    let exited = tokio::time::timeout(Duration::from_secs(15), alice_vpn.wait()).await;
    assert!(exited.is_ok(), "the revoked client kept running:\n{}", text(&alice_log));
    assert!(text(&alice_log).contains("server-pushed-halt"), "the client was not halted:\n{}", text(&alice_log));
    assert_eq!(text(&alice_log).matches(CONNECTED).count(), 1, "a revoked client got back in");
}

/// The tag part of the lab's interface names (see `Lab::link`).
fn lab_tag(lab: &Lab) -> String {
    lab.ns("gateway").trim_start_matches("gk-").trim_end_matches("-gateway").to_owned()
}

#[tokio::test]
async fn script_hooks_verify_and_report_without_the_management_interface() {
    if !available(&["openvpn", "ip", "ping"]) {
        return;
    }
    let mut lab = Lab::create("hk", &["gateway", "client"]);
    lab.link(None, "10.62.1.1/24", "gateway", "10.62.1.2/24");
    lab.link(Some("gateway"), "10.62.2.1/24", "client", "10.62.2.2/24");
    let core = Core::start_with(Backend::Sqlite, &["--grpc-listen", "10.62.1.1:0"]).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &[]).await;
    let (bob_id, bob) = core.create_user(&admin, "bob", &[]).await;
    let gateway = core
        .post(
            "/admin/gateways",
            &admin,
            json!({"name": "hooked", "hostname": "10.62.2.1", "vpn_subnet": "10.62.4.0/24"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let gateway_id = gateway.body["data"]["id"].as_str().unwrap().to_owned();
    let token = gateway.body["data"]["token"].as_str().unwrap().to_owned();
    for user in [&alice_id, &bob_id] {
        core.post(&format!("/admin/gateways/{gateway_id}/users"), &admin, json!({"user_id": user}))
            .await
            .expect(StatusCode::OK);
    }
    let alice_profile = download(&core, &alice, &gateway_id).await;
    let bob_profile = download(&core, &bob, &gateway_id).await;
    core.delete(&format!("/admin/gateways/{gateway_id}/users/{bob_id}"), &admin).await.expect(StatusCode::OK);

    let dir = TempDir::new("hooks");
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let provisioned = tokio::process::Command::new("ip")
        .args(["netns", "exec", lab.ns("gateway")])
        .arg(binary("gatekey-agent"))
        .args(["provision", "--hooks", "--core", &format!("http://{}", core.grpc_address), "--token", &token])
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--openvpn-extra", "local 10.62.2.1", "--openvpn-extra", "disable-dco"])
        .output()
        .await
        .unwrap();
    assert!(provisioned.status.success(), "{}", String::from_utf8_lossy(&provisioned.stderr));
    let conf = text(&path("openvpn.conf"));
    assert!(conf.contains("client-connect \"") && !conf.contains("management"), "{conf}");

    let (_server, server_log) = start_server(&lab, "gateway", dir.path()).await;

    let (_alice_vpn, alice_log) = start_client(&lab, "client", dir.path(), "alice", &alice_profile);
    assert!(
        wait_for_text(&alice_log, CONNECTED, Duration::from_secs(20)).await,
        "{}\n{}",
        text(&alice_log),
        text(&server_log)
    );
    assert!(lab.reaches("client", "10.62.4.1").await, "no traffic through the tunnel");
    assert!(
        eventually(Duration::from_secs(10), || async { core.dump_database().await.contains("hook-") }).await,
        "client-connect did not report the session"
    );

    let (_bob_vpn, bob_log) = start_client(&lab, "client", dir.path(), "bob", &bob_profile);
    assert!(
        wait_for_text(&server_log, "tls-verify", Duration::from_secs(15)).await
            && eventually(Duration::from_secs(10), || async {
                core.log().contains("`bob` is not granted gateway `hooked`")
            })
            .await,
        "bob was not refused by the hook:\n{}\n{}",
        text(&server_log),
        core.log()
    );
    assert!(!text(&bob_log).contains(CONNECTED));
}

/// What `nft list table inet gatekey` prints in the lab's gateway namespace (empty if
/// the table is gone).
async fn gatekey_table(lab: &Lab) -> String {
    let output = tokio::process::Command::new("ip")
        .args(["netns", "exec", lab.ns("gateway"), "nft", "list", "table", "inet", "gatekey"])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A gateway as the README sets one up: the agent checks IP forwarding (refusing to
/// start with `--forwarding check`, turning it on by default), runs OpenVPN itself
/// (`--run-openvpn`), masquerades clients for a LAN with no route back to the VPN pool
/// (`--nat`), puts its nftables table back when someone deletes or flushes it, and
/// stops OpenVPN when it stops.
///
/// Addresses: core side 10.65.1.1 ↔ gateway 10.65.1.2; gateway 10.65.2.1 ↔ client
/// 10.65.2.2; gateway 10.65.3.1 ↔ LAN host 10.65.3.10 (no route back); pool 10.65.4.0/24.
#[tokio::test]
async fn an_agent_with_nat_runs_openvpn_itself_and_repairs_its_firewall() {
    if !available(&["openvpn", "ip", "nft", "conntrack", "ping"]) {
        return;
    }
    const LAN_HOST: &str = "10.65.3.10";
    let mut lab = Lab::create("nat", &["gateway", "client", "lan"]);
    lab.link(None, "10.65.1.1/24", "gateway", "10.65.1.2/24");
    lab.link(Some("gateway"), "10.65.2.1/24", "client", "10.65.2.2/24");
    lab.link(Some("gateway"), "10.65.3.1/24", "lan", "10.65.3.10/24");
    // The LAN has no route back to the pool: only masquerading can answer a client.
    assert!(!lab.succeeds("lan", "ip", &["route", "get", "10.65.4.2"]).await, "the LAN routes to the pool");
    let forwarding = || async {
        let output = tokio::process::Command::new("ip")
            .args(["netns", "exec", lab.ns("gateway"), "cat", "/proc/sys/net/ipv4/ip_forward"])
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(forwarding().await, "0", "a new namespace starts without forwarding");

    let core = Core::start_with(Backend::Sqlite, &["--grpc-listen", "10.65.1.1:0"]).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &["staff"]).await;
    let LabGateway { gateway_id, token, .. } = lab_gateway(&core, &admin, "10.65", &alice_id, LAN_HOST).await;
    let profile = download(&core, &alice, &gateway_id).await;

    let dir = TempDir::new("nat");
    let agent = |log: &Path, flags: &str| {
        let command = format!(
            "RUST_LOG=info exec {} run --core http://{} --token {token} --state-dir {} --firewall-check-seconds 1 \
             --openvpn-extra disable-dco {flags} > {} 2>&1",
            binary("gatekey-agent").display(),
            core.grpc_address,
            dir.path().display(),
            log.display()
        );
        lab.spawn("gateway", "sh", &["-c", &command])
    };

    // With `--forwarding check` and forwarding off, the agent refuses to start, saying how.
    let refused_log = dir.path().join("refused.log");
    let mut refused = agent(&refused_log, "--forwarding check");
    let status = tokio::time::timeout(Duration::from_secs(20), refused.wait()).await.expect("the agent kept running");
    assert_eq!(status.unwrap().code(), Some(1), "{}", text(&refused_log));
    assert!(text(&refused_log).contains("IP forwarding is off"), "{}", text(&refused_log));
    assert_eq!(forwarding().await, "0");

    // By default it turns forwarding on; it runs OpenVPN itself, masquerading clients.
    let agent_log = dir.path().join("agent.log");
    let mut running = crate::netns::Graceful(agent(&agent_log, "--run-openvpn --nat"));
    assert!(wait_for_text(&agent_log, "started OpenVPN", Duration::from_secs(20)).await, "{}", text(&agent_log));
    assert!(wait_for_text(&agent_log, "attached to OpenVPN", Duration::from_secs(20)).await, "{}", text(&agent_log));
    assert_eq!(forwarding().await, "1");
    let (_client, client_log) = start_client(&lab, "client", dir.path(), "alice", &profile);
    assert!(wait_for_text(&client_log, CONNECTED, Duration::from_secs(20)).await, "{}", text(&agent_log));
    assert!(lab.reaches("client", LAN_HOST).await, "the LAN host is unreachable through NAT");
    assert!(gatekey_table(&lab).await.contains("masquerade"));

    // Someone deletes the table, then flushes it: the agent puts it back, in full.
    for (what, args) in [("deleted", ["delete", "table"]), ("flushed", ["flush", "table"])] {
        lab.exec("gateway", &["nft", args[0], args[1], "inet", "gatekey"]);
        assert!(
            eventually(Duration::from_secs(15), || async {
                let table = gatekey_table(&lab).await;
                table.contains("vmap @clients") && table.contains("jump client_") && table.contains("masquerade")
            })
            .await,
            "the {what} table was not repaired:\n{}",
            text(&agent_log)
        );
        assert!(lab.reaches("client", LAN_HOST).await, "the LAN host is unreachable after the {what} table's repair");
    }
    assert!(text(&agent_log).contains("changed behind the agent's back"), "{}", text(&agent_log));

    // Stopping the agent stops its OpenVPN.
    let pid = std::fs::read_to_string(dir.path().join("openvpn.pid")).unwrap().trim().to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "OpenVPN is not running");
    let status = crate::kit::terminate(&mut running.0).await;
    assert!(status.success(), "{status}: {}", text(&agent_log));
    assert!(
        eventually(Duration::from_secs(5), || async { !Path::new(&format!("/proc/{pid}")).exists() }).await,
        "OpenVPN outlived its agent"
    );

    // The token is rotated under a running agent: the core says so, and the agent stops
    // for good (exit 3, which the shipped systemd unit does not restart) instead of
    // retrying a dead token every 30 s.
    let rotated_log = dir.path().join("rotated.log");
    let mut rotated = crate::netns::Graceful(agent(&rotated_log, "--run-openvpn --nat"));
    assert!(wait_for_text(&rotated_log, "connected to the core", Duration::from_secs(20)).await);
    core.call(reqwest::Method::POST, &format!("/admin/gateways/{gateway_id}/rotate-token"), Some(&admin), None)
        .await
        .expect(StatusCode::OK);
    let exit = tokio::time::timeout(Duration::from_secs(20), rotated.0.wait()).await.expect("the agent kept running");
    assert_eq!(exit.unwrap().code(), Some(3), "{}", text(&rotated_log));
    assert!(text(&rotated_log).contains("rotated"), "{}", text(&rotated_log));
}
