//! The outside security review's findings beyond single sign-on, each attacked the way
//! the reviewers did: control characters in every identifier on every route and both
//! backends, forged cross-site requests riding the session cookie, forged log lines,
//! sessions that outlived a password, and secrets left in caches or readable files.

use crate::kit::{Backend, Core, Reply, backends};
use crate::rest_admin::id_of;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every (method, path template) of the served OpenAPI document.
async fn documented_operations(core: &Core) -> Vec<(Method, String)> {
    let document: Value =
        reqwest::get(format!("{}/api/v1/openapi.json", core.http_base)).await.unwrap().json().await.unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push((method.to_ascii_uppercase().parse().unwrap(), path.clone()));
        }
    }
    operations
}

/// The names of a path template's parameters (`/a/{id}/b/{user_id}` → `id`, `user_id`).
fn parameters(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// Sends `method path` with the admin's token and, for POST and PUT, an empty JSON body.
async fn send(core: &Core, method: Method, path: &str, token: &str) -> Reply {
    let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
    core.call(method, path, Some(token), body).await
}

#[track_caller]
fn assert_refused(reply: Reply, field: &str, what: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}: {}", reply.body);
    assert_eq!(reply.body["error"]["code"], "invalid_request", "{what}: {}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(field), "{what}: the message does not name `{field}`: {message}");
}

#[tokio::test]
async fn control_characters_are_refused_in_every_identifier_on_every_route_and_backend() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;

        // Every route with a path parameter, each parameter in turn: NUL, CR/LF, ESC.
        let operations = documented_operations(&core).await;
        let mut checked = 0;
        for (method, template) in &operations {
            for parameter in parameters(template) {
                for bad in ["a%00b", "a%0D%0Ab", "a%1Bb"] {
                    let path = parameters(template).iter().fold(template.clone(), |path, name| {
                        path.replace(&format!("{{{name}}}"), if *name == parameter { bad } else { "x" })
                    });
                    let path = path.strip_prefix("/api/v1").unwrap_or(&path).to_owned();
                    let what = format!("{method} {path} ({backend:?})");
                    assert_refused(send(&core, method.clone(), &path, &admin).await, &parameter, &what);
                    checked += 1;
                }
            }
        }
        assert!(checked >= 3 * 30, "only {checked} parameterised requests: the document lost its routes");

        // Ids in bodies.
        let gateway = core
            .post("/admin/gateways", &admin, json!({"name": "gw", "hostname": "vpn.example.com"}))
            .await
            .expect(StatusCode::CREATED);
        let (gateway_id, gateway_token) =
            (id_of(&gateway.body), gateway.body["data"]["token"].as_str().unwrap().to_owned());
        let nul = "a\u{0}b";
        for (path, body, field) in [
            ("/configs/generate".to_owned(), json!({"gateway_id": nul}), "gateway_id"),
            (format!("/admin/gateways/{gateway_id}/users"), json!({"user_id": nul}), "user_id"),
            (format!("/admin/gateways/{gateway_id}/networks"), json!({"network_id": nul}), "network_id"),
            (
                "/admin/access-rules".to_owned(),
                json!({"name": "r", "network_id": nul, "groups": ["g"], "destination_type": "cidr", "destination": "10.0.0.0/8"}),
                "network_id",
            ),
            ("/admin/geo-fence/check".to_owned(), json!({"user_id": nul, "address": "192.0.2.1"}), "user_id"),
            (
                "/admin/mesh/hubs".to_owned(),
                json!({"name": "hub", "hostname": "hub.example.com", "network_ids": [nul]}),
                "network_ids",
            ),
        ] {
            assert_refused(core.post(&path, &admin, body).await, field, &format!("POST {path} ({backend:?})"));
        }

        // Before authentication.
        let login = core.call(Method::POST, "/auth/local/login", None, Some(json!({"username": nul, "password": "x"})));
        assert_refused(login.await, "username", "a NUL login name");
        assert_refused(
            core.call(Method::GET, "/auth/oidc/login?provider=a%00b", None, None).await,
            "provider",
            "a NUL provider",
        );
        assert_refused(
            core.call(Method::GET, "/auth/saml/metadata/a%00b", None, None).await,
            "provider",
            "a NUL SAML provider",
        );
        // The NUL login attempt is on record, escaped.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(core.storage().1).await.unwrap();
        let recorded: Vec<String> =
            sqlx::query_scalar("SELECT subject FROM login_events WHERE success = 0").fetch_all(&pool).await.unwrap();
        assert!(recorded.iter().any(|subject| subject == "a\\u{0}b"), "{recorded:?}");

        // An agent's session report with NUL or CR/LF in its key stores nothing.
        for key in ["s\u{0}1", "s1\r\nforged"] {
            let reply = reqwest::Client::new()
                .post(format!("{}/api/v1/gateway/connect", core.http_base))
                .header("x-gateway-token", &gateway_token)
                .json(&json!({"session_key": key, "common_name": "alice@example.com", "serial": "", "vpn_address": "10.8.0.6"}))
                .send()
                .await
                .unwrap();
            assert_refused(Reply::from_response(reply).await, "session_key", "a session key with control characters");
        }
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vpn_sessions").fetch_one(&pool).await.unwrap();
        assert_eq!(stored, 0, "a refused report stored a session");
        pool.close().await;

        // Straight over gRPC too.
        let mut gateways =
            gatekey::v1::admin_gateway_service_client::AdminGatewayServiceClient::new(core.channel().await);
        let mut request = tonic::Request::new(gatekey::v1::DeleteGatewayRequest { id: nul.into() });
        request.metadata_mut().insert("authorization", format!("Bearer {admin}").parse().unwrap());
        let status = gateways.delete_gateway(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("id:"), "{status:?}");
        assert!(!core.log().contains("internal server error"), "{}", core.log());
    }
}

