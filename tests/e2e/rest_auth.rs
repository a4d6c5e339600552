//! Sign-in, sessions, cookies and API keys through the REST facade.

use crate::kit::{ADMIN_PASSWORD, Backend, Core, backends};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn local_login_opens_a_session_usable_by_cookie_and_bearer_until_logout() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let reply = core
            .call(
                Method::POST,
                "/auth/local/login",
                None,
                Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
            )
            .await
            .expect(StatusCode::OK);
        let token = reply.body["data"]["session_token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("gks_"));
        assert_eq!(reply.body["data"]["user"]["username"], "admin");
        assert_eq!(reply.body["data"]["user"]["is_admin"], true);
        let cookie = reply.headers["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with(&format!("gatekey_session={token};")), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");

        // The cookie alone authenticates.
        let client = reqwest::Client::new();
        let by_cookie = client
            .get(format!("{}/api/v1/auth/session", core.http_base))
            .header("cookie", format!("theme=dark; gatekey_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(by_cookie.status(), StatusCode::OK);
        let body: serde_json::Value = by_cookie.json().await.unwrap();
        assert_eq!(body["data"]["auth_method"], "session");
        assert_eq!(body["data"]["user"]["username"], "admin");

        let session = core.get("/auth/session", &token).await.expect(StatusCode::OK);
        assert!(session.body["data"]["expires_at"].as_str().unwrap().ends_with('Z'));

        let logout = core.call(Method::POST, "/auth/logout", Some(&token), None).await.expect(StatusCode::OK);
        assert!(logout.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
        core.get("/auth/session", &token).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn bad_logins_and_bad_bodies_are_rejected_with_clear_errors() {
    let core = Core::start(Backend::Sqlite).await;
    let login = |body| core.call(Method::POST, "/auth/local/login", None, Some(body));
    login(json!({"username": "admin", "password": "wrong-password"}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    login(json!({"username": "nobody", "password": "whatever-password"}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let message = login(json!({"username": "admin"})).await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(message.contains("password"), "{message}");
    let message = login(json!({"username": "admin", "password": "x", "otp": 1}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(message.contains("otp"), "{message}");
    let message =
        login(json!({"username": 7, "password": "x"})).await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(message.contains("username"), "{message}");

    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/local/login", core.http_base);
    for (content_type, body) in
        [("application/json", "{\"username\": \"admin\",".to_owned()), ("text/plain", "{}".to_owned())]
    {
        let reply = client.post(&url).header("content-type", content_type).body(body).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let huge = format!("{{\"username\": \"{}\", \"password\": \"x\"}}", "a".repeat(100 * 1024));
    let reply = client.post(&url).header("content-type", "application/json").body(huge).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");

    core.call(Method::GET, "/auth/session", None, None).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    core.get("/auth/session", "gks_forged-token-that-is-not-valid")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_expiring_and_revocable() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;
        let (_, alice) = core.create_user(&admin, "alice", &[]).await;

        let created = core
            .post("/api-keys", &alice, json!({"name": "ci", "scopes": ["read", "write"]}))
            .await
            .expect(StatusCode::CREATED);
        let key = created.body["data"]["secret"].as_str().unwrap().to_owned();
        let key_id = created.body["data"]["id"].as_str().unwrap().to_owned();
        assert!(key.starts_with("gk_") && key_id.starts_with("key-"));
        assert!(key.starts_with(created.body["data"]["prefix"].as_str().unwrap()));

        // The key authenticates as alice; listings never show secrets.
        let session = core.get("/auth/session", &key).await.expect(StatusCode::OK);
        assert_eq!(session.body["data"]["auth_method"], "api_key");
        assert_eq!(session.body["data"]["user"]["username"], "alice");
        let listed = core.get("/api-keys", &alice).await.expect(StatusCode::OK);
        assert_eq!(listed.body["meta"]["total"], 1);
        assert!(!listed.body.to_string().contains(&key));
        assert!(listed.body["data"][0]["last_used_at"].is_string(), "{}", listed.body);

        core.post("/api-keys", &alice, json!({"name": "ci"})).await.expect_error(StatusCode::CONFLICT, "conflict");
        core.post("/api-keys", &alice, json!({"name": "x", "scopes": ["root"]}))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");

        // A read-only key reads but cannot write.
        let read_only = core.post("/api-keys", &alice, json!({"name": "ro", "scopes": ["read"]})).await;
        let read_only = read_only.body["data"]["secret"].as_str().unwrap().to_owned();
        core.get("/gateways", &read_only).await.expect(StatusCode::OK);
        core.post("/api-keys", &read_only, json!({"name": "escalate"}))
            .await
            .expect_error(StatusCode::FORBIDDEN, "insufficient_scope");

        // Another user cannot see or revoke alice's key.
        let (_, bob) = core.create_user(&admin, "bob", &[]).await;
        core.delete(&format!("/api-keys/{key_id}"), &bob).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        core.get("/auth/session", &key).await.expect(StatusCode::OK);

        let revoked = core.delete(&format!("/api-keys/{key_id}"), &alice).await.expect(StatusCode::OK);
        assert!(revoked.body["data"]["revoked_at"].is_string());
        let message = core.get("/auth/session", &key).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(message.contains("revoked"), "{message}");

        // Expiry is kept in whole seconds: two of them leave a created key at least one
        // whole second of life for its first use.
        let short = core.post("/api-keys", &alice, json!({"name": "short", "expires_in_seconds": 2})).await;
        let short = short.body["data"]["secret"].as_str().unwrap().to_owned();
        core.get("/auth/session", &short).await.expect(StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let message = core.get("/auth/session", &short).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(message.contains("expired"), "{message}");

        // A key is not a session: logout with it is refused and it keeps working.
        core.call(Method::POST, "/auth/logout", Some(&read_only), None)
            .await
            .expect_error(StatusCode::FORBIDDEN, "forbidden");
        // Forged keys with a real prefix fail.
        let forged = format!("{}{}", &read_only[..15], "A".repeat(read_only.len() - 15));
        core.get("/auth/session", &forged).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn disabling_a_user_ends_its_sessions_and_blocks_sign_in() {
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &[]).await;
    let key =
        core.post("/api-keys", &alice, json!({"name": "k"})).await.body["data"]["secret"].as_str().unwrap().to_owned();

    core.put(&format!("/admin/users/{alice_id}"), &admin, json!({"disabled": true})).await.expect(StatusCode::OK);
    core.get("/auth/session", &alice).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Disabling revoked the user's API keys.
    let message = core.get("/auth/session", &key).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
    core.call(
        Method::POST,
        "/auth/local/login",
        None,
        Some(json!({"username": "alice", "password": crate::kit::USER_PASSWORD})),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "account_disabled");

    core.put(&format!("/admin/users/{alice_id}"), &admin, json!({"disabled": false})).await.expect(StatusCode::OK);
    core.login("alice", crate::kit::USER_PASSWORD).await;
}
