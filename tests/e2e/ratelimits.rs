//! The API overview's rate limits, each hit and recovered from, over REST and gRPC.

use crate::kit::{Backend, Core, Reply};
use gatekey::v1::HeartbeatRequest;
use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

/// Every limit at 60 a minute: a burst of 60, then one more each second.
const LIMITS: [&str; 8] = [
    "--auth-rate-limit-per-minute",
    "60",
    "--heartbeat-rate-limit-per-minute",
    "60",
    "--config-rate-limit-per-minute",
    "60",
    "--admin-rate-limit-per-minute",
    "60",
];

/// Sends `request` until it is limited (at most `burst + 5` times); returns the 429.
async fn exhaust<F, Fut>(burst: usize, mut request: F) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    for attempt in 0..burst + 5 {
        let reply = request().await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(attempt >= burst, "limited after only {attempt} requests");
            return reply;
        }
    }
    panic!("never limited");
}

/// Checks the 429's shape and waits out its `Retry-After`.
async fn limited_then_wait(reply: Reply) {
    let header = |name: &str| reply.headers[name].to_str().unwrap().parse::<u64>().unwrap();
    let retry_after = header("retry-after");
    assert!((1..=60).contains(&retry_after));
    assert_eq!(header("x-ratelimit-limit"), 60);
    assert_eq!(header("x-ratelimit-remaining"), 0);
    assert_eq!(header("x-ratelimit-reset"), retry_after);
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
}

#[tokio::test]
async fn every_limit_class_is_enforced_and_recovers() {
    let core = Core::start_with(Backend::Sqlite, &LIMITS).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &[]).await;
    let ops = {
        core.post(
            "/admin/users",
            &admin,
            json!({"username": "ops", "email": "ops@example.com", "password": "ops-password-12", "is_admin": true}),
        )
        .await
        .expect(StatusCode::CREATED);
        core.login("ops", "ops-password-12").await
    };
    let gateway = core.post("/admin/gateways", &admin, json!({"name": "g", "hostname": "g.example.com"})).await;
    let (gateway_id, token) = (
        gateway.body["data"]["id"].as_str().unwrap().to_owned(),
        gateway.body["data"]["token"].as_str().unwrap().to_owned(),
    );
    core.post(&format!("/admin/gateways/{gateway_id}/users"), &admin, json!({"user_id": alice_id}))
        .await
        .expect(StatusCode::OK);

    // Admin operations, per user: ops is limited, admin is not.
    limited_then_wait(exhaust(60, || core.get("/admin/users", &ops)).await).await;
    core.get("/admin/users", &ops).await.expect(StatusCode::OK);
    core.get("/admin/users", &admin).await.expect(StatusCode::OK);

    // Config generation, per user.
    let generate = || core.post("/configs/generate", &alice, json!({"gateway_id": gateway_id}));
    limited_then_wait(exhaust(60, generate).await).await;
    generate().await.expect(StatusCode::CREATED);

    // Heartbeats, per gateway, over REST; the gRPC door answers RESOURCE_EXHAUSTED.
    let client = reqwest::Client::new();
    let heartbeat = || {
        let request = client
            .post(format!("{}/api/v1/gateway/heartbeat", core.http_base))
            .header("X-Gateway-Token", &token)
            .json(&json!({}));
        async move { crate::kit::Reply::from_response(request.send().await.unwrap()).await }
    };
    let limited = exhaust(60, heartbeat).await;
    let mut request = tonic::Request::new(HeartbeatRequest::default());
    request.metadata_mut().insert("x-gateway-token", token.parse().unwrap());
    let status = GatewayAgentServiceClient::new(core.channel().await).heartbeat(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status.metadata().get("x-gatekey-error-code").unwrap(), "rate_limited");
    assert!(status.metadata().get("retry-after").is_some());
    limited_then_wait(limited).await;
    assert_eq!(heartbeat().await.status, StatusCode::OK);

    // Sign-in attempts, per client address.
    let login = || {
        core.call(
            Method::POST,
            "/auth/local/login",
            None,
            Some(json!({"username": "ops", "password": "wrong-password-1"})),
        )
    };
    limited_then_wait(exhaust(60, login).await).await;
    core.login("ops", "ops-password-12").await;
}

