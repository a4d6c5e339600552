//! Single sign-on with OpenID Connect against a real, independent provider
//! (`oidc-provider` from the npm registry, on loopback), including the ways a login
//! must fail closed.

use crate::kit::{Backend, Core, missing};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

const CLIENT_SECRET: &str = "gatekey-test-client-secret";

/// The provider process (killed on drop) and its issuer URL.
pub(crate) struct Provider {
    process: Child,
    issuer: String,
    script: std::path::PathBuf,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

pub(crate) async fn start_provider(core: &Core) -> Option<Provider> {
    let Ok(modules) = std::env::var("GATEKEY_TEST_OIDC_DIR") else {
        missing("oidc-provider from npm (GATEKEY_TEST_OIDC_DIR)");
        return None;
    };
    // ES modules resolve packages next to the script: run a copy inside the install dir,
    // one per provider (tests run concurrently, and each removes its copy when done).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = std::path::Path::new(&modules).join(format!("provider-{}-{port}.mjs", std::process::id()));
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.mjs"), &script).unwrap();
    let mut process = tokio::process::Command::new("node")
        .arg(&script)
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", format!("{}/api/v1/auth/oidc/callback", core.http_base))
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line()).await;
    assert!(
        matches!(ready, Ok(Ok(Some(ref line))) if line.contains("ready")),
        "the OIDC provider did not start: {ready:?}"
    );
    // Keep reading: a closed pipe would kill the provider at its next line of output.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(Provider { process, issuer: format!("http://127.0.0.1:{port}"), script })
}

/// The settings of an OIDC provider `name` at the test provider.
fn provider_body(name: &str, provider: &Provider, allowed_groups: &[&str]) -> Value {
    json!({"name": name, "type": "oidc", "issuer_url": provider.issuer, "client_id": "gatekey",
           "client_secret": CLIENT_SECRET, "scopes": ["openid", "email", "profile", "groups"],
           "admin_group": "vpn-admins", "allowed_groups": allowed_groups})
}

/// Registers the test provider as `corp`; returns its id.
pub(crate) async fn register(core: &Core, admin: &str, provider: &Provider, allowed_groups: &[&str]) -> String {
    register_as(core, admin, provider_body("corp", provider, allowed_groups)).await
}

async fn register_as(core: &Core, admin: &str, body: Value) -> String {
    let reply = core.post("/admin/auth-providers", admin, body).await.expect(StatusCode::CREATED);
    reply.body["data"]["id"].as_str().unwrap().to_owned()
}

/// A browser with a cookie jar that follows redirects by hand.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

fn location(response: &reqwest::Response, base: &str) -> String {
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    if location.starts_with("http") { location } else { format!("{base}{location}") }
}

/// Runs the provider side of a login through `corp` as `account`; returns GateKey's
/// callback URL.
async fn authorize(browser: &reqwest::Client, core: &Core, provider: &Provider, account: &str, mode: &str) -> String {
    authorize_through(browser, core, provider, "corp", account, mode).await
}

/// Like [`authorize`], through the GateKey provider named `name`.
async fn authorize_through(
    browser: &reqwest::Client,
    core: &Core,
    provider: &Provider,
    name: &str,
    account: &str,
    mode: &str,
) -> String {
    let start_url = format!("{}/api/v1/auth/oidc/login?provider={name}&redirect_to=/welcome", core.http_base);
    authorize_from(browser, core, provider, &start_url, account, mode).await
}

/// Runs a login that starts at `start_url` through the test provider as `account`;
/// returns GateKey's callback URL.
pub(crate) async fn authorize_from(
    browser: &reqwest::Client,
    core: &Core,
    provider: &Provider,
    start_url: &str,
    account: &str,
    mode: &str,
) -> String {
    let start = browser.get(start_url).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let login_cookie = start
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .any(|c| c.starts_with("gatekey_login=") && c.contains("Path=/api/v1/auth") && c.contains("HttpOnly"));
    assert!(login_cookie, "the login start sets no login cookie");
    let mut url = location(&start, &core.http_base);
    assert!(url.starts_with(&provider.issuer), "{url}");
    browser.post(format!("{}/__mode?mode={mode}", provider.issuer)).send().await.unwrap();
    let callback = format!("{}/api/v1/auth/oidc/callback", core.http_base);
    for _ in 0..20 {
        if url.starts_with(&callback) {
            return url;
        }
        let response = browser.get(&url).send().await.unwrap();
        if response.status().is_redirection() {
            url = location(&response, &provider.issuer);
            continue;
        }
        let page = response.text().await.unwrap();
        let form = if page.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", account), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let submitted = browser.post(&url).form(&form).send().await.unwrap();
        assert!(submitted.status().is_redirection(), "interaction refused: {}", submitted.status());
        url = location(&submitted, &provider.issuer);
    }
    panic!("the provider never redirected back");
}

