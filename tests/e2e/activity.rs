//! Live VPN sessions (listed, ended by an admin), the sign-in record, the dashboard and
//! the event stream, over REST and gRPC, on SQLite and PostgreSQL.

use crate::agents::{SimulatedAgent, alice_serial, fleet};
use crate::kit::{Backend, Core, backends};
use gatekey::v1::admin_activity_service_client::AdminActivityServiceClient;
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::{ClientConnected, HeartbeatRequest, SessionBytes, WatchEventsRequest, event};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

/// `message` carrying `token` as its bearer credential.
pub fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn admins_see_live_sessions_and_end_them_at_the_gateway() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let fleet = fleet(&core, 2, 1).await;
        let (gateway_id, token) = fleet.gateways[0].clone();
        let serial = alice_serial(&core, &fleet, &gateway_id).await;
        let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
        let session = ClientConnected {
            session_key: "7-1700000000".into(),
            common_name: "alice@example.com".into(),
            serial: serial.clone(),
            vpn_address: "10.8.0.6".into(),
            client_address: "192.0.2.44".into(),
            connected_at: None,
        };
        agent.send(AgentBody::ClientConnected(session)).await;
        let bytes = SessionBytes { session_key: "7-1700000000".into(), bytes_received: 4096, bytes_sent: 65536 };
        agent.send(AgentBody::Heartbeat(HeartbeatRequest { session_bytes: vec![bytes], ..Default::default() })).await;
        agent.drain().await;

        let listed = core.get("/admin/sessions", &fleet.admin).await.expect(StatusCode::OK);
        assert_eq!(listed.body["meta"]["total"], 1, "{backend:?}: {}", listed.body);
        let row = &listed.body["data"][0];
        let id = row["id"].as_str().unwrap().to_owned();
        assert_eq!(id, format!("{gateway_id}:7-1700000000"));
        assert_eq!(
            (row["gateway_name"].as_str(), row["user_id"].as_str()),
            (Some("gw0"), Some(fleet.alice_id.as_str()))
        );
        assert_eq!(
            (row["vpn_address"].as_str(), row["client_address"].as_str()),
            (Some("10.8.0.6"), Some("192.0.2.44"))
        );
        assert_eq!((row["bytes_received"].as_u64(), row["bytes_sent"].as_u64()), (Some(4096), Some(65536)));
        // Alice sees her own; another user sees none, and no admin list.
        let own = core.get("/sessions", &fleet.alice).await.expect(StatusCode::OK);
        assert_eq!(own.body["data"][0]["id"], id.as_str());
        let (_, bob) = core.create_user(&fleet.admin, "bob", &[]).await;
        assert_eq!(core.get("/sessions", &bob).await.expect(StatusCode::OK).body["meta"]["total"], 0);
        core.get("/admin/sessions", &bob).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
        core.delete(&format!("/admin/sessions/{id}"), &bob).await.expect_error(StatusCode::FORBIDDEN, "forbidden");

        // Ids that name no open session, or the session on the wrong gateway, are 404s;
        // control characters are 400s. None of them orders a kill.
        let other_gateway = &fleet.gateways[1].0;
        for missing in [format!("{other_gateway}:7-1700000000"), "7-1700000000".into(), format!("{gateway_id}:8-1")] {
            core.delete(&format!("/admin/sessions/{missing}"), &fleet.admin)
                .await
                .expect_error(StatusCode::NOT_FOUND, "not_found");
        }
        core.call(Method::DELETE, "/admin/sessions/gw%00x", Some(&fleet.admin), None)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(
            agent.drain().await.iter().all(|message| !matches!(message.body, Some(CoreBody::KillSession(_)))),
            "a refused disconnection reached the gateway"
        );

        let fetched = core.get(&format!("/admin/sessions/{id}"), &fleet.admin).await.expect(StatusCode::OK);
        assert_eq!(fetched.body["data"]["serial"], serial.as_str());
        let ended = core.delete(&format!("/admin/sessions/{id}"), &fleet.admin).await.expect(StatusCode::OK);
        assert_eq!(
            (ended.body["data"]["disconnected"].as_bool(), ended.body["data"]["ordered"].as_bool()),
            (Some(true), Some(true))
        );
        let kill = agent
            .drain()
            .await
            .into_iter()
            .find_map(|message| match message.body {
                Some(CoreBody::KillSession(kill)) => Some(kill),
                _ => None,
            })
            .expect("the gateway got no kill");
        assert_eq!((kill.serial.as_str(), kill.common_name.as_str()), (serial.as_str(), "alice@example.com"));
        assert_eq!(kill.reason, "disconnected by an administrator");
        // The certificate stays valid: disconnecting is not revoking.
        let check = core.get(&format!("/pki/check/{serial}"), &fleet.admin).await.expect(StatusCode::OK);
        assert_eq!(check.body["data"]["revoked"], false, "{}", check.body);
    }
}

