//! The `gatekey` client as a user runs it: signing in with a password and through the
//! real OIDC provider's pages (an HTTP client playing the browser), listing, connecting
//! with stock OpenVPN in network namespaces to a real agent and gateway, reaching a
//! protected host, `status`, a certificate renewal the tunnel survives (the gap is
//! measured and printed), `disconnect`, a revocation it explains (made through a second
//! core node on PostgreSQL), and the failures a user meets (a bad server URL, an ended session, no openvpn), each with its exit code.
//!
//! Addresses: core side 10.67.1.1 ↔ gateway 10.67.1.2; gateway 10.67.2.1 ↔ client
//! 10.67.2.2 (which reaches the core through the gateway); gateway 10.67.3.1 ↔
//! protected host 10.67.3.10; VPN pool 10.67.4.0/24.

use crate::gateway_e2e::{LabGateway, lab_gateway, start_gateway, text};
use crate::kit::{Backend, Core, TempDir, USER_PASSWORD, backends, binary};
use crate::netns::{Lab, available, wait_for_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const PROTECTED_HOST: &str = "10.67.3.10";

/// Runs `gatekey` with `args` (in the lab's client namespace when `lab` is given),
/// HOME at `home`, feeding `stdin`; answers exit code, stdout and stderr.
async fn gatekey(lab: Option<&Lab>, home: &Path, runtime: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let program = binary("gatekey");
    let mut command = match lab {
        Some(lab) => {
            let mut command = tokio::process::Command::new("ip");
            command.args(["netns", "exec", lab.ns("client")]).arg(&program);
            command
        }
        None => tokio::process::Command::new(&program),
    };
    command
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("GATEKEY_SERVER")
        .env("GATEKEY_RUNTIME_DIR", runtime)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts `gatekey connect` in the client namespace, its output going to `log`.
fn start_connect(lab: &Lab, home: &Path, runtime: &Path, server: &str, log: &Path) -> tokio::process::Child {
    let command = format!(
        "HOME={} GATEKEY_RUNTIME_DIR={} exec {} --server {server} connect lab --openvpn-option=--disable-dco > {} 2>&1",
        home.display(),
        runtime.display(),
        binary("gatekey").display(),
        log.display()
    );
    tokio::process::Command::new("ip")
        .args(["netns", "exec", lab.ns("client"), "sh", "-c", &command])
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A route in the test's own namespace, removed when dropped (also when the test fails).
struct RootRoute(&'static str);

impl RootRoute {
    fn add(destination: &'static str, via: &str) -> RootRoute {
        let status = std::process::Command::new("ip").args(["route", "replace", destination, "via", via]).status();
        assert!(status.unwrap().success(), "cannot route {destination} via {via}");
        RootRoute(destination)
    }
}

impl Drop for RootRoute {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["route", "del", self.0]).status();
    }
}

#[tokio::test]
async fn a_user_signs_in_connects_stays_connected_across_a_renewal_and_disconnects() {
    if !available(&["openvpn", "ip", "nft", "conntrack", "ping"]) {
        return;
    }
    let mut lab = Lab::create("cli", &["gateway", "client", "protected"]);
    lab.link(None, "10.67.1.1/24", "gateway", "10.67.1.2/24");
    lab.link(Some("gateway"), "10.67.2.1/24", "client", "10.67.2.2/24");
    lab.link(Some("gateway"), "10.67.3.1/24", "protected", "10.67.3.10/24");
    lab.exec("protected", &["ip", "route", "add", "10.67.4.0/24", "via", "10.67.3.1"]);
    lab.exec("gateway", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    // The client reaches the core through the gateway, as a laptop would through its LAN.
    lab.exec("client", &["ip", "route", "add", "default", "via", "10.67.2.1"]);
    let _route = RootRoute::add("10.67.2.0/24", "10.67.1.2");

    // Certificates of a minute, so that the client renews within the test.
    // On PostgreSQL a second core node shares the database; the revocation below goes
    // through it, so the kill reaches the gateway (whose stream is on the first) by the
    // relay between nodes.
    let backend = if backends().contains(&Backend::Postgres) { Backend::Postgres } else { Backend::Sqlite };
    let flags = ["--grpc-listen", "10.67.1.1:0", "--client-cert-ttl-seconds", "60"];
    let core = Core::start_with(backend, &flags).await;
    let other_node = match backend {
        Backend::Postgres => Some(core.join(&flags).await),
        Backend::Sqlite => None,
    };
    let admin = core.admin_token().await;
    let (alice_id, _) = core.create_user(&admin, "alice", &["staff"]).await;
    let LabGateway { token, .. } = lab_gateway(&core, &admin, "10.67", &alice_id, PROTECTED_HOST).await;
    let gateway_dir = TempDir::new("cli-gw");
    let _gateway = start_gateway(&lab, &core, &token, gateway_dir.path(), "10.67.2.1").await;

    let home = TempDir::new("cli-home");
    let runtime = TempDir::new("cli-run");
    let server = format!("http://{}", core.grpc_address);
    let (code, out, err) = gatekey(
        Some(&lab),
        home.path(),
        runtime.path(),
        &["--server", &server, "login", "--password", "--username", "alice"],
        &format!("{USER_PASSWORD}\n"),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Signed in as alice"), "{out}");
    let session_file = home.path().join(".config/gatekey/session.json");
    assert_eq!(std::fs::metadata(&session_file).unwrap().permissions().mode() & 0o777, 0o600);
    let stored = std::fs::read_to_string(&session_file).unwrap();
    assert!(!out.contains("gks_") && !err.contains("gks_") && stored.contains("gks_"), "the token was printed");

    // The server is remembered from the sign-in.
    let (code, out, err) = gatekey(Some(&lab), home.path(), runtime.path(), &["gateways", "--json"], "").await;
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((listed[0]["name"].as_str(), listed[0]["status"].as_str()), (Some("lab"), Some("online")), "{out}");

    let (code, out, err) = gatekey(Some(&lab), home.path(), runtime.path(), &["hubs", "--json"], "").await;
    assert_eq!((code, out.trim()), (0, "[]"), "{err}");
    // A profile for another client; a file already there (readable by all) is replaced
    // and made private.
    let profile = home.path().join("lab.ovpn");
    std::fs::write(&profile, "old").unwrap();
    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) =
        gatekey(Some(&lab), home.path(), runtime.path(), &["config", "la", "-o", &profile.display().to_string()], "")
            .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Wrote a profile for lab"), "{out}");
    let written = std::fs::read_to_string(&profile).unwrap();
    assert!(written.contains("<key>") && written.contains("remote 10.67.2.1 1194"), "{written}");
    assert_eq!(std::fs::metadata(&profile).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, _, err) =
        gatekey(Some(&lab), home.path(), runtime.path(), &["config", "nope", "-o", "x.ovpn"], "").await;
    assert_eq!(code, 4, "{err}");

    let connect_log = home.path().join("connect.log");
    let mut connection = start_connect(&lab, home.path(), runtime.path(), &server, &connect_log);
    assert!(wait_for_text(&connect_log, "Connected to lab", Duration::from_secs(30)).await, "{}", text(&connect_log));
    let said = text(&connect_log);
    assert!(said.contains("tunnel address 10.67.4.") && said.contains("routes: 10.67.3.0/24"), "{said}");
    assert!(lab.reaches("client", PROTECTED_HOST).await, "the protected host is not reachable through the client");
    let connected_at = Instant::now();
    for secret in ["key.pem", "cert.pem"] {
        let mode = std::fs::metadata(runtime.path().join(secret)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }

    let (code, out, err) = gatekey(Some(&lab), home.path(), runtime.path(), &["status", "--json"], "").await;
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((status["gateway"].as_str(), status["state"].as_str()), (Some("lab"), Some("connected")), "{out}");
    assert_eq!(status["routes"], json!(["10.67.3.0/24"]));
    assert!(status["certificate_expires"].as_str().unwrap().starts_with("20"), "{out}");

    // The renewal, at 80% of the minute: ping every 100 ms through it and measure the
    // longest silence.
    let mut last_answer = Instant::now();
    let mut longest_gap = Duration::ZERO;
    while !text(&connect_log).contains("Renewed the certificate") {
        assert!(connected_at.elapsed() < Duration::from_secs(75), "no renewal: {}", text(&connect_log));
        if lab.succeeds("client", "ping", &["-c", "1", "-W", "1", PROTECTED_HOST]).await {
            longest_gap = longest_gap.max(last_answer.elapsed());
            last_answer = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Until traffic flows again after it.
    for _ in 0..100 {
        if lab.pings("client", PROTECTED_HOST).await {
            longest_gap = longest_gap.max(last_answer.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let renewed = text(&connect_log);
    let reported = renewed.lines().find(|line| line.contains("Renewed the certificate")).unwrap_or_default().to_owned();
    println!(
        "certificate renewal: longest silence between pings {:.2} s; the client reports: {reported}",
        longest_gap.as_secs_f64()
    );
    assert!(lab.reaches("client", PROTECTED_HOST).await, "the tunnel did not survive the renewal: {renewed}");
    let (_, out, _) = gatekey(Some(&lab), home.path(), runtime.path(), &["status", "--json"], "").await;
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((status["state"].as_str(), status["renewals"].as_u64()), (Some("connected"), Some(1)), "{out}");

    let (code, out, err) = gatekey(Some(&lab), home.path(), runtime.path(), &["disconnect"], "").await;
    assert_eq!(code, 0, "{out}{err}");
    let exit = tokio::time::timeout(Duration::from_secs(10), connection.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{}", text(&connect_log));
    assert!(text(&connect_log).contains("Disconnected from lab."), "{}", text(&connect_log));
    assert!(!runtime.path().join("key.pem").exists(), "the key material stayed behind");
    let (code, _, err) = gatekey(Some(&lab), home.path(), runtime.path(), &["status"], "").await;
    assert_eq!(code, 8, "{err}");

    // Connected again, the certificate is revoked: the client says why and exits 7.
    let connect_log = home.path().join("connect-again.log");
    let mut connection = start_connect(&lab, home.path(), runtime.path(), &server, &connect_log);
    assert!(wait_for_text(&connect_log, "Connected to lab", Duration::from_secs(30)).await, "{}", text(&connect_log));
    let (_, out, _) = gatekey(Some(&lab), home.path(), runtime.path(), &["status", "--json"], "").await;
    let serial = serde_json::from_str::<Value>(&out).unwrap()["certificate_serial"].as_str().unwrap().to_owned();
    other_node
        .as_ref()
        .unwrap_or(&core)
        .post("/admin/pki/revoke", &admin, json!({"serial": serial, "reason": "key_compromise"}))
        .await
        .expect(StatusCode::OK);
    let Ok(exit) = tokio::time::timeout(Duration::from_secs(20), connection.wait()).await else {
        panic!(
            "the client kept going: {}\nagent:\n{}",
            text(&connect_log),
            text(&gateway_dir.path().join("agent.log"))
        );
    };
    let exit = exit.unwrap();
    let said = text(&connect_log);
    assert_eq!(exit.code(), Some(7), "{said}");
    assert!(said.contains("revoked"), "the client did not say why: {said}");
}

#[tokio::test]
async fn sign_in_through_the_browser_and_the_failures_a_user_meets() {
    let core = Core::start(Backend::Sqlite).await;
    let Some(provider) = crate::oidc::start_provider(&core).await else { return };
    let admin = core.admin_token().await;
    crate::oidc::register(&core, &admin, &provider, &[]).await;
    let home = TempDir::new("cli-home");
    let runtime = TempDir::new("cli-run");
    let server = format!("http://{}", core.grpc_address);

    // `gatekey login`: it prints the URL, listens, and takes the code the browser brings.
    let mut login = tokio::process::Command::new(binary("gatekey"))
        .args(["--server", &server, "login", "--no-browser"])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut errors = tokio::io::BufReader::new(login.stderr.take().unwrap());
    let mut login_url = String::new();
    while !login_url.starts_with("http") {
        let mut line = String::new();
        use tokio::io::AsyncBufReadExt;
        assert!(tokio::time::timeout(Duration::from_secs(10), errors.read_line(&mut line)).await.unwrap().unwrap() > 0);
        login_url = line.trim().to_owned();
    }
    let browser = crate::oidc::browser();
    let callback = crate::oidc::authorize_from(&browser, &core, &provider, &login_url, "bob", "normal").await;
    let consent = browser.get(&callback).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(format!("{}{consent}", core.http_base)).send().await.unwrap().text().await.unwrap();
    let hidden = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        page.split(&marker).nth(1).unwrap().split('"').next().unwrap().to_owned()
    };
    let answered = browser
        .post(format!("{}/client-login", core.http_base))
        .header("origin", core.http_base.as_str())
        .form(&[("csrf_token", hidden("csrf_token")), ("flow", hidden("flow")), ("decision", "allow".into())])
        .send()
        .await
        .unwrap();
    let loopback = answered.headers()["location"].to_str().unwrap().to_owned();
    assert!(loopback.starts_with("http://127.0.0.1:"), "{loopback}");
    let reached = reqwest::get(&loopback).await.unwrap().text().await.unwrap();
    assert!(reached.contains("Signed in"), "{reached}");
    let output = tokio::time::timeout(Duration::from_secs(10), login.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("Signed in as bob@example.com"));
    // The code the browser carried is spent: replaying it gets nothing.
    let code = reqwest::Url::parse(&loopback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let replay = core
        .call(
            reqwest::Method::POST,
            "/auth/client/token",
            None,
            Some(json!({"code": code, "code_verifier": "x".repeat(43)})),
        )
        .await;
    replay.expect_error(StatusCode::UNAUTHORIZED, "login_failed");

    let (code, out, err) = gatekey(None, home.path(), runtime.path(), &["gateways"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("No gateway is granted to you"), "{out}");

    // A bad server URL, a server that does not answer: exit 5, in words.
    let (code, _, err) =
        gatekey(None, home.path(), runtime.path(), &["--server", "vpn.example.com", "gateways"], "").await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("is not a server URL"), "{err}");
    let (code, _, err) =
        gatekey(None, home.path(), runtime.path(), &["--server", "http://127.0.0.1:9", "gateways"], "").await;
    assert_eq!(code, 5, "{err}");
    // No openvpn: exit 6, saying what to install.
    let (code, _, err) =
        gatekey(None, home.path(), runtime.path(), &["connect", "--openvpn", "/nonexistent/openvpn"], "").await;
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("install OpenVPN"), "{err}");
    // Without root, connecting is refused with what to do (exit 6); the session is the
    // user's own, copied into their home.
    if available(&["setpriv"]) {
        let user_home = TempDir::new("cli-user");
        let config = user_home.path().join(".config/gatekey");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::copy(home.path().join(".config/gatekey/session.json"), config.join("session.json")).unwrap();
        for owned in [user_home.path(), &user_home.path().join(".config"), &config, &config.join("session.json")] {
            std::os::unix::fs::chown(owned, Some(65534), Some(65534)).unwrap();
        }
        let output = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
            .arg(format!("HOME={}", user_home.path().display()))
            .arg(format!("GATEKEY_RUNTIME_DIR={}", user_home.path().join("run").display()))
            .arg(binary("gatekey"))
            .arg("connect")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(6), "{err}");
        assert!(err.contains("sudo gatekey connect"), "{err}");
    }
    // The session ends on the server: exit 3, asking to sign in again; logout then
    // forgets it here.
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join(".config/gatekey/session.json")).unwrap())
            .unwrap();
    let token = stored["token"].as_str().unwrap();
    core.call(reqwest::Method::POST, "/auth/logout", Some(token), None).await.expect(StatusCode::OK);
    let (code, _, err) = gatekey(None, home.path(), runtime.path(), &["gateways"], "").await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("gatekey login"), "{err}");
    let (code, out, _) = gatekey(None, home.path(), runtime.path(), &["logout"], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("Signed out"), "{out}");
    let (code, _, err) = gatekey(None, home.path(), runtime.path(), &["gateways"], "").await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not signed in"), "{err}");
}
