//! The web console in a real browser (headless Chromium over WebDriver) against a live
//! core: signing in (locally and through the OIDC provider's own pages), the portal and
//! its one-time profile download, the admin pages and their live updates, and the
//! attacks a console invites (another site's form riding the cookie, a user opening
//! admin pages). Screenshots of the pages land in `target/console-screenshots/`.

use crate::agents::{SimulatedAgent, alice_serial, fleet};
use crate::browser::Browser;
use crate::kit::{ADMIN_PASSWORD, Backend, Core, USER_PASSWORD, backends};
use gatekey::v1::ClientConnected;
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// Signs `username` in through the sign-in form and waits for the portal.
async fn sign_in(browser: &Browser, core: &Core, username: &str, password: &str) {
    browser.open(&format!("{}/", core.http_base)).await;
    browser.fill("#username", username).await;
    browser.fill("#password", password).await;
    browser.click("form[action='/login'] button[type='submit']").await;
    browser.wait_for_text("Sign out").await;
}

/// The value of the session cookie the browser holds.
async fn session_cookie(browser: &Browser) -> Option<String> {
    let cookies = browser.client.get_all_cookies().await.unwrap();
    cookies.into_iter().find(|cookie| cookie.name() == "gatekey_session").map(|cookie| cookie.value().to_owned())
}

#[tokio::test]
async fn people_sign_in_see_their_portal_and_only_admins_see_admin_pages() {
    for backend in backends() {
        let Some(browser) = Browser::start(1280, 900).await else { return };
        let core = Core::start(backend).await;
        let fleet = fleet(&core, 1, 1).await;

        // A wrong password is refused in words, and keeps the username.
        browser.open(&format!("{}/", core.http_base)).await;
        browser.fill("#username", "alice").await;
        browser.fill("#password", "not-her-password").await;
        browser.click("form[action='/login'] button[type='submit']").await;
        browser.wait_for_text("The username or password is wrong.").await;
        assert_eq!(browser.find("#username").await.prop("value").await.unwrap().as_deref(), Some("alice"));
        browser.screenshot("sign-in").await;

        sign_in(&browser, &core, "alice", USER_PASSWORD).await;
        browser.wait_for_text("My gateways").await;
        assert!(browser.page_text().await.contains("gw0"), "{backend:?}: the granted gateway is not listed");
        assert!(browser.has("button[aria-label='Download a profile for gw0']").await);
        browser.screenshot("portal").await;

        // No admin link, and an admin page is refused in words, with nothing of the page.
        assert!(!browser.has("nav.admin").await, "a user sees admin links");
        browser.open(&format!("{}/admin/users", core.http_base)).await;
        browser.wait_for_text("Administrators only").await;
        assert!(!browser.page_text().await.contains("admin@gatekey.invalid"));
        let refused = reqwest::Client::new()
            .get(format!("{}/admin", core.http_base))
            .header("cookie", format!("gatekey_session={}", session_cookie(&browser).await.unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);

        // Signing out ends the session, not just the cookie.
        let token = session_cookie(&browser).await.expect("no session cookie");
        browser.open(&format!("{}/", core.http_base)).await;
        browser.click("form.signout button").await;
        browser.wait_for_text("Sign in to GateKey").await;
        assert_eq!(session_cookie(&browser).await, None, "the cookie stayed");
        core.get("/auth/session", &token).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        // Signing in again from the page signing out led to works without a reload.
        browser.fill("#username", "alice").await;
        browser.fill("#password", USER_PASSWORD).await;
        browser.click("form[action='/login'] button[type='submit']").await;
        browser.wait_for_text("Sign out").await;
        drop(fleet);
        browser.close().await;
    }
}

#[tokio::test]
async fn single_sign_on_goes_through_the_providers_own_login_page() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let core = Core::start(Backend::Sqlite).await;
    let Some(provider) = crate::oidc::start_provider(&core).await else { return };
    let admin = core.admin_token().await;
    crate::oidc::register(&core, &admin, &provider, &[]).await;

    browser.open(&format!("{}/", core.http_base)).await;
    browser.click("a.provider").await;
    // The provider's own pages: its login form, then its consent form.
    let mut signed_in = false;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if browser.page_text().await.contains("Sign out") {
            signed_in = true;
            break;
        }
        if browser.has("input[name='login']").await {
            browser.fill("input[name='login']", "bob").await;
            browser.fill("input[name='password']", "any").await;
        }
        browser.click("button[type='submit']").await;
    }
    assert!(signed_in, "the login did not come back signed in: {}", browser.page_text().await);
    assert_eq!(browser.path().await, "/");
    browser.wait_for_text("My gateways").await;
    assert_eq!(browser.text(".who").await, "bob@example.com");
    browser.close().await;
}

