//! The embedded CA and VPN configs: generation, one-time download, revocation and
//! the CRL, checked with independent tools (openssl, a stock OpenVPN 2.6).

use crate::kit::{Backend, Core, TempDir, backends};
use crate::netns::{Lab, available, wait_for_text};
use gatekey::v1::ProvisionRequest;
use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// An admin, a user granted one gateway with one network, and that gateway's token.
struct Fixture {
    admin: String,
    alice_id: String,
    alice: String,
    gateway_id: String,
    gateway_token: String,
}

async fn fixture(core: &Core, hostname: &str) -> Fixture {
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &[]).await;
    let created = core
        .post("/admin/gateways", &admin, json!({"name": "lab-gw", "hostname": hostname, "vpn_subnet": "10.78.0.0/24"}))
        .await
        .expect(StatusCode::CREATED);
    let gateway_id = created.body["data"]["id"].as_str().unwrap().to_owned();
    let gateway_token = created.body["data"]["token"].as_str().unwrap().to_owned();
    let network = core.post("/admin/networks", &admin, json!({"name": "lab", "cidrs": ["10.79.0.0/24"]})).await;
    let network_id = network.body["data"]["id"].as_str().unwrap();
    core.post(&format!("/admin/gateways/{gateway_id}/networks"), &admin, json!({"network_id": network_id}))
        .await
        .expect(StatusCode::OK);
    core.post(&format!("/admin/gateways/{gateway_id}/users"), &admin, json!({"user_id": alice_id}))
        .await
        .expect(StatusCode::OK);
    // A rule in the network is what puts its route into alice's profile.
    core.post(
        "/admin/access-rules",
        &admin,
        json!({"name": "lab-any", "network_id": network_id, "user_ids": [alice_id], "destination_type": "cidr",
               "destination": "10.79.0.0/24"}),
    )
    .await
    .expect(StatusCode::CREATED);
    Fixture { admin, alice_id, alice, gateway_id, gateway_token }
}

async fn generate(core: &Core, token: &str, gateway_id: &str) -> Value {
    core.post("/configs/generate", token, json!({"gateway_id": gateway_id, "protocol": "openvpn"}))
        .await
        .expect(StatusCode::CREATED)
        .body
}

/// Downloads a config's `.ovpn` text.
async fn download(core: &Core, token: &str, config_id: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/configs/download/{config_id}", core.http_base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-openvpn-profile");
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"gatekey-lab-gw.ovpn\"");
    response.text().await.unwrap()
}

/// The body of `<tag>…</tag>` in a profile.
fn inline_block(profile: &str, tag: &str) -> String {
    let start = profile.find(&format!("<{tag}>\n")).unwrap() + tag.len() + 3;
    let end = profile.find(&format!("</{tag}>")).unwrap();
    profile[start..end].to_owned()
}