/// Completes a login in GateKey; returns the response (a redirect).
async fn finish(browser: &reqwest::Client, callback: &str) -> reqwest::Response {
    browser.get(callback).send().await.unwrap()
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| cookie.strip_prefix("gatekey_session="))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
        .filter(|token| !token.is_empty())
}

async fn user_count(core: &Core, admin: &str) -> u64 {
    core.get("/admin/users", admin).await.body["meta"]["total"].as_u64().unwrap()
}

#[tokio::test]
async fn oidc_login_creates_users_with_groups_and_admin_role_then_logs_out() {
    for backend in crate::kit::backends() {
        let core = Core::start(backend).await;
        let Some(provider) = start_provider(&core).await else { return };
        let admin = core.admin_token().await;
        register(&core, &admin, &provider, &[]).await;

        let alice = browser();
        let callback = authorize(&alice, &core, &provider, "alice", "normal").await;
        let done = finish(&alice, &callback).await;
        assert_eq!(done.status(), StatusCode::FOUND);
        assert_eq!(done.headers()[LOCATION], "/welcome");
        let token = session_cookie(&done).expect("a session cookie");
        let session = core.get("/auth/session", &token).await.expect(StatusCode::OK);
        let user = &session.body["data"]["user"];
        assert_eq!((user["email"].as_str(), user["provider"].as_str()), (Some("alice@example.com"), Some("corp")));
        assert_eq!(user["groups"], json!(["staff", "vpn-admins"]));
        assert_eq!(user["is_admin"], true, "the provider's admin group makes an admin");
        assert_eq!(user["name"], "Alice Admin");

        let bob = browser();
        let callback = authorize(&bob, &core, &provider, "bob", "normal").await;
        let bob_token = session_cookie(&finish(&bob, &callback).await).unwrap();
        let bob_user = core.get("/auth/session", &bob_token).await.body["data"]["user"].clone();
        assert_eq!(bob_user["is_admin"], false);
        // A replayed callback (same state) opens nothing.
        let replay = finish(&bob, &callback).await;
        assert_eq!(replay.headers()[LOCATION], "/?login_error=login_failed");
        assert!(session_cookie(&replay).is_none());

        core.call(reqwest::Method::POST, "/auth/logout", Some(&token), None).await.expect(StatusCode::OK);
        core.get("/auth/session", &token).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

        let record = core.dump_database().await;
        assert!(record.contains("alice@example.com") && record.contains("corp"));
        assert!(!record.contains(&token) && !record.contains(&bob_token), "a session token was stored");
        assert!(!record.contains(CLIENT_SECRET), "the client secret is stored in plaintext");
    }
}

#[tokio::test]
async fn oidc_logins_fail_closed() {
    let core = Core::start(Backend::Sqlite).await;
    let Some(mut provider) = start_provider(&core).await else { return };
    let admin = core.admin_token().await;
    register(&core, &admin, &provider, &["staff"]).await;
    let users_before = user_count(&core, &admin).await;

    // Tokens the provider mangles on the way: each is refused and opens no session.
    for mode in ["tamper_signature", "wrong_audience", "expired", "wrong_nonce"] {
        let browser = browser();
        let callback = authorize(&browser, &core, &provider, "alice", mode).await;
        let done = browser.get(&callback).header(ACCEPT, "application/json").send().await.unwrap();
        assert_eq!(done.status(), StatusCode::UNAUTHORIZED, "{mode}");
        assert!(session_cookie(&done).is_none(), "{mode}");
        let body: Value = done.json().await.unwrap();
        assert_eq!(body["error"]["code"], "login_failed", "{mode}: {body}");
    }
    assert_eq!(user_count(&core, &admin).await, users_before, "a refused login created a user");

    // A state GateKey never issued.
    let stranger = browser();
    let forged =
        finish(&stranger, &format!("{}/api/v1/auth/oidc/callback?code=abc&state=forged", core.http_base)).await;
    assert_eq!(forged.headers()[LOCATION], "/?login_error=login_failed");
    assert!(session_cookie(&forged).is_none());

    // Outside the allowed groups.
    let eve = browser();
    let callback = authorize(&eve, &core, &provider, "eve", "normal").await;
    let refused = finish(&eve, &callback).await;
    assert_eq!(refused.headers()[LOCATION], "/?login_error=login_failed");
    assert_eq!(user_count(&core, &admin).await, users_before);

    // A geo-fence refusing the address (loopback here) refuses a valid identity too.
    core.post("/admin/geo-fence/rules", &admin, json!({"action": "deny", "cidrs": ["127.0.0.0/8"]}))
        .await
        .expect(StatusCode::CREATED);
    core.put("/admin/geo-fence/settings", &admin, json!({"enabled": true})).await.expect(StatusCode::OK);
    let fenced = browser();
    let callback = authorize(&fenced, &core, &provider, "alice", "normal").await;
    let done = fenced.get(&callback).header(ACCEPT, "application/json").send().await.unwrap();
    assert_eq!(done.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&done).is_none());
    let body: Value = done.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("geo-fence"), "{body}");
    core.put("/admin/geo-fence/settings", &admin, json!({"enabled": false})).await.expect(StatusCode::OK);

    // No open redirects.
    let open = browser()
        .get(format!("{}/api/v1/auth/oidc/login?redirect_to=https://evil.example/", core.http_base))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::BAD_REQUEST);

    // The provider goes down: a clear 503, nothing else.
    provider.process.kill().await.unwrap();
    let down = browser()
        .get(format!("{}/api/v1/auth/oidc/login?provider=corp", core.http_base))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_unavailable", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("corp"));
}