#[tokio::test]
async fn limits_can_be_turned_off() {
    let core = Core::start_with(Backend::Sqlite, &["--admin-rate-limit-per-minute", "5", "--no-rate-limits"]).await;
    let admin = core.admin_token().await;
    for _ in 0..20 {
        core.get("/admin/users", &admin).await.expect(StatusCode::OK);
    }
}

/// Behind a reverse proxy, the sign-in limit is per client, not per proxy: the
/// standalone facade resolves the client address at its HTTP edge (`X-Forwarded-For`
/// from its `--trusted-proxies`) and the core believes it because the facade presents
/// the key they share. IPv6 clients count per /64. Anything else reaching the gRPC port
/// is judged by its own address, whatever address it claims.
#[tokio::test]
async fn the_sign_in_limit_counts_clients_behind_a_trusted_proxy() {
    use crate::kit::{binary, ready_line};
    const KEY: &str = "facade-key-for-tests-0123456789abcdef";
    let data = crate::kit::TempDir::new("core");
    let url = crate::kit::fresh_database_url(Backend::Sqlite, data.path()).await;
    let mut command = Core::command(data.path(), &url, &["--no-http", "--auth-rate-limit-per-minute", "3"]);
    command.env("GATEKEY_FACADE_KEY", KEY);
    let core = Core::launch_command(command, data, url).await;
    let mut facade = tokio::process::Command::new(binary("gatekey-rest"))
        .args(["--core", &format!("http://{}", core.grpc_address), "--listen", "127.0.0.1:0"])
        .args(["--trusted-proxies", "127.0.0.1/32"])
        .env("GATEKEY_FACADE_KEY", KEY)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = ready_line(&mut facade, "gatekey-rest ready").await;
    let http = ready.split_whitespace().find_map(|p| p.strip_prefix("http=")).unwrap().to_owned();
    let client = reqwest::Client::new();
    let login_from = |forwarded: &'static str| {
        client
            .post(format!("http://{http}/api/v1/auth/local/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "admin", "password": "not-the-password"}))
            .send()
    };
    for (client_address, neighbour) in
        [("203.0.113.1, 198.51.100.7", "198.51.100.8"), ("2001:db8:1:2::1", "2001:db8:1:3::1")]
    {
        for _ in 0..3 {
            assert_eq!(login_from(client_address).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(login_from(client_address).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(login_from(neighbour).await.unwrap().status(), StatusCode::UNAUTHORIZED, "{neighbour} is charged");
    }
    // The same /64, another address: still limited. A spoofed first hop changes nothing.
    assert_eq!(login_from("2001:db8:1:2::ffff").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login_from("192.0.2.99, 198.51.100.7").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);

    // Straight to the gRPC port, a claimed address without the key, or a forwarded one
    // from an untrusted peer, is ignored: the caller's own address is charged.
    let grpc = core.channel().await;
    let login = |claimed: &str, key: &str| {
        let mut request = tonic::Request::new(gatekey::v1::LocalLoginRequest {
            username: "admin".into(),
            password: "not-the-password".into(),
        });
        request.metadata_mut().insert("x-gatekey-client-address", claimed.parse().unwrap());
        request.metadata_mut().insert("x-gatekey-facade-key", key.parse().unwrap());
        request.metadata_mut().insert("x-forwarded-for", claimed.parse().unwrap());
        let mut client = gatekey::v1::auth_service_client::AuthServiceClient::new(grpc.clone());
        async move { client.local_login(request).await }
    };
    for n in 0..3 {
        let refused =
            login(&format!("198.51.100.{}", 20 + n), "wrong-key-wrong-key-wrong-key-wrong").await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    }
    let limited = login("198.51.100.30", "wrong-key-wrong-key-wrong-key-wrong").await.unwrap_err();
    assert_eq!(limited.code(), tonic::Code::ResourceExhausted, "every claim was charged to the caller: {limited:?}");
    // With the key, a claimed address is believed (this is how a facade talks).
    let believed = login("198.51.100.31", KEY).await.unwrap_err();
    assert_eq!(believed.code(), tonic::Code::Unauthenticated, "{believed:?}");
}
