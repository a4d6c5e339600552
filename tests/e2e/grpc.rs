//! The gRPC surface with real clients: the generated Rust client, a reflection
//! client that knows no .proto files, grpcurl, the health check through the agent
//! binary, and the standalone REST facade in front of a remote core.

use crate::kit::{ADMIN_PASSWORD, Backend, Core, binary, missing, ready_line};
use gatekey::ERROR_CODE_METADATA;
use gatekey::v1::admin_gateway_service_client::AdminGatewayServiceClient;
use gatekey::v1::admin_mesh_service_client::AdminMeshServiceClient;
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::gateway_service_client::GatewayServiceClient;
use gatekey::v1::{
    CreateGatewayRequest, CreateMeshHubRequest, DeleteGatewayRequest, ListGatewaysRequest, ListHubsRequest,
    LocalLoginRequest, TransportProtocol,
};
use std::process::Stdio;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn rust_grpc_client_signs_in_and_manages_gateways() {
    let core = Core::start(Backend::Sqlite).await;
    let channel = core.channel().await;
    let login = AuthServiceClient::new(channel.clone())
        .local_login(LocalLoginRequest { username: "admin".into(), password: ADMIN_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(login.user.unwrap().username, "admin");
    let token = login.session_token;

    let mut admin = AdminGatewayServiceClient::new(channel.clone());
    let created = admin
        .create_gateway(with_token(
            CreateGatewayRequest { name: "grpc-gw".into(), hostname: "g.example.com".into(), ..Default::default() },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.gateway.unwrap().port, 1194);

    // The same resource is visible through REST: one contract, two doors.
    let rest = core.get("/admin/gateways", &token).await;
    assert_eq!(rest.body["data"][0]["name"], "grpc-gw");

    let status = admin
        .create_gateway(with_token(
            CreateGatewayRequest { name: "grpc-gw".into(), hostname: "g.example.com".into(), ..Default::default() },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.metadata().get(ERROR_CODE_METADATA).unwrap(), "conflict");

    let status =
        GatewayServiceClient::new(channel.clone()).list_gateways(ListGatewaysRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.metadata().get(ERROR_CODE_METADATA).unwrap(), "unauthorized");

    // Hubs are not gateways: each admin service sees only its own kind.
    let hub = AdminMeshServiceClient::new(channel.clone())
        .create_hub(with_token(
            CreateMeshHubRequest {
                hub: Some(CreateGatewayRequest {
                    name: "grpc-hub".into(),
                    hostname: "h.example.com".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let hub = hub.hub.unwrap().gateway.unwrap();
    assert!(hub.id.starts_with("hub-") && hub.vpn_subnet == "10.9.0.0/24", "{hub:?}");
    assert_eq!((hub.protocol(), hub.role()), (TransportProtocol::Udp, gatekey::v1::GatewayRole::Hub));
    let hubs = AdminMeshServiceClient::new(channel.clone())
        .list_hubs(with_token(ListHubsRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = hubs.hubs.iter().filter_map(|h| h.gateway.as_ref()).map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["grpc-hub"]);
    // A hub is a gateway in the hub role on the gateway service too.
    let gateways = admin.list_gateways(with_token(ListGatewaysRequest::default(), &token)).await.unwrap().into_inner();
    let listed = gateways.gateways.iter().find(|g| g.name == "grpc-hub").expect("the hub among the gateways");
    assert_eq!(listed.role(), gatekey::v1::GatewayRole::Hub);
    admin.delete_gateway(with_token(DeleteGatewayRequest { id: hub.id.clone() }, &token)).await.unwrap();
    let hubs = AdminMeshServiceClient::new(channel.clone())
        .list_hubs(with_token(ListHubsRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(hubs.hubs.is_empty(), "the hub was deleted through the gateway service");
}

const EXPECTED_SERVICES: [&str; 5] = [
    "gatekey.v1.AuthService",
    "gatekey.v1.AdminGatewayService",
    "gatekey.v1.GatewayAgentService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[tokio::test]
async fn reflection_lists_every_service_without_proto_files() {
    let core = Core::start(Backend::Sqlite).await;
    let mut client = ServerReflectionClient::new(core.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in EXPECTED_SERVICES {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }

    // Ask for a file by symbol: the descriptor must come back, as grpcurl needs it.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("gatekey.v1.AuthService".into())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    assert!(
        matches!(answer.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty())
    );
}

#[tokio::test]
async fn grpcurl_lists_and_calls_through_reflection() {
    let Ok(grpcurl) = std::env::var("GATEKEY_TEST_GRPCURL") else {
        return missing("grpcurl (GATEKEY_TEST_GRPCURL)");
    };
    let core = Core::start(Backend::Sqlite).await;
    let run = |args: Vec<String>| {
        let grpcurl = grpcurl.clone();
        async move {
            let output = tokio::process::Command::new(grpcurl).args(args).output().await.unwrap();
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let (ok, listed, stderr) = run(vec!["-plaintext".into(), core.grpc_address.clone(), "list".into()]).await;
    assert!(ok, "grpcurl list failed: {stderr}");
    for expected in EXPECTED_SERVICES {
        assert!(listed.lines().any(|line| line == expected), "{expected} missing from:\n{listed}");
    }
    let login = format!("{{\"username\": \"admin\", \"password\": \"{ADMIN_PASSWORD}\"}}");
    let (ok, answer, stderr) = run(vec![
        "-plaintext".into(),
        "-d".into(),
        login,
        core.grpc_address.clone(),
        "gatekey.v1.AuthService/LocalLogin".into(),
    ])
    .await;
    assert!(ok, "grpcurl call failed: {stderr}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(answer["sessionToken"].as_str().unwrap().starts_with("gks_"));
    let (ok, _, stderr) =
        run(vec!["-plaintext".into(), core.grpc_address.clone(), "grpc.health.v1.Health/Check".into()]).await;
    assert!(ok, "health check failed: {stderr}");
}

#[tokio::test]
async fn agent_binary_checks_core_health() {
    let core = Core::start(Backend::Sqlite).await;
    let output = tokio::process::Command::new(binary("gatekey-agent"))
        .args(["check", "--core", &format!("http://{}", core.grpc_address)])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("serving"));

    drop(core);
    let output = tokio::process::Command::new(binary("gatekey-agent"))
        .args(["check", "--core", "http://127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
}

#[tokio::test]
async fn standalone_facade_serves_the_api_of_a_remote_core() {
    let core = Core::start_with(Backend::Sqlite, &["--no-http"]).await;
    assert_eq!(core.http_base, "http://off");
    let mut facade = tokio::process::Command::new(binary("gatekey-rest"))
        .args(["--core", &format!("http://{}", core.grpc_address), "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = ready_line(&mut facade, "gatekey-rest ready").await;
    let http = ready.split_whitespace().find_map(|p| p.strip_prefix("http=")).unwrap();
    let client = reqwest::Client::new();
    let reply = client
        .post(format!("http://{http}/api/v1/auth/local/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let cookie = reply.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "the standalone facade defaults to Secure cookies: {cookie}");

    drop(core);
    let reply = client.get(format!("http://{http}/api/v1/gateways")).bearer_auth("gks_x").send().await.unwrap();
    assert_eq!(reply.status(), 503);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
}

#[tokio::test]
async fn grpc_over_tls_is_verified_by_agents_and_the_facade_keeps_working() {
    // A CA and a leaf for localhost, made by openssl.
    let dir = crate::kit::TempDir::new("tls");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(path("leaf.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!("req -x509 {ec} -days 1 -subj /CN=test-ca -keyout {} -out {}", path("ca.key"), path("ca.pem")),
        format!("req {ec} -subj /CN=localhost -keyout {} -out {}", path("key.pem"), path("leaf.csr")),
        format!(
            "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 1 -extfile {} -out {}",
            path("leaf.csr"),
            path("ca.pem"),
            path("ca.key"),
            path("leaf.ext"),
            path("cert.pem")
        ),
    ];
    for step in steps {
        let made = std::process::Command::new("openssl").args(step.split(' ')).stderr(Stdio::null()).status();
        if !made.is_ok_and(|status| status.success()) {
            return missing("openssl");
        }
    }
    let core =
        Core::start_with(Backend::Sqlite, &["--tls-cert", &path("cert.pem"), "--tls-key", &path("key.pem")]).await;
    let port = core.grpc_address.rsplit(':').next().unwrap().to_owned();
    let check = |url: String, ca: Option<String>| async move {
        let mut command = tokio::process::Command::new(binary("gatekey-agent"));
        command.args(["check", "--core", &url]);
        if let Some(ca) = ca {
            command.args(["--core-ca", &ca]);
        }
        command.output().await.unwrap()
    };
    let trusted = check(format!("https://localhost:{port}"), Some(path("ca.pem"))).await;
    assert!(trusted.status.success(), "{}", String::from_utf8_lossy(&trusted.stderr));
    let untrusted = check(format!("https://localhost:{port}"), None).await;
    assert!(!untrusted.status.success(), "a certificate outside the trusted roots was accepted");
    let plain = check(format!("http://localhost:{port}"), None).await;
    assert!(!plain.status.success(), "plain HTTP/2 reached a TLS listener");
    // The in-process facade reaches the core through its private loopback listener.
    core.admin_token().await;
}