#[tokio::test]
async fn the_dashboard_and_the_sign_in_record_count_what_happened() {
    for backend in backends() {
        let core = Core::start(backend).await;
        let fleet = fleet(&core, 2, 1).await;
        let (gateway_id, token) = fleet.gateways[0].clone();
        alice_serial(&core, &fleet, &gateway_id).await;
        let (_agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
        // A refused sign-in whose name tries to forge a record line: bad input, recorded
        // with the control character escaped.
        let forged = core
            .call(
                Method::POST,
                "/auth/local/login",
                None,
                Some(json!({"username": "mallory\tok", "password": "not the password"})),
            )
            .await;
        assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", forged.body);

        let dashboard = core.get("/admin/dashboard", &fleet.admin).await.expect(StatusCode::OK);
        let data = &dashboard.body["data"];
        assert_eq!((data["gateways_online"].as_u64(), data["gateways_offline"].as_u64()), (Some(1), Some(1)), "{data}");
        assert_eq!((data["configs_issued_24h"].as_u64(), data["live_sessions"].as_u64()), (Some(1), Some(0)), "{data}");
        assert_eq!(data["users"], 2, "{data}");
        assert_eq!(data["recent_refusals"][0]["subject"], "mallory\\tok", "{data}");
        assert!(data["recent_sign_ins"].as_array().unwrap().iter().any(|s| s["success"] == true), "{data}");

        let refusals = core.get("/admin/sign-ins?failures_only=true", &fleet.admin).await.expect(StatusCode::OK);
        assert_eq!(refusals.body["meta"]["total"], 1);
        assert!(
            refusals.body["data"][0]["reason"].as_str().unwrap().contains("control characters"),
            "{}",
            refusals.body
        );
        let all = core.get("/admin/sign-ins?per_page=100", &fleet.admin).await.expect(StatusCode::OK);
        assert!(all.body["meta"]["total"].as_u64().unwrap() >= 3, "{}", all.body);
        core.get("/admin/dashboard", &fleet.alice).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
        core.get("/admin/sign-ins", &fleet.alice).await.expect_error(StatusCode::FORBIDDEN, "forbidden");

        // User search: any case, in username, e-mail or name; `%` and `_` are literal.
        let found = core.get("/admin/users?q=ALIce", &fleet.admin).await.expect(StatusCode::OK);
        assert_eq!(found.body["meta"]["total"], 1, "{}", found.body);
        assert_eq!(found.body["data"][0]["username"], "alice");
        for literal in ["%25", "_", "a%25"] {
            let none = core.get(&format!("/admin/users?q={literal}"), &fleet.admin).await.expect(StatusCode::OK);
            assert_eq!(none.body["meta"]["total"], 0, "{literal}: {}", none.body);
        }
        core.get("/admin/users?q=a%0Ab", &fleet.admin).await.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn admins_watch_events_as_they_happen_and_others_cannot() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let mut activity = AdminActivityServiceClient::new(core.channel().await);
    let refused = activity.watch_events(with_bearer(WatchEventsRequest {}, &fleet.alice)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    let mut events =
        activity.watch_events(with_bearer(WatchEventsRequest {}, &fleet.admin)).await.unwrap().into_inner();
    let (_agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
    alice_serial(&core, &fleet, &gateway_id).await;
    core.call(
        Method::POST,
        "/auth/local/login",
        None,
        Some(json!({"username": "alice", "password": "wrong-password"})),
    )
    .await;
    let mut seen = (false, false, false);
    while seen != (true, true, true) {
        let next = tokio::time::timeout(Duration::from_secs(10), events.message()).await;
        let event = next.expect("no event within 10 s").unwrap().expect("the watch ended");
        match event.kind {
            Some(event::Kind::Gateway(presence)) if presence.gateway_id == gateway_id && presence.connected => {
                seen.0 = true
            }
            Some(event::Kind::Config(config))
                if config.gateway_id == gateway_id && config.user_id == fleet.alice_id =>
            {
                seen.1 = true
            }
            Some(event::Kind::SignIn(sign_in)) if sign_in.subject == "alice" && !sign_in.success => seen.2 = true,
            _ => {}
        }
    }
}