/// The PEM block between `<tag>` and `</tag>` of a profile.
fn inline_block(profile: &str, tag: &str) -> String {
    let start =
        profile.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no <{tag}> in the profile")) + tag.len() + 2;
    let end = profile.find(&format!("</{tag}>")).unwrap();
    profile[start..end].trim().to_owned()
}

#[tokio::test]
async fn a_user_downloads_a_profile_in_one_click_and_only_once() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    sign_in(&browser, &core, "alice", USER_PASSWORD).await;

    browser.click("button[aria-label='Download a profile for gw0']").await;
    let file = browser.downloaded().await;
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("gatekey-gw0") && name.contains("-until-") && name.ends_with(".ovpn"), "{name}");
    let profile = std::fs::read_to_string(&file).unwrap();
    assert!(profile.contains("remote gw0.example.com 1194"), "{profile}");
    // openssl verifies the certificate against the CA the profile carries.
    let dir = crate::kit::TempDir::new("profile");
    std::fs::write(dir.path().join("ca.pem"), inline_block(&profile, "ca")).unwrap();
    std::fs::write(dir.path().join("cert.pem"), inline_block(&profile, "cert")).unwrap();
    let verified = std::process::Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(dir.path().join("ca.pem"))
        .arg(dir.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let subject = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(dir.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&subject.stdout).contains("alice@example.com"));
    std::fs::remove_file(&file).unwrap();

    // A profile generated elsewhere downloads once from My profiles; the same button
    // again is refused in words.
    core.post("/configs/generate", &fleet.alice, json!({"gateway_id": fleet.gateways[0].0}))
        .await
        .expect(StatusCode::CREATED);
    browser.open(&format!("{}/portal/configs", core.http_base)).await;
    browser.screenshot("profiles").await;
    browser.click("form[action$='/download'] button").await;
    browser.downloaded().await;
    browser.click("form[action$='/download'] button").await;
    browser.wait_for_text("already downloaded").await;
    browser.close().await;
}

#[tokio::test]
async fn signing_in_and_downloading_a_profile_work_with_javascript_off() {
    let Some(browser) = Browser::start_without_javascript().await else { return };
    let core = Core::start(Backend::Sqlite).await;
    let _fleet = fleet(&core, 1, 1).await;
    sign_in(&browser, &core, "alice", USER_PASSWORD).await;
    browser.click("button[aria-label='Download a profile for gw0']").await;
    let profile = std::fs::read_to_string(browser.downloaded().await).unwrap();
    assert!(profile.contains("BEGIN CERTIFICATE") && profile.contains("remote gw0.example.com"), "{profile}");
    // Scripts really were off: the times on My profiles are as the server wrote them,
    // not rewritten into local time.
    browser.open(&format!("{}/portal/configs", core.http_base)).await;
    let time = browser.find("time[data-local]").await;
    assert_eq!(time.text().await.unwrap(), time.attr("datetime").await.unwrap().unwrap(), "a script ran");
    browser.close().await;
}

#[tokio::test]
async fn the_dashboard_shows_a_gateway_come_online_without_a_reload_and_sessions_end_at_a_click() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;
    sign_in(&browser, &core, "admin", ADMIN_PASSWORD).await;
    browser.open(&format!("{}/admin", core.http_base)).await;
    browser.wait_for_text_of("#gateways-online", "0").await;
    // Give the page's event stream a moment to connect before the agent does.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
    browser.wait_for_text_of("#gateways-online", "1").await;
    assert_eq!(browser.text("#gateways-offline").await, "0");
    let session = ClientConnected {
        session_key: "3-1700000000".into(),
        common_name: "alice@example.com".into(),
        serial: serial.clone(),
        vpn_address: "10.8.0.10".into(),
        client_address: "192.0.2.10".into(),
        connected_at: None,
    };
    agent.send(AgentBody::ClientConnected(session)).await;
    browser.wait_for_text_of("#live-sessions-count", "1").await;
    browser.screenshot("dashboard").await;

    browser.open(&format!("{}/admin/sessions", core.http_base)).await;
    browser.wait_for_text("alice@example.com").await;
    browser.screenshot("live-sessions").await;
    browser.click("button[aria-label='Disconnect alice@example.com from gw0']").await;
    let kill = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(CoreBody::KillSession(kill)) = agent.next().await.body {
                return kill;
            }
        }
    })
    .await
    .expect("the agent got no kill");
    assert_eq!((kill.serial.as_str(), kill.reason.as_str()), (serial.as_str(), "disconnected by an administrator"));
    browser.close().await;
}