/// A session cookie for the admin.
async fn admin_cookie(core: &Core) -> String {
    format!("gatekey_session={}", core.admin_token().await)
}

#[tokio::test]
async fn changes_riding_the_session_cookie_must_prove_they_come_from_this_site() {
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    let cookie = admin_cookie(&core).await;
    let created = core
        .post("/admin/gateways", &admin, json!({"name": "gw", "hostname": "vpn.example.com"}))
        .await
        .expect(StatusCode::CREATED);
    let (id, token) = (id_of(&created.body), created.body["data"]["token"].as_str().unwrap().to_owned());
    let rotate = format!("{}/api/v1/admin/gateways/{id}/rotate-token", core.http_base);
    let client = reqwest::Client::new();

    // The session's CSRF token, as a page of this site gets it.
    let session = client.get(format!("{}/api/v1/auth/session", core.http_base)).header(COOKIE, &cookie).send().await;
    let session: serde_json::Value = session.unwrap().json().await.unwrap();
    let csrf = session["data"]["csrf_token"].as_str().unwrap().to_owned();
    let other_sessions_csrf = {
        let other = core.admin_token().await;
        let info = client.get(format!("{}/api/v1/auth/session", core.http_base)).bearer_auth(&other).send().await;
        info.unwrap().json::<serde_json::Value>().await.unwrap()["data"]["csrf_token"].as_str().unwrap().to_owned()
    };
    assert_ne!(csrf, other_sessions_csrf);

    // The reviewers' forged form post, and its variants: all refused, nothing rotated.
    let attempts = [
        ("a cross-site form", Some("application/x-www-form-urlencoded"), Some("https://evil.example"), None, None),
        ("a form without an origin", Some("application/x-www-form-urlencoded"), None, None, None),
        ("text/plain", Some("text/plain"), None, None, None),
        ("no content type", None, None, None, None),
        ("JSON without the token", Some("application/json"), None, None, None),
        ("JSON with another session's token", Some("application/json"), None, None, Some(other_sessions_csrf.as_str())),
        (
            "JSON with the token from another origin",
            Some("application/json"),
            Some("https://evil.example"),
            None,
            Some(csrf.as_str()),
        ),
        ("JSON with the token from a null origin", Some("application/json"), Some("null"), None, Some(csrf.as_str())),
        (
            "JSON with the token marked cross-site",
            Some("application/json"),
            None,
            Some("cross-site"),
            Some(csrf.as_str()),
        ),
    ];
    for (what, content_type, origin, fetch_site, token) in attempts {
        let mut request = client.post(&rotate).header(COOKIE, &cookie).body("a=b");
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        let reply = Reply::from_response(request.send().await.unwrap()).await;
        let message = reply.expect_error(StatusCode::FORBIDDEN, "csrf_rejected");
        assert!(message.contains("session cookie"), "{what}: {message}");
    }
    let heartbeat = client
        .post(format!("{}/api/v1/gateway/heartbeat", core.http_base))
        .header("x-gateway-token", &token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(heartbeat.status(), StatusCode::OK, "a refused request rotated the token");

    // The same site's request with the cookie and the session's token works; so does a
    // bearer token from anywhere.
    let same_site = client
        .post(&rotate)
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .header(ORIGIN, core.http_base.as_str())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_site.status(), StatusCode::OK);
    let bearer = client
        .post(&rotate)
        .bearer_auth(&admin)
        .header(ORIGIN, "https://evil.example")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK, "bearer tokens are not sent by browsers on their own");
    // Without --public-url, the request's own Host is the site: a page served as
    // `localhost` may change things with its cookie.
    let as_localhost = core.http_base.replace("127.0.0.1", "localhost");
    let same_host = client
        .post(format!("{as_localhost}/api/v1/admin/gateways/{id}/rotate-token"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .header(ORIGIN, as_localhost.as_str())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_host.status(), StatusCode::OK);
    // Reads with the cookie need no proof.
    let read = client.get(format!("{}/api/v1/admin/gateways", core.http_base)).header(COOKIE, &cookie).send().await;
    assert_eq!(read.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn answers_carrying_secrets_are_never_cached() {
    let core = Core::start(Backend::Sqlite).await;
    let login = core
        .call(
            Method::POST,
            "/auth/local/login",
            None,
            Some(json!({"username": "admin", "password": crate::kit::ADMIN_PASSWORD})),
        )
        .await;
    let admin = login.body["data"]["session_token"].as_str().unwrap().to_owned();
    let key = core.post("/api-keys", &admin, json!({"name": "k"})).await;
    let gateway = core.post("/admin/gateways", &admin, json!({"name": "gw", "hostname": "vpn.example.com"})).await;
    let (id, token) = (id_of(&gateway.body), gateway.body["data"]["token"].as_str().unwrap().to_owned());
    let rotated = core.call(Method::POST, &format!("/admin/gateways/{id}/rotate-token"), Some(&admin), None).await;
    let token = rotated.body["data"]["token"].as_str().map_or(token, str::to_owned);
    let provision = Reply::from_response(
        reqwest::Client::new()
            .post(format!("{}/api/v1/gateway/provision", core.http_base))
            .header("x-gateway-token", token)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let hub = core.post("/admin/mesh/hubs", &admin, json!({"name": "hub", "hostname": "hub.example.com"})).await;
    let refused = core.get("/admin/users/nope", "gks_wrong").await;
    for (what, reply) in [
        ("login", login),
        ("API key creation", key),
        ("gateway creation", gateway),
        ("token rotation", rotated),
        ("provisioning", provision),
        ("hub creation", hub),
        ("an error", refused),
    ] {
        assert!(reply.status.is_success() || what == "an error", "{what}: {}", reply.body);
        assert_eq!(reply.headers.get(CACHE_CONTROL).map(|v| v.to_str().unwrap()), Some("no-store"), "{what}");
    }
}

#[tokio::test]
async fn a_new_password_ends_other_sessions_and_disabling_revokes_api_keys_for_good() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;
        let (alice_id, alice_session) = core.create_user(&admin, "alice", &[]).await;
        let second_session = core.login("alice", crate::kit::USER_PASSWORD).await;
        let key = core.post("/api-keys", &alice_session, json!({"name": "laptop"})).await.expect(StatusCode::CREATED);
        let alice_key = key.body["data"]["secret"].as_str().unwrap().to_owned();

        // An admin resets alice's password: her sessions end; her API key stays (README).
        core.put(&format!("/admin/users/{alice_id}"), &admin, json!({"password": "a-brand-new-password"}))
            .await
            .expect(StatusCode::OK);
        for session in [&alice_session, &second_session] {
            core.get("/auth/session", session).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        core.get("/auth/session", &alice_key).await.expect(StatusCode::OK);
        let fresh = core.login("alice", "a-brand-new-password").await;

        // An admin changing their own password keeps the session it was changed from only.
        let admin_elsewhere = core.admin_token().await;
        let admin_id = core.get("/auth/session", &admin).await.body["data"]["user"]["id"].as_str().unwrap().to_owned();
        core.put(&format!("/admin/users/{admin_id}"), &admin, json!({"password": "another-admin-password"}))
            .await
            .expect(StatusCode::OK);
        core.get("/auth/session", &admin).await.expect(StatusCode::OK);
        core.get("/auth/session", &admin_elsewhere).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

        // Disabling ends sessions and revokes API keys; enabling brings back neither.
        core.put(&format!("/admin/users/{alice_id}"), &admin, json!({"disabled": true})).await.expect(StatusCode::OK);
        core.put(&format!("/admin/users/{alice_id}"), &admin, json!({"disabled": false})).await.expect(StatusCode::OK);
        core.get("/auth/session", &fresh).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let message =
            core.get("/auth/session", &alice_key).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(message.contains("revoked"), "{message}");
        let again = core.login("alice", "a-brand-new-password").await;
        let keys = core.get("/api-keys", &again).await.expect(StatusCode::OK);
        assert!(keys.body["data"][0]["revoked_at"].is_string(), "{}", keys.body);
    }
}

#[tokio::test]
async fn api_keys_per_user_are_capped() {
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    let (_, alice) = core.create_user(&admin, "alice", &[]).await;
    let mut first = String::new();
    for n in 0..50 {
        let reply = core.post("/api-keys", &alice, json!({"name": format!("k{n}")})).await.expect(StatusCode::CREATED);
        if n == 0 {
            first = id_of(&reply.body);
        }
    }
    let message =
        core.post("/api-keys", &alice, json!({"name": "k50"})).await.expect_error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("50"), "{message}");
    core.delete(&format!("/api-keys/{first}"), &alice).await.expect(StatusCode::OK);
    core.post("/api-keys", &alice, json!({"name": "k50"})).await.expect(StatusCode::CREATED);
}

#[tokio::test]
async fn a_login_name_cannot_forge_log_lines() {
    let core = Core::start(Backend::Sqlite).await;
    let forged = "x\n2026-11-29T10:00:00.000000Z  INFO login provider=local subject=admin\u{1b}[2K";
    // Refused as bad input (control characters), and also a plain wrong login.
    core.call(Method::POST, "/auth/local/login", None, Some(json!({"username": forged, "password": "whatever"})))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    let spaced = "admin INFO login subject=admin";
    core.call(Method::POST, "/auth/local/login", None, Some(json!({"username": spaced, "password": "whatever"})))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = core.log();
    assert!(log.contains("login refused"), "{log}");
    assert!(!log.contains('\u{1b}'), "a raw ESC reached the log");
    assert!(!log.lines().any(|line| line.starts_with("2026-11-29T10:00:00")), "a forged line: {log}");
    assert!(log.contains("\\n2026-11-29T10:00:00"), "the newline is not shown escaped: {log}");
    assert!(log.contains("subject=\"admin INFO login subject=admin\""), "the value is not quoted: {log}");
    // Refused requests are the caller's business: nothing about them is an error.
    assert!(!log.contains("ERROR"), "a refusal was logged as an error: {log}");
}

/// A value an agent chose, logged through a plain (Display) field, cannot forge a line
/// either: the log formatter escapes every field.
#[tokio::test]
async fn an_agent_cannot_forge_log_lines_through_its_hello() {
    use crate::agents::SimulatedAgent;
    use gatekey::v1::Hello;
    use gatekey::v1::agent_message::Body as AgentBody;
    let data = crate::kit::TempDir::new("core");
    let url = crate::kit::fresh_database_url(Backend::Sqlite, data.path()).await;
    let mut command = Core::command(data.path(), &url, &[]);
    command.env("RUST_LOG", "info");
    let core = Core::launch_command(command, data, url).await;
    let admin = core.admin_token().await;
    let gateway = core.post("/admin/gateways", &admin, json!({"name": "gw", "hostname": "vpn.example.com"})).await;
    let token = gateway.body["data"]["token"].as_str().unwrap().to_owned();
    let forged = "1.0\n2026-11-29T10:00:00.000000Z  INFO gatekey_core: admin signed in\u{1b}[2K\u{2028}x";
    let hello = AgentBody::Hello(Hello { agent_version: forged.into(), ..Default::default() });
    let _agent = SimulatedAgent::open(&core, &token, hello).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = core.log();
    assert!(log.contains("agent connected"), "{log}");
    assert!(!log.lines().any(|line| line.starts_with("2026-11-29T10:00:00")), "a forged line: {log}");
    assert!(!log.contains('\u{1b}') && !log.contains('\u{2028}'), "raw control characters reached the log");
    assert!(log.contains("1.0\\n2026-11-29T10:00:00"), "the newline is not shown escaped: {log}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = crate::kit::TempDir::new("private");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let url = crate::kit::fresh_database_url(Backend::Sqlite, data.path()).await;
    let core = Core::launch_command(Core::command(data.path(), &url, &[]), data, url).await;
    core.admin_token().await; // a write, so the WAL exists
    let (dir, _) = core.storage();
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700, "data directory");
    for file in ["gatekey.db", "gatekey.db-wal", "gatekey.db-shm", "secret.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn a_link_on_another_site_cannot_spend_a_profile_download() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = crate::agents::fleet(&core, 1, 1).await;
    let generated = core
        .post("/configs/generate", &fleet.alice, json!({"gateway_id": fleet.gateways[0].0}))
        .await
        .expect(StatusCode::CREATED);
    let url = format!("{}{}", core.http_base, generated.body["download_url"].as_str().unwrap());
    let cookie = format!("gatekey_session={}", fleet.alice);
    let client = reqwest::Client::new();
    for (what, site, origin) in [
        ("a cross-site navigation", Some("cross-site"), None),
        ("a request from another origin", None, Some("https://evil.example")),
    ] {
        let mut request = client.get(&url).header(COOKIE, &cookie);
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let reply = Reply::from_response(request.send().await.unwrap()).await;
        let message = reply.expect_error(StatusCode::FORBIDDEN, "csrf_rejected");
        assert!(message.contains("download"), "{what}: {message}");
    }
    // The profile is still there for the link on this site (and a bearer token).
    let own = client.get(&url).header(COOKIE, &cookie).header("sec-fetch-site", "same-origin").send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert!(own.text().await.unwrap().contains("BEGIN CERTIFICATE"));
}