/// Signs in through `name` as `account` in a fresh browser; the JSON answer.
async fn json_login(core: &Core, provider: &Provider, name: &str, account: &str) -> (StatusCode, Value) {
    let browser = browser();
    let callback = authorize_through(&browser, core, provider, name, account, "normal").await;
    let done = browser.get(&callback).header(ACCEPT, "application/json").send().await.unwrap();
    (done.status(), done.json().await.unwrap())
}

/// Changes an account's e-mail (and whether it is verified) at the test provider.
async fn set_claims(provider: &Provider, account: &str, email: &str, verified: bool) {
    reqwest::Client::new()
        .post(format!("{}/__claims?account={account}&email={email}&email_verified={verified}", provider.issuer))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// Account linking as the outside review attacked it: an e-mail that matches a local
/// account (the bootstrap admin's included), an unverified e-mail, a provider named
/// `local`, a second provider claiming an account, and a callback carried into another
/// browser. Identities are keyed by (provider, subject).
#[tokio::test]
async fn oidc_accounts_are_keyed_by_subject_and_linked_only_when_safe() {
    for backend in crate::kit::backends() {
        let core = Core::start(backend).await;
        let Some(provider) = start_provider(&core).await else { return };
        let admin = core.admin_token().await;
        register(&core, &admin, &provider, &[]).await;

        // A provider cannot take a reserved name.
        let message = core
            .post("/admin/auth-providers", &admin, provider_body("local", &provider, &[]))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.contains("name") && message.contains("reserved"), "{message}");

        // An IdP e-mail equal to a local account's, even verified, signs into nothing;
        // the bootstrap admin keeps its role and groups.
        let (linda_id, _) = core.create_user(&admin, "linda", &["finance"]).await;
        set_claims(&provider, "bob", "linda@example.com", true).await;
        let (status, body) = json_login(&core, &provider, "corp", "bob").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("local account"), "{body}");
        let (status, body) = json_login(&core, &provider, "corp", "mallory").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("local account"), "{body}");
        let users = core.get("/admin/users?per_page=100", &admin).await.body["data"].clone();
        let find = |id_or_name: &str| {
            users
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["id"] == id_or_name || u["username"] == id_or_name)
                .unwrap()
                .clone()
        };
        assert_eq!(find(&linda_id)["groups"], json!(["finance"]));
        assert_eq!(
            (find("admin")["is_admin"].as_bool(), find("admin")["provider"].as_str()),
            (Some(true), Some("local"))
        );
        core.admin_token().await;

        // The same subject keeps its account when its e-mail changes.
        let (status, first) = json_login(&core, &provider, "corp", "alice").await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let alice_id = first["data"]["user"]["id"].as_str().unwrap().to_owned();
        set_claims(&provider, "alice", "alice.new@example.com", true).await;
        let (status, again) = json_login(&core, &provider, "corp", "alice").await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["data"]["user"]["id"], alice_id.as_str());
        assert_eq!(again["data"]["user"]["email"], "alice.new@example.com");

        // A second provider claiming that e-mail links only when it is set to link and so
        // is the provider that vouched for the account's e-mail.
        let corp_id =
            core.get("/admin/auth-providers", &admin).await.body["data"][0]["id"].as_str().unwrap().to_owned();
        let mut first = provider_body("corp", &provider, &[]);
        let mut second = provider_body("corp2", &provider, &[]);
        let second_id = register_as(&core, &admin, second.clone()).await;
        let (status, body) = json_login(&core, &provider, "corp2", "alice").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("link by e-mail"), "{body}");
        second["link_by_email"] = json!(true);
        let saved = core.put(&format!("/admin/auth-providers/{second_id}"), &admin, second.clone()).await;
        assert_eq!(saved.expect(StatusCode::OK).body["data"]["link_by_email"], true);
        let (status, body) = json_login(&core, &provider, "corp2", "alice").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "linked into an account vouched for by a non-linking provider");
        assert!(body["error"]["message"].as_str().unwrap().contains("link by e-mail"), "{body}");
        first["link_by_email"] = json!(true);
        core.put(&format!("/admin/auth-providers/{corp_id}"), &admin, first.clone()).await.expect(StatusCode::OK);
        let (status, linked) = json_login(&core, &provider, "corp2", "alice").await;
        assert_eq!(status, StatusCode::OK, "{linked}");
        assert_eq!(linked["data"]["user"]["id"], alice_id.as_str(), "linking made a second account");

        // An unverified e-mail signs in only where allowed, and never links either way.
        set_claims(&provider, "eve", "eve@example.com", false).await;
        let (status, body) = json_login(&core, &provider, "corp", "eve").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not verified"), "{body}");
        second["allow_unverified_email"] = json!(true);
        core.put(&format!("/admin/auth-providers/{second_id}"), &admin, second.clone()).await.expect(StatusCode::OK);
        let (status, eve) = json_login(&core, &provider, "corp2", "eve").await;
        assert_eq!(status, StatusCode::OK, "{eve}");
        assert_eq!(eve["data"]["user"]["email"], "eve@example.com");
        set_claims(&provider, "bob", "eve@example.com", false).await;
        first["allow_unverified_email"] = json!(true);
        core.put(&format!("/admin/auth-providers/{corp_id}"), &admin, first.clone()).await.expect(StatusCode::OK);
        let (status, body) = json_login(&core, &provider, "corp", "bob").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "an unverified e-mail linked an account: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("verified"), "{body}");
        // Nor is an account whose e-mail no provider vouched for a target, even for a
        // verified e-mail through a linking provider: its holder could be anyone.
        set_claims(&provider, "bob", "eve@example.com", true).await;
        let (status, body) = json_login(&core, &provider, "corp", "bob").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a verified login was linked into an unvouched account: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("link by e-mail"), "{body}");

        // A provider's new issuer makes its old subjects mean nothing: they are forgotten.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(core.storage().1).await.unwrap();
        let linked = |pool: sqlx::AnyPool, id: String| async move {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM external_identities WHERE provider_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            count
        };
        assert_eq!(linked(pool.clone(), second_id.clone()).await, 2, "alice and eve through corp2");
        second["issuer_url"] = json!("https://elsewhere.example");
        core.put(&format!("/admin/auth-providers/{second_id}"), &admin, second.clone()).await.expect(StatusCode::OK);
        assert_eq!(linked(pool.clone(), second_id.clone()).await, 0);
        pool.close().await;

        // A callback carried into another browser signs no one in, nor spends the state:
        // the browser that started the login still finishes it.
        let starter = browser();
        let callback = authorize(&starter, &core, &provider, "alice", "normal").await;
        let elsewhere = browser().get(&callback).header(ACCEPT, "application/json").send().await.unwrap();
        assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
        assert!(session_cookie(&elsewhere).is_none());
        let body: Value = elsewhere.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("another browser"), "{body}");
        let back_home = finish(&starter, &callback).await;
        assert_eq!(back_home.headers()[LOCATION], "/welcome");
        assert!(session_cookie(&back_home).is_some());
    }
}

