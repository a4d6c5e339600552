//! Admin resources through the REST facade: gateways, grants, networks, users,
//! paging, and refusal of bad input and non-admins with nothing changed.

use crate::kit::{Backend, Core, backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn total(core: &Core, path: &str, token: &str) -> u64 {
    core.get(path, token).await.expect(StatusCode::OK).body["meta"]["total"].as_u64().unwrap()
}

/// The `data.id` of a JSON answer.
pub(crate) fn id_of(body: &Value) -> String {
    body["data"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn gateway_lifecycle_and_bad_input_change_nothing() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;
        let created = core
            .post(
                "/admin/gateways",
                &admin,
                json!({"name": "us-east-1", "description": "US East Coast Gateway",
                       "hostname": "vpn-us-east.example.com", "port": 1194, "protocol": "udp"}),
            )
            .await
            .expect(StatusCode::CREATED);
        let gateway = &created.body["data"];
        let id = gateway["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("gw-"));
        assert!(gateway["token"].as_str().unwrap().starts_with("gkgw_"));
        assert_eq!(gateway["status"], "offline");
        assert_eq!(gateway["vpn_subnet"], "10.8.0.0/24");
        assert!(gateway["last_heartbeat"].is_null());

        let listed = core.get("/admin/gateways", &admin).await.expect(StatusCode::OK);
        assert_eq!(listed.body["meta"], json!({"total": 1, "page": 1, "per_page": 20}));
        assert!(listed.body["data"][0].get("token").is_none(), "tokens are shown once only");

        for (body, field) in [
            (json!({"name": "us-east-1", "hostname": "other.example.com"}), "already exists"),
            (json!({"name": "bad name", "hostname": "h.example.com"}), "name"),
            (json!({"name": "gw2", "hostname": "h.example.com", "port": 70000}), "port"),
            (json!({"name": "gw2", "hostname": "h.example.com", "port": "1194"}), "port"),
            (json!({"name": "gw2", "hostname": "h.example.com", "protocol": "icmp"}), "protocol"),
            (json!({"name": "gw2", "hostname": "h.example.com", "vpn_subnet": "10.0.0.0/8"}), "vpn_subnet"),
            (json!({"name": "gw2", "hostname": "not a host"}), "hostname"),
            (json!({"name": "gw2", "hostname": "h.example.com", "colour": "red"}), "colour"),
            (json!({"hostname": "h.example.com"}), "name"),
        ] {
            let reply = core.post("/admin/gateways", &admin, body.clone()).await;
            let expected = if field == "already exists" {
                (StatusCode::CONFLICT, "conflict")
            } else {
                (StatusCode::BAD_REQUEST, "invalid_request")
            };
            let message = reply.expect_error(expected.0, expected.1);
            assert!(message.contains(field), "{body}: {message}");
        }
        assert_eq!(total(&core, "/admin/gateways", &admin).await, 1, "rejected creates changed nothing");

        let updated = core
            .put(
                &format!("/admin/gateways/{id}"),
                &admin,
                json!({"port": 443, "protocol": "tcp", "description": "moved"}),
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(updated.body["data"]["port"], 443);
        assert_eq!(updated.body["data"]["protocol"], "tcp");
        assert_eq!(updated.body["data"]["name"], "us-east-1");
        core.put(&format!("/admin/gateways/{id}"), &admin, json!({"port": 0}))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(
            core.get("/admin/gateways", &admin).await.body["data"][0]["port"],
            443,
            "rejected update changed nothing"
        );
        core.put("/admin/gateways/gw-unknown", &admin, json!({"port": 1}))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");

        let rotated = core.call(Method::POST, &format!("/admin/gateways/{id}/rotate-token"), Some(&admin), None).await;
        let rotated = rotated.expect(StatusCode::OK);
        assert_ne!(rotated.body["data"]["token"], gateway["token"]);

        let deleted = core.delete(&format!("/admin/gateways/{id}"), &admin).await.expect(StatusCode::OK);
        assert_eq!(deleted.body["data"], json!({"id": id, "deleted": true}));
        core.delete(&format!("/admin/gateways/{id}"), &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn grants_to_users_and_groups_decide_what_gateways_list() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;
        let (alice_id, alice) = core.create_user(&admin, "alice", &["engineering"]).await;
        let (_, bob) = core.create_user(&admin, "bob", &["sales"]).await;
        let gw = id_of(
            &core.post("/admin/gateways", &admin, json!({"name": "eu-1", "hostname": "eu.example.com"})).await.body,
        );
        let visible = |token: String| {
            let core = &core;
            async move {
                let reply = core.get("/gateways", &token).await.expect(StatusCode::OK);
                reply.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        assert!(visible(alice.clone()).await.is_empty(), "nothing is granted by default");
        assert!(visible(admin.clone()).await.is_empty(), "admins are not granted gateways implicitly");

        core.post(&format!("/admin/gateways/{gw}/users"), &admin, json!({"user_id": alice_id}))
            .await
            .expect(StatusCode::OK);
        let reply = core.get("/gateways", &alice).await.expect(StatusCode::OK);
        let seen = reply.body["data"][0].as_object().unwrap();
        let mut keys: Vec<_> = seen.keys().map(String::as_str).collect();
        keys.sort_unstable();
        // The seed's fields, and the role (gateway or mesh hub).
        assert_eq!(
            keys,
            ["description", "hostname", "id", "last_heartbeat", "name", "port", "protocol", "role", "status"]
        );
        assert_eq!(seen["role"], "gateway");
        assert!(visible(bob.clone()).await.is_empty());

        core.delete(&format!("/admin/gateways/{gw}/users/{alice_id}"), &admin).await.expect(StatusCode::OK);
        assert!(visible(alice.clone()).await.is_empty());
        core.delete(&format!("/admin/gateways/{gw}/users/{alice_id}"), &admin)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");

        let granted = core.post(&format!("/admin/gateways/{gw}/groups"), &admin, json!({"group": "engineering"})).await;
        assert_eq!(granted.expect(StatusCode::OK).body["data"]["groups"], json!(["engineering"]));
        assert_eq!(visible(alice.clone()).await, vec![gw.clone()]);
        assert!(visible(bob.clone()).await.is_empty());

        core.put(&format!("/admin/gateways/{gw}"), &admin, json!({"is_active": false})).await.expect(StatusCode::OK);
        assert!(visible(alice.clone()).await.is_empty(), "inactive gateways are hidden from users");
        core.put(&format!("/admin/gateways/{gw}"), &admin, json!({"is_active": true})).await.expect(StatusCode::OK);
        core.delete(&format!("/admin/gateways/{gw}/groups/engineering"), &admin).await.expect(StatusCode::OK);
        assert!(visible(alice.clone()).await.is_empty());

        core.post(&format!("/admin/gateways/{gw}/users"), &admin, json!({"user_id": "usr-nobody"}))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
        core.post("/admin/gateways/gw-nope/users", &admin, json!({"user_id": alice_id}))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
        core.post(&format!("/admin/gateways/{gw}/groups"), &admin, json!({"group": ""}))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn networks_attach_to_gateways_and_validate_cidrs() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;
        let created = core
            .post("/admin/networks", &admin, json!({"name": "office", "cidrs": ["10.20.1.7/24", "fd00:1::5/64"]}))
            .await
            .expect(StatusCode::CREATED);
        let net = id_of(&created.body);
        assert!(net.starts_with("net-"));
        assert_eq!(created.body["data"]["cidrs"], json!(["10.20.1.0/24", "fd00:1::/64"]));

        let message = core
            .post("/admin/networks", &admin, json!({"name": "bad", "cidrs": ["10.0.0.0/33"]}))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.contains("cidrs"), "{message}");
        core.post("/admin/networks", &admin, json!({"name": "office", "cidrs": ["10.9.0.0/16"]}))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        core.post("/admin/networks", &admin, json!({"name": "empty", "cidrs": []}))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(total(&core, "/admin/networks", &admin).await, 1);

        let gw =
            id_of(&core.post("/admin/gateways", &admin, json!({"name": "g", "hostname": "g.example.com"})).await.body);
        let attached = core.post(&format!("/admin/gateways/{gw}/networks"), &admin, json!({"network_id": net})).await;
        assert_eq!(attached.expect(StatusCode::OK).body["data"]["network_ids"], json!([net]));
        let networks = core.get("/admin/networks", &admin).await;
        assert_eq!(networks.body["data"][0]["gateway_ids"], json!([gw]));
        core.post(&format!("/admin/gateways/{gw}/networks"), &admin, json!({"network_id": "net-missing"}))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");

        let updated = core.put(&format!("/admin/networks/{net}"), &admin, json!({"cidrs": ["192.168.50.0/24"]})).await;
        assert_eq!(updated.expect(StatusCode::OK).body["data"]["cidrs"], json!(["192.168.50.0/24"]));

        core.delete(&format!("/admin/networks/{net}"), &admin).await.expect(StatusCode::OK);
        let gateway = core.get("/admin/gateways", &admin).await;
        assert_eq!(gateway.body["data"][0]["network_ids"], json!([]), "deleting a network detaches it");
        core.delete(&format!("/admin/networks/{net}"), &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn non_admins_are_refused_every_admin_method_and_nothing_changes() {
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &[]).await;
    let gw = id_of(&core.post("/admin/gateways", &admin, json!({"name": "g", "hostname": "g.example.com"})).await.body);
    let net = id_of(&core.post("/admin/networks", &admin, json!({"name": "n", "cidrs": ["10.0.0.0/24"]})).await.body);
    let hub =
        id_of(&core.post("/admin/mesh/hubs", &admin, json!({"name": "h", "hostname": "h.example.com"})).await.body);
    let spokes = format!("/admin/mesh/hubs/{hub}/spokes");
    let spoke = id_of(&core.post(&spokes, &admin, json!({"name": "s", "local_cidrs": ["10.50.0.0/24"]})).await.body);

    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/admin/users".into(), None),
        (
            Method::POST,
            "/admin/users".into(),
            Some(json!({"username": "x", "email": "x@example.com", "password": "password-long-1"})),
        ),
        (Method::GET, format!("/admin/users/{alice_id}"), None),
        (Method::PUT, format!("/admin/users/{alice_id}"), Some(json!({"is_admin": true}))),
        (Method::GET, "/admin/gateways".into(), None),
        (Method::POST, "/admin/gateways".into(), Some(json!({"name": "evil", "hostname": "e.example.com"}))),
        (Method::GET, format!("/admin/gateways/{gw}"), None),
        (Method::GET, format!("/admin/gateways/{hub}"), None),
        (Method::PUT, format!("/admin/gateways/{gw}"), Some(json!({"port": 1}))),
        (Method::PUT, format!("/admin/gateways/{hub}"), Some(json!({"port": 1}))),
        (Method::DELETE, format!("/admin/gateways/{hub}"), None),
        (Method::DELETE, format!("/admin/gateways/{gw}"), None),
        (Method::POST, format!("/admin/gateways/{gw}/rotate-token"), None),
        (Method::POST, format!("/admin/gateways/{gw}/users"), Some(json!({"user_id": alice_id}))),
        (Method::POST, format!("/admin/gateways/{gw}/groups"), Some(json!({"group": "g"}))),
        (Method::POST, format!("/admin/gateways/{gw}/networks"), Some(json!({"network_id": net}))),
        (Method::GET, "/admin/networks".into(), None),
        (Method::POST, "/admin/networks".into(), Some(json!({"name": "evil", "cidrs": ["10.1.0.0/24"]}))),
        (Method::GET, format!("/admin/networks/{net}"), None),
        (Method::PUT, format!("/admin/networks/{net}"), Some(json!({"name": "renamed"}))),
        (Method::DELETE, format!("/admin/networks/{net}"), None),
        (Method::GET, "/admin/mesh/hubs".into(), None),
        (Method::POST, "/admin/mesh/hubs".into(), Some(json!({"name": "evil", "hostname": "e.example.com"}))),
        (Method::GET, format!("/admin/mesh/hubs/{hub}"), None),
        (Method::PUT, format!("/admin/mesh/hubs/{hub}"), Some(json!({"user_ids": [alice_id]}))),
        (Method::DELETE, format!("/admin/mesh/hubs/{hub}"), None),
        (Method::POST, format!("/admin/mesh/hubs/{hub}/rotate-token"), None),
        (Method::GET, spokes.clone(), None),
        (Method::POST, spokes.clone(), Some(json!({"name": "evil", "local_cidrs": ["10.51.0.0/24"]}))),
        (Method::GET, format!("{spokes}/{spoke}"), None),
        (Method::DELETE, format!("{spokes}/{spoke}"), None),
        (Method::POST, format!("{spokes}/{spoke}/rotate-token"), None),
    ];
    for (method, path, body) in attempts {
        let reply = core.call(method.clone(), &path, Some(&alice), body.clone()).await;
        reply.expect_error(StatusCode::FORBIDDEN, "forbidden");
        let anonymous = core.call(method, &path, None, body).await;
        anonymous.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let gateways = core.get("/admin/gateways", &admin).await;
    assert_eq!(gateways.body["meta"]["total"], 2, "the gateway and the hub");
    assert!(gateways.body["data"].as_array().unwrap().iter().all(|g| g["port"] == 1194 && g["user_ids"] == json!([])));
    let networks = core.get("/admin/networks", &admin).await;
    assert_eq!(networks.body["data"][0]["name"], "n");
    let hubs = core.get("/admin/mesh/hubs", &admin).await;
    assert_eq!((&hubs.body["meta"]["total"], &hubs.body["data"][0]["user_ids"]), (&json!(1), &json!([])));
    assert_eq!(core.get(&spokes, &admin).await.body["data"][0]["id"], spoke.as_str());
    let users = core.get("/admin/users", &admin).await;
    assert_eq!(users.body["meta"]["total"], 2);
    assert!(users.body["data"].as_array().unwrap().iter().all(|u| u["username"] != "alice" || u["is_admin"] == false));
}

#[tokio::test]
async fn users_are_validated_unique_and_admins_cannot_lock_themselves_out() {
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    let base = json!({"username": "carol", "email": "carol@example.com", "password": "long-enough-pass"});
    let created = core.post("/admin/users", &admin, base.clone()).await.expect(StatusCode::CREATED);
    assert!(id_of(&created.body).starts_with("usr-"));
    assert_eq!(created.body["data"]["provider"], "local");
    assert!(created.body["data"].get("password").is_none() && !created.body.to_string().contains("long-enough-pass"));
    core.post("/admin/users", &admin, base.clone()).await.expect_error(StatusCode::CONFLICT, "conflict");
    for (patch, field) in [
        (json!({"username": "dave", "password": "short"}), "password"),
        (json!({"username": "dave", "email": "not-an-email"}), "email"),
        (json!({"username": "dave", "email": "dave..x@example.com"}), "email"),
        (json!({"username": "dave", "email": " dave@example.com"}), "email"),
        (json!({"username": "da ve"}), "username"),
        (json!({"username": "dave", "is_admin": "yes"}), "is_admin"),
    ] {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        if body["username"] == "dave" && body["email"] == "carol@example.com" {
            body["email"] = json!("dave@example.com");
        }
        let message =
            core.post("/admin/users", &admin, body).await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.contains(field), "{message}");
    }
    assert_eq!(total(&core, "/admin/users", &admin).await, 2);

    let me = core.get("/auth/session", &admin).await.body["data"]["user"]["id"].as_str().unwrap().to_owned();
    core.put(&format!("/admin/users/{me}"), &admin, json!({"disabled": true}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    core.put("/admin/users/usr-missing", &admin, json!({"name": "x"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let promoted = core
        .put(
            &format!("/admin/users/{}", id_of(&created.body)),
            &admin,
            json!({"is_admin": true, "groups": ["ops", "ops"]}),
        )
        .await;
    let promoted = promoted.expect(StatusCode::OK);
    assert_eq!(promoted.body["data"]["is_admin"], true);
    assert_eq!(promoted.body["data"]["groups"], json!(["ops"]));
}

#[tokio::test]
async fn lists_page_with_the_seed_meta_and_reject_bad_paging() {
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    for i in 0..25 {
        core.post(
            "/admin/networks",
            &admin,
            json!({"name": format!("net-{i:02}"), "cidrs": [format!("10.{i}.0.0/16")]}),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let page = core.get("/admin/networks?page=3&per_page=10", &admin).await.expect(StatusCode::OK);
    assert_eq!(page.body["meta"], json!({"total": 25, "page": 3, "per_page": 10}));
    let names: Vec<_> = page.body["data"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["net-20", "net-21", "net-22", "net-23", "net-24"]);
    assert_eq!(core.get("/admin/networks", &admin).await.body["data"].as_array().unwrap().len(), 20);
    for query in ["per_page=101", "per_page=0", "page=0", "page=abc", "sort=name"] {
        core.get(&format!("/admin/networks?{query}"), &admin)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    core.call(Method::PATCH, "/admin/networks", Some(&admin), None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    core.get("/no/such/thing", &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

/// Every resource that can be changed or deleted at `/…/{id}` can be read there too;
/// an unknown id is a 404 in the usual shape.
#[tokio::test]
async fn every_resource_reads_back_by_id() {
    for backend in crate::kit::backends() {
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;
        let (alice_id, alice) = core.create_user(&admin, "alice", &["staff"]).await;
        let gw = core.post("/admin/gateways", &admin, json!({"name": "g", "hostname": "g.example.com"})).await;
        let net = core.post("/admin/networks", &admin, json!({"name": "n", "cidrs": ["10.0.0.0/24"]})).await;
        let rule = core
            .post(
                "/admin/access-rules",
                &admin,
                json!({"name": "r", "network_id": id_of(&net.body), "groups": ["staff"], "destination_type": "cidr",
                       "destination": "10.0.0.0/24"}),
            )
            .await;
        let provider = core
            .post(
                "/admin/auth-providers",
                &admin,
                json!({"name": "corp", "type": "oidc", "issuer_url": "https://idp.example.com", "client_id": "c",
                       "client_secret": "never-shown"}),
            )
            .await;
        let fence =
            core.post("/admin/geo-fence/rules", &admin, json!({"action": "deny", "cidrs": ["192.0.2.0/24"]})).await;
        let hub = core.post("/admin/mesh/hubs", &admin, json!({"name": "h", "hostname": "h.example.com"})).await;
        let hub_id = id_of(&hub.body);
        let spoke = core
            .post(
                &format!("/admin/mesh/hubs/{hub_id}/spokes"),
                &admin,
                json!({"name": "s", "local_cidrs": ["10.50.0.0/24"]}),
            )
            .await;
        let key = core.post("/api-keys", &alice, json!({"name": "k"})).await;
        let readable = [
            (format!("/admin/gateways/{}", id_of(&gw.body)), &admin, "name", json!("g")),
            (format!("/admin/networks/{}", id_of(&net.body)), &admin, "cidrs", json!(["10.0.0.0/24"])),
            (format!("/admin/access-rules/{}", id_of(&rule.body)), &admin, "name", json!("r")),
            (format!("/admin/auth-providers/{}", id_of(&provider.body)), &admin, "client_id", json!("c")),
            (format!("/admin/geo-fence/rules/{}", id_of(&fence.body)), &admin, "action", json!("deny")),
            (format!("/admin/users/{alice_id}"), &admin, "username", json!("alice")),
            (format!("/admin/mesh/hubs/{hub_id}"), &admin, "name", json!("h")),
            (format!("/admin/mesh/hubs/{hub_id}/spokes/{}", id_of(&spoke.body)), &admin, "name", json!("s")),
            (format!("/api-keys/{}", id_of(&key.body)), &alice, "name", json!("k")),
        ];
        for (path, token, field, value) in readable {
            let reply = core.get(&path, token).await.expect(StatusCode::OK);
            assert_eq!(reply.body["data"][field], value, "{path}: {}", reply.body);
            assert!(!reply.body.to_string().contains("never-shown") && reply.body["data"].get("secret").is_none());
            let unknown = path.rsplit_once('/').unwrap().0.to_owned() + "/xx-0000000000000000";
            core.get(&unknown, token).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        }
        // Another user's API key is as unknown as a made-up one.
        let (_, bob) = core.create_user(&admin, "bob", &[]).await;
        core.get(&format!("/api-keys/{}", id_of(&key.body)), &bob)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}