#[tokio::test]
async fn an_admin_builds_a_network_a_gateway_and_a_rule_from_the_forms() {
    for backend in backends() {
        let Some(browser) = Browser::start(1280, 900).await else { return };
        let core = Core::start(backend).await;
        let admin = core.admin_token().await;
        sign_in(&browser, &core, "admin", ADMIN_PASSWORD).await;

        // A network, first with a CIDR the core refuses: the error sits beside the field.
        browser.open(&format!("{}/admin/networks", core.http_base)).await;
        browser.fill("#name", "office").await;
        browser.fill("#cidrs", "10.20.0.0/33").await;
        browser.click("form[action='/admin/networks'] button[type='submit']").await;
        let problem = browser.text("#cidrs-error").await;
        assert!(problem.contains("not a CIDR"), "{backend:?}: {problem}");
        assert_eq!(browser.find("#cidrs").await.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
        assert_eq!(browser.find("#name").await.prop("value").await.unwrap().as_deref(), Some("office"));
        browser.screenshot("network-error").await;
        browser.fill("#cidrs", "10.20.0.0/16").await;
        browser.click("form[action='/admin/networks'] button[type='submit']").await;
        browser.wait_for_text("10.20.0.0/16").await;

        // A gateway: its token shows once, with the command line to run the agent.
        browser.open(&format!("{}/admin/gateways", core.http_base)).await;
        browser.fill("#name", "office-gw").await;
        browser.fill("#hostname", "vpn.example.com").await;
        browser.click("form[action='/admin/gateways'] button[type='submit']").await;
        let token = browser.text("#agent-token").await;
        assert!(token.starts_with("gkgw_"), "{token}");
        let command = browser.text("#agent-command").await;
        assert!(command.starts_with(&format!("GATEKEY_GATEWAY_TOKEN={token} gatekey-agent run")), "{command}");
        browser.screenshot("gateway-token").await;
        let gateways = core.get("/admin/gateways", &admin).await.expect(StatusCode::OK);
        let gateway_id = gateways.body["data"][0]["id"].as_str().unwrap().to_owned();
        for page in ["/admin/gateways".to_owned(), format!("/admin/gateways/{gateway_id}")] {
            browser.open(&format!("{}{page}", core.http_base)).await;
            browser.wait_for_text("office-gw").await;
            assert!(!browser.client.source().await.unwrap().contains(&token), "{page} shows the token again");
        }
        browser.screenshot("gateway").await;

        // A rule: a destination outside the network is refused beside its field; then one
        // inside is saved.
        let networks = core.get("/admin/networks", &admin).await.expect(StatusCode::OK);
        let network_id = networks.body["data"][0]["id"].as_str().unwrap().to_owned();
        browser.open(&format!("{}/admin/access-rules", core.http_base)).await;
        browser.fill("#name", "intranet").await;
        browser.find("#network_id").await.select_by_value(&network_id).await.unwrap();
        browser.find("#destination_type").await.select_by_value("cidr").await.unwrap();
        browser.fill("#destination", "192.168.0.0/24").await;
        browser.find("#protocol").await.select_by_value("tcp").await.unwrap();
        browser.fill("#port_from", "443").await;
        browser.fill("#groups", "staff").await;
        browser.click("form[action='/admin/access-rules'] button[type='submit']").await;
        let problem = browser.text("#destination-error").await;
        assert!(problem.contains("outside network"), "{backend:?}: {problem}");
        browser.fill("#destination", "10.20.1.0/24").await;
        browser.click("form[action='/admin/access-rules'] button[type='submit']").await;
        browser.wait_for_text("intranet").await;
        let rules = core.get("/admin/access-rules", &admin).await.expect(StatusCode::OK);
        let rule = &rules.body["data"][0];
        assert_eq!((rule["destination"].as_str(), rule["port_from"].as_u64()), (Some("10.20.1.0/24"), Some(443)));
        assert_eq!(rule["groups"], json!(["staff"]));
        browser.screenshot("access-rules").await;
        browser.close().await;
    }
}

#[tokio::test]
async fn every_admin_page_renders_and_is_saved_as_a_screenshot() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let hub = core
        .post("/admin/mesh/hubs", &fleet.admin, json!({"name": "hub1", "hostname": "hub.example.com"}))
        .await
        .expect(StatusCode::CREATED);
    let hub_id = hub.body["data"]["id"].as_str().unwrap().to_owned();
    sign_in(&browser, &core, "admin", ADMIN_PASSWORD).await;
    let gateway_id = &fleet.gateways[0].0;
    let pages = [
        ("users", "/admin/users".to_owned(), "alice"),
        ("user", format!("/admin/users/{}", fleet.alice_id), "alice"),
        ("gateways", "/admin/gateways".to_owned(), "gw0"),
        ("networks", "/admin/networks".to_owned(), "office"),
        ("profiles-admin", "/admin/configs".to_owned(), "Revoke a certificate"),
        ("identity-providers", "/admin/providers".to_owned(), "New provider"),
        ("geo-fence", "/admin/geo-fence".to_owned(), "Check"),
        ("mesh", "/admin/mesh".to_owned(), "hub1"),
        ("mesh-hub", format!("/admin/mesh/{hub_id}"), "hub1"),
        ("sign-ins", "/admin/sign-ins".to_owned(), "alice"),
        ("gateway-delete", format!("/admin/gateways/{gateway_id}/delete"), "Delete"),
        ("api-keys", "/portal/api-keys".to_owned(), "Make a key"),
        ("my-sessions", "/portal/sessions".to_owned(), "not connected"),
        ("hubs", "/portal/hubs".to_owned(), "Mesh hubs"),
    ];
    for (name, path, words) in pages {
        browser.open(&format!("{}{path}", core.http_base)).await;
        browser.wait_for_text(words).await;
        assert!(!browser.page_text().await.contains("went wrong"), "{path}");
        browser.screenshot(name).await;
    }
    browser.close().await;
}