async fn openssl(args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new("openssl").args(args).output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn configs_are_generated_downloaded_once_and_verified_by_openssl_until_revoked() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let fx = fixture(&core, "vpn.example.com").await;
        let generated = generate(&core, &fx.alice, &fx.gateway_id).await;
        let config_id = generated["config_id"].as_str().unwrap().to_owned();
        assert!(config_id.starts_with("cfg-"));
        assert_eq!(generated["download_url"], format!("/api/v1/configs/download/{config_id}"));
        assert_eq!(generated["data"]["config_id"], config_id, "also inside the seed's envelope");
        let expires_at = generated["expires_at"].as_str().unwrap();
        let expires = time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339).unwrap();
        let lifetime = expires - time::OffsetDateTime::now_utc();
        assert!(lifetime > time::Duration::hours(23) && lifetime <= time::Duration::hours(24), "{lifetime}");

        let profile = download(&core, &fx.alice, &config_id).await;
        for line in [
            "client",
            "remote vpn.example.com 1194",
            "proto udp",
            "remote-cert-tls server",
            "verify-x509-name vpn.example.com name",
        ] {
            assert!(profile.lines().any(|l| l == line), "missing `{line}` in:\n{profile}");
        }
        assert!(profile.contains("data-ciphers AES-256-GCM"));
        assert!(!profile.lines().any(|l| l.starts_with("route")), "routes are the gateway's to push:\n{profile}");
        core.get(&format!("/configs/download/{config_id}"), &fx.alice)
            .await
            .expect_error(StatusCode::GONE, "config_purged");

        let dir = TempDir::new("pki");
        let ca = write(dir.path(), "ca.pem", inline_block(&profile, "ca"));
        let cert = write(dir.path(), "cert.pem", inline_block(&profile, "cert"));
        let key = write(dir.path(), "key.pem", inline_block(&profile, "key"));
        let (ok, text) = openssl(&["verify", "-CAfile", &ca, &cert]).await;
        assert!(ok, "openssl verify failed: {text}");
        let (_, text) = openssl(&["x509", "-in", &cert, "-noout", "-text"]).await;
        assert!(text.contains("CN = alice@example.com") || text.contains("CN=alice@example.com"), "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
        let (ok, text) = openssl(&["pkey", "-in", &key, "-noout", "-check"]).await;
        assert!(ok, "key check failed: {text}");

        // The ledger lists it; the serial is checkable.
        let configs = core.get("/admin/configs", &fx.admin).await.expect(StatusCode::OK);
        assert_eq!(configs.body["meta"]["total"], 1);
        let entry = &configs.body["data"][0];
        assert_eq!(
            (entry["user_email"].as_str(), entry["revoked"].as_bool()),
            (Some("alice@example.com"), Some(false))
        );
        assert!(entry["downloaded_at"].is_string());
        let serial = entry["serial"].as_str().unwrap().to_owned();
        let (_, openssl_serial) = openssl(&["x509", "-in", &cert, "-noout", "-serial"]).await;
        let openssl_serial = openssl_serial.trim().trim_start_matches("serial=");
        assert_eq!(openssl_serial.trim_start_matches('0').to_ascii_lowercase(), serial);
        let check =
            core.call(Method::GET, &format!("/pki/check/{openssl_serial}"), None, None).await.expect(StatusCode::OK);
        assert_eq!(check.body["data"]["revoked"], false);

        // Revoke with the serial spelled as OpenVPN prints it (colon-separated, upper case).
        let colon_serial = pairs_with_colons(openssl_serial);
        let revoked = core
            .post("/admin/pki/revoke", &fx.admin, json!({"serial": colon_serial, "reason": "key_compromise"}))
            .await
            .expect(StatusCode::OK);
        assert_eq!(revoked.body["data"]["revoked"], true);
        assert_eq!(revoked.body["data"]["reason"], "key_compromise");
        let again = core.post("/admin/pki/revoke", &fx.admin, json!({"serial": serial, "reason": "superseded"})).await;
        assert_eq!(
            again.expect(StatusCode::OK).body["data"]["reason"],
            "key_compromise",
            "revoking twice changes nothing"
        );
        let check = core.call(Method::GET, &format!("/pki/check/{serial}"), None, None).await.expect(StatusCode::OK);
        assert_eq!(check.body["data"]["revoked"], true);
        assert!(core.get("/admin/configs", &fx.admin).await.body["data"][0]["revoked"].as_bool().unwrap());

        // The CRL, fetched over REST in both encodings, is read by openssl.
        let client = reqwest::Client::new();
        let der = client.get(format!("{}/api/v1/pki/crl", core.http_base)).send().await.unwrap();
        assert_eq!(der.headers()["content-type"], "application/pkix-crl");
        let der_path = write(dir.path(), "crl.der", der.bytes().await.unwrap());
        let (ok, text) = openssl(&["crl", "-inform", "DER", "-in", &der_path, "-noout", "-text"]).await;
        assert!(ok, "{text}");
        assert!(
            text.to_ascii_lowercase().contains(&openssl_serial.to_ascii_lowercase()),
            "serial missing from CRL:\n{text}"
        );
        assert!(text.contains("Key Compromise"), "{text}");
        assert!(text.contains("X509v3 CRL Number"), "{text}");
        let pem =
            client.get(format!("{}/api/v1/pki/crl.pem", core.http_base)).send().await.unwrap().text().await.unwrap();
        let pem_path = write(dir.path(), "crl.pem", pem);
        let (ok, text) = openssl(&["verify", "-crl_check", "-CAfile", &ca, "-CRLfile", &pem_path, &cert]).await;
        assert!(!ok && text.contains("certificate revoked"), "revoked certificate still verifies: {text}");
    }
}