#[tokio::test]
async fn sign_in_methods_share_one_limit_per_address() {
    let core = Core::start_with(Backend::Sqlite, &["--auth-rate-limit-per-minute", "5"]).await;
    let login = || {
        core.call(
            reqwest::Method::POST,
            "/auth/local/login",
            None,
            Some(json!({"username": "admin", "password": "wrong-password-1"})),
        )
    };
    for _ in 0..4 {
        login().await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // The OIDC start counts against the same budget (it fails: no provider).
    core.call(reqwest::Method::GET, "/auth/oidc/login", None, None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let limited = login().await;
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    limited.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn providers_are_validated_admin_only_and_can_come_from_a_file() {
    let dir = crate::kit::TempDir::new("providers");
    let file = dir.path().join("providers.toml");
    let metadata = dir.path().join("idp-metadata.xml");
    std::fs::write(
        &metadata,
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
    )
    .unwrap();
    std::fs::write(
        &file,
        format!(
            "[[oidc]]\nname = \"filed\"\nissuer_url = \"https://login.example.com\"\nclient_id = \"gk\"\n\
             client_secret_env = \"GATEKEY_TEST_FILED_SECRET\"\nadmin_group = \"ops\"\n\n\
             [[saml]]\nname = \"filed-saml\"\nmetadata_file = \"{}\"\ngroups_attribute = \"roles\"\n",
            metadata.display()
        ),
    )
    .unwrap();
    let core = {
        let data = crate::kit::TempDir::new("core");
        let url = crate::kit::fresh_database_url(Backend::Sqlite, data.path()).await;
        let mut command = Core::command(data.path(), &url, &["--providers-file", &file.to_string_lossy()]);
        command.env("GATEKEY_TEST_FILED_SECRET", "filed-secret-value");
        Core::launch_command(command, data, url).await
    };
    let admin = core.admin_token().await;
    let listed = core.get("/admin/auth-providers", &admin).await.expect(StatusCode::OK);
    let filed = &listed.body["data"][0];
    assert_eq!((filed["name"].as_str(), filed["type"].as_str()), (Some("filed"), Some("oidc")));
    let filed_saml = &listed.body["data"][1];
    assert_eq!((filed_saml["name"].as_str(), filed_saml["type"].as_str()), (Some("filed-saml"), Some("saml")));
    assert_eq!(filed_saml["groups_claim"], "roles");
    assert!(filed_saml["saml_idp_metadata"].as_str().unwrap().contains("https://idp.example.com"));
    assert_eq!(filed["scopes"], json!(["openid", "email", "profile"]));
    assert!(filed.get("client_secret").is_none());
    assert!(!core.dump_database().await.contains("filed-secret-value"), "the client secret is stored in plaintext");

    let (_, user) = core.create_user(&admin, "plain", &[]).await;
    let body = json!({"name": "x", "type": "oidc", "issuer_url": "https://idp.example.com", "client_id": "c"});
    core.post("/admin/auth-providers", &user, body.clone()).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
    for (patch, field) in [
        (json!({"type": "ldap"}), "type"),
        (json!({"issuer_url": "not a url"}), "issuer_url"),
        (json!({"issuer_url": "ftp://idp.example.com"}), "issuer_url"),
        (json!({"client_id": ""}), "client_id"),
        (json!({"scopes": ["openid", "bad scope"]}), "scopes"),
        (
            json!({"type": "saml", "saml_idp_metadata": "<nope/>", "issuer_url": "", "client_id": ""}),
            "saml_idp_metadata",
        ),
        (json!({"name": "bad name"}), "name"),
        // Settings of the other kind are refused, not silently dropped.
        (json!({"type": "saml", "saml_idp_metadata": "<nope/>"}), "issuer_url: applies to oidc providers only"),
        (json!({"saml_entity_id": "https://sp.example"}), "saml_entity_id: applies to saml providers only"),
        (json!({"client_secret": "s".repeat(4097)}), "client_secret"),
    ] {
        let mut request = body.clone();
        for (key, value) in patch.as_object().unwrap() {
            request[key] = value.clone();
        }
        let reply = core.post("/admin/auth-providers", &admin, request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{patch}: {}", reply.body);
        assert!(reply.body["error"]["message"].as_str().unwrap().contains(field), "{patch}: {}", reply.body);
    }
    core.post(
        "/admin/auth-providers",
        &admin,
        json!({"name": "filed", "type": "oidc", "issuer_url": "https://a.example", "client_id": "c"}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
    let id = filed["id"].as_str().unwrap();
    core.put(
        &format!("/admin/auth-providers/{id}"),
        &admin,
        json!({"name": "filed", "type": "oidc", "issuer_url": "https://b.example", "client_id": "c2"}),
    )
    .await
    .expect(StatusCode::OK);
    core.delete(&format!("/admin/auth-providers/{id}"), &admin).await.expect(StatusCode::OK);
    core.delete(&format!("/admin/auth-providers/{id}"), &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}