/// Serves one page on a loopback port of its own: another origin of the same site, as
/// a page on a sibling service would be.
async fn serve_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/")
}

#[tokio::test]
async fn another_sites_form_riding_the_cookie_changes_nothing() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    sign_in(&browser, &core, "admin", ADMIN_PASSWORD).await;
    // The same host on another port: the same site, so the browser sends the SameSite=Lax
    // cookie with the post; only the missing token (and the origin) stop it.
    let attacker = serve_page(format!(
        r#"<!doctype html><form method="post" action="{}/admin/networks">
           <input name="name" value="evil"><input name="cidrs" value="10.66.0.0/16">
           <input name="csrf_token" value="guessed"><button id="go" type="submit">Win a prize</button></form>"#,
        core.http_base
    ))
    .await;
    browser.open(&attacker).await;
    browser.click("#go").await;
    browser.wait_for_text("This form cannot be accepted").await;
    let networks = core.get("/admin/networks", &admin).await.expect(StatusCode::OK);
    assert_eq!(networks.body["meta"]["total"], 0, "the forged post created a network");
    browser.close().await;
}

#[tokio::test]
async fn the_console_is_usable_at_phone_width() {
    let Some(browser) = Browser::start(390, 844).await else { return };
    let core = Core::start(Backend::Sqlite).await;
    let _fleet = fleet(&core, 2, 1).await;
    sign_in(&browser, &core, "alice", USER_PASSWORD).await;
    browser.wait_for_text("gw1").await;
    let fits = browser
        .client
        .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the portal scrolls sideways at phone width");
    assert!(browser.find("button[aria-label='Download a profile for gw1']").await.is_displayed().await.unwrap());
    browser.screenshot("portal-phone").await;
    browser.close().await;
}

#[tokio::test]
async fn console_pages_forbid_inline_script_framing_and_caching() {
    let core = Core::start(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let page = client.get(format!("{}/", core.http_base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in to GateKey"), "{html}");
    for script in html.split("<script").skip(1) {
        assert!(script.trim_start().starts_with("src=\"/static/"), "an inline or foreign script: {script}");
    }
    for (path, kind) in [("/static/htmx.min.js", "text/javascript"), ("/static/console.css", "text/css")] {
        let asset = client.get(format!("{}{path}", core.http_base)).send().await.unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert!(asset.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
    }
    // A console form without the token is refused before anything happens.
    let forged = client
        .post(format!("{}/login", core.http_base))
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get("set-cookie").is_none(), "a forged sign-in set a cookie");
}