fn pairs_with_colons(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test]
async fn config_access_and_bad_input_are_refused_without_side_effects() {
    let core = Core::start(Backend::Sqlite).await;
    let fx = fixture(&core, "vpn.example.com").await;
    let (_, bob) = core.create_user(&fx.admin, "bob", &[]).await;

    core.post("/configs/generate", &bob, json!({"gateway_id": fx.gateway_id}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    core.post("/configs/generate", &fx.alice, json!({"gateway_id": "gw-unknown"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let message = core
        .post("/configs/generate", &fx.alice, json!({"gateway_id": fx.gateway_id, "protocol": "wireguard"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(message.contains("openvpn"), "{message}");
    core.call(Method::POST, "/configs/generate", None, Some(json!({"gateway_id": fx.gateway_id})))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(core.get("/admin/configs", &fx.admin).await.body["meta"]["total"], 0, "refusals issued nothing");

    let config_id = generate(&core, &fx.alice, &fx.gateway_id).await["config_id"].as_str().unwrap().to_owned();
    core.get(&format!("/configs/download/{config_id}"), &bob).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
    core.call(Method::GET, &format!("/configs/download/{config_id}"), None, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    core.get("/configs/download/cfg-missing", &fx.alice).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    // The download hands out a private key and consumes the config: a read-only key may not.
    let read_only = core.post("/api-keys", &fx.alice, json!({"name": "reader", "scopes": ["read"]})).await;
    let read_only = read_only.expect(StatusCode::CREATED).body["data"]["secret"].as_str().unwrap().to_owned();
    core.get(&format!("/configs/download/{config_id}"), &read_only)
        .await
        .expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    // Refused downloads did not consume it.
    download(&core, &fx.alice, &config_id).await;
    assert_eq!(core.get("/configs", &fx.alice).await.body["meta"]["total"], 1);
    assert_eq!(core.get("/configs", &bob).await.body["meta"]["total"], 0);

    // Deactivating the gateway stops issuance.
    core.put(&format!("/admin/gateways/{}", fx.gateway_id), &fx.admin, json!({"is_active": false}))
        .await
        .expect(StatusCode::OK);
    core.post("/configs/generate", &fx.alice, json!({"gateway_id": fx.gateway_id}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");

    // Serials: malformed, unknown, and revocation by a non-admin.
    for bad in ["zz-top", "12345678901234567890123456789012345678901"] {
        core.call(Method::GET, &format!("/pki/check/{bad}"), None, None)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    core.call(Method::GET, "/pki/check/abcdef", None, None).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    let serial = core.get("/admin/configs", &fx.admin).await.body["data"][0]["serial"].as_str().unwrap().to_owned();
    core.post("/admin/pki/revoke", &fx.alice, json!({"serial": serial}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    core.post("/admin/pki/revoke", &fx.admin, json!({"serial": "abcdef"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    core.post("/admin/pki/revoke", &fx.admin, json!({"serial": serial, "reason": "because"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    let check = core.call(Method::GET, &format!("/pki/check/{serial}"), None, None).await;
    assert_eq!(check.body["data"]["revoked"], false, "refused revocations changed nothing");
}

#[tokio::test]
async fn undownloaded_configs_expire_from_the_store_and_revoked_ones_are_gone() {
    let core = Core::start_with(Backend::Sqlite, &["--config-download-window-seconds", "10"]).await;
    let fx = fixture(&core, "vpn.example.com").await;
    let first = generate(&core, &fx.alice, &fx.gateway_id).await["config_id"].as_str().unwrap().to_owned();
    let second = generate(&core, &fx.alice, &fx.gateway_id).await["config_id"].as_str().unwrap().to_owned();
    let serial = core.get("/admin/configs", &fx.admin).await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == second)
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    core.post("/admin/pki/revoke", &fx.admin, json!({"serial": serial})).await.expect(StatusCode::OK);
    core.get(&format!("/configs/download/{second}"), &fx.alice).await.expect_error(StatusCode::GONE, "config_revoked");
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    core.get(&format!("/configs/download/{first}"), &fx.alice).await.expect_error(StatusCode::GONE, "config_purged");
}

/// Configs issued at once are stored in group commits. The test holds the database's
/// write lock while sixteen requests arrive, so that they queue into few batches; the
/// database refuses the configs of one gateway (a trigger), and only those requests fail:
/// the batch is retried one config at a time and every other config is stored once.
#[tokio::test]
async fn configs_issued_at_once_are_stored_together_and_refused_one_by_one() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let fx = fixture(&core, "vpn.example.com").await;
        let created = core
            .post("/admin/gateways", &fx.admin, json!({"name": "refused-gw", "hostname": "vpn2.example.com"}))
            .await
            .expect(StatusCode::CREATED);
        let refused_id = created.body["data"]["id"].as_str().unwrap().to_owned();
        core.post(&format!("/admin/gateways/{refused_id}/users"), &fx.admin, json!({"user_id": fx.alice_id}))
            .await
            .expect(StatusCode::OK);
        // A config at each gateway first: their tls-crypt keys are made (and stored) once.
        let mut stored = std::collections::HashSet::new();
        for gateway_id in [&fx.gateway_id, &refused_id] {
            stored.insert(generate(&core, &fx.alice, gateway_id).await["config_id"].as_str().unwrap().to_owned());
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(core.storage().1).await.unwrap();
        let refusal: &[&str] = match backend {
            Backend::Sqlite => &["CREATE TRIGGER refuse_config BEFORE INSERT ON vpn_configs \
                 WHEN NEW.gateway_name = 'refused-gw' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
            Backend::Postgres => &[
                "CREATE FUNCTION refuse_config() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
                "CREATE TRIGGER refuse_config BEFORE INSERT ON vpn_configs FOR EACH ROW \
                 WHEN (NEW.gateway_name = 'refused-gw') EXECUTE FUNCTION refuse_config()",
            ],
        };
        for statement in refusal {
            sqlx::query(sqlx::AssertSqlSafe(*statement)).execute(&pool).await.unwrap();
        }

        // The write lock, held while the requests arrive.
        let mut holder = pool.acquire().await.unwrap();
        let lock = match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN; LOCK TABLE vpn_configs IN EXCLUSIVE MODE",
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(lock)).execute(&mut *holder).await.unwrap();
        let requests: Vec<_> = (0..16)
            .map(|i| {
                let gateway_id = if i % 4 == 3 { refused_id.clone() } else { fx.gateway_id.clone() };
                let (http_base, alice) = (core.http_base.clone(), fx.alice.clone());
                tokio::spawn(async move {
                    let response = reqwest::Client::new()
                        .post(format!("{http_base}/api/v1/configs/generate"))
                        .bearer_auth(alice)
                        .json(&json!({"gateway_id": gateway_id}))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    (gateway_id, status, response.json::<Value>().await.unwrap())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        sqlx::raw_sql("COMMIT").execute(&mut *holder).await.unwrap();
        drop(holder);

        let mut answered = Vec::new();
        for request in requests {
            let (gateway_id, status, body) = request.await.unwrap();
            if gateway_id == refused_id {
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{backend:?}: {body}");
            } else {
                assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
                let config_id = body["config_id"].as_str().unwrap().to_owned();
                assert!(stored.insert(config_id.clone()), "a config id given twice");
                answered.push(config_id);
            }
        }
        assert_eq!(stored.len(), 14);
        let listed = core.get("/configs?per_page=100", &fx.alice).await.body;
        assert_eq!(listed["meta"]["total"], 14, "{backend:?}: only the configs answered 201 were stored");
        for config in listed["data"].as_array().unwrap() {
            assert!(stored.contains(config["id"].as_str().unwrap()), "{config}");
        }
        let first = &answered[0];
        download(&core, &fx.alice, first).await;
        core.get(&format!("/configs/download/{first}"), &fx.alice)
            .await
            .expect_error(StatusCode::GONE, "config_purged");

        // Every config went through a group commit, and the sixteen queued took at most
        // half as many (one per config without batching).
        let metrics = reqwest::get(format!("{}/metrics", core.http_base)).await.unwrap().text().await.unwrap();
        let figure = |name: &str| -> f64 {
            let line = metrics.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("{name}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(figure("gatekey_config_commit_batch_configs_sum"), 18.0, "{backend:?}");
        let commits = figure("gatekey_config_commit_batch_configs_count") - 2.0;
        assert!(commits <= 8.0, "{backend:?}: the queued configs were committed in {commits} batches");
    }
}

#[tokio::test]
async fn short_lived_certificates_expire() {
    let core = Core::start_with(Backend::Sqlite, &["--client-cert-ttl-seconds", "300"]).await;
    let fx = fixture(&core, "vpn.example.com").await;
    let generated = generate(&core, &fx.alice, &fx.gateway_id).await;
    let expires = time::OffsetDateTime::parse(
        generated["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((290..=300).contains(&lifetime), "{lifetime}");
}

#[tokio::test]
async fn the_ca_key_and_configs_are_sealed_at_rest_and_the_ca_survives_a_restart() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let fx = fixture(&core, "vpn.example.com").await;
        let config_id = generate(&core, &fx.alice, &fx.gateway_id).await["config_id"].as_str().unwrap().to_owned();
        let dump = core.dump_database().await;
        assert!(dump.contains("BEGIN CERTIFICATE"), "the dump reads the tables");
        assert!(
            !dump.contains("PRIVATE KEY") && !dump.contains("OpenVPN Static key"),
            "a secret is stored in plaintext"
        );
        let ca_before = inline_block(&download(&core, &fx.alice, &config_id).await, "ca");

        // The same CA signs after a restart; configs issued before still verify.
        let core = core.restart().await;
        let alice = core.login("alice", crate::kit::USER_PASSWORD).await;
        let config_id = generate(&core, &alice, &fx.gateway_id).await["config_id"].as_str().unwrap().to_owned();
        assert_eq!(inline_block(&download(&core, &alice, &config_id).await, "ca"), ca_before);

        // A node with another at-rest key refuses to start rather than mint a second CA.
        let (data_dir, database_url) = core.storage();
        let output = Core::command(data_dir, database_url, &[])
            .env("GATEKEY_SECRET_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .stderr(std::process::Stdio::piped())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("GATEKEY_SECRET_KEY"), "{stderr}");
    }
}

#[tokio::test]
async fn a_stock_openvpn_client_connects_with_a_generated_profile_until_revoked() {
    if !available(&["openvpn", "ip", "ping"]) {
        return;
    }
    let mut lab = Lab::create("pki", &["gateway", "client"]);
    lab.link(Some("gateway"), "10.77.0.1/24", "client", "10.77.0.2/24");
    let core = Core::start(Backend::Sqlite).await;
    let fx = fixture(&core, "10.77.0.1").await;

    // The gateway side, as an agent would provision it.
    let mut request = tonic::Request::new(ProvisionRequest {});
    request.metadata_mut().insert("x-gateway-token", fx.gateway_token.parse().unwrap());
    let material = GatewayAgentServiceClient::new(core.channel().await).provision(request).await.unwrap().into_inner();
    assert_eq!(material.vpn_subnet, "10.78.0.0/24");
    let dir = TempDir::new("ovpn");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    write(dir.path(), "ca.pem", &material.ca_certificate_pem);
    write(dir.path(), "server.pem", &material.server_certificate_pem);
    write(dir.path(), "server.key", &material.server_private_key_pem);
    write(dir.path(), "tls-crypt.key", &material.tls_crypt_key);
    write(dir.path(), "crl.pem", &material.crl_pem);
    let server_conf = format!(
        "dev tun\nproto udp\nlocal {local}\nport {port}\ntopology subnet\nserver 10.78.0.0 255.255.255.0\n\
         ca {ca}\ncert {cert}\nkey {key}\ntls-crypt {tc}\ncrl-verify {crl}\ndh none\ndisable-dco\n\
         data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\ntls-version-min 1.2\nkeepalive 10 60\nverb 3\nlog {log}\n",
        local = "10.77.0.1",
        port = material.port,
        ca = path("ca.pem"),
        cert = path("server.pem"),
        key = path("server.key"),
        tc = path("tls-crypt.key"),
        crl = path("crl.pem"),
        log = path("server.log"),
    );
    write(dir.path(), "server.conf", server_conf);
    let _server = lab.spawn("gateway", "openvpn", &["--config", &path("server.conf")]);
    assert!(
        wait_for_text(Path::new(&path("server.log")), "Initialization Sequence Completed", Duration::from_secs(15))
            .await
    );

    let config_id = generate(&core, &fx.alice, &fx.gateway_id).await["config_id"].as_str().unwrap().to_owned();
    write(dir.path(), "alice.ovpn", download(&core, &fx.alice, &config_id).await);
    let client_args = ["--config", &path("alice.ovpn"), "--disable-dco", "--log", &path("client.log")];
    let client = lab.spawn("client", "openvpn", &client_args);
    assert!(
        wait_for_text(Path::new(&path("client.log")), "Initialization Sequence Completed", Duration::from_secs(20))
            .await,
        "client did not connect:\n{}",
        std::fs::read_to_string(path("client.log")).unwrap_or_default()
    );
    assert!(lab.reaches("client", "10.78.0.1").await, "no traffic through the tunnel");
    drop(client);

    // Revoke, hand the gateway the new CRL (the agent's job), and reconnect: refused.
    let serial = core.get("/admin/configs", &fx.admin).await.body["data"][0]["serial"].as_str().unwrap().to_owned();
    core.post("/admin/pki/revoke", &fx.admin, json!({"serial": serial, "reason": "key_compromise"}))
        .await
        .expect(StatusCode::OK);
    let crl_text = reqwest::get(format!("{}/api/v1/pki/crl.pem", core.http_base)).await.unwrap().text().await.unwrap();
    // Replace the file atomically, as a gateway must: OpenVPN re-reads it on every handshake.
    write(dir.path(), "crl.pem.new", crl_text);
    std::fs::rename(path("crl.pem.new"), path("crl.pem")).unwrap();
    let _client = lab.spawn(
        "client",
        "openvpn",
        &["--config", &path("alice.ovpn"), "--disable-dco", "--log", &path("client2.log")],
    );
    assert!(
        wait_for_text(
            Path::new(&path("server.log")),
            "error=certificate revoked: CN=alice@example.com",
            Duration::from_secs(15)
        )
        .await,
        "the server accepted a revoked certificate:\n{}",
        std::fs::read_to_string(path("server.log")).unwrap_or_default()
    );
}
