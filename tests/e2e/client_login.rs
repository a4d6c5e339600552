//! A native client's sign-in in the system browser (RFC 8252), with an HTTP client
//! playing the browser: through the real OIDC provider and through SAML, the consent
//! page, the one-time code at the loopback URL, and its exchange with the verifier;
//! and the attacks: a replayed code, a stolen code without its verifier, a refused
//! consent, a consent forged from another site, a code sent anywhere but loopback.

use crate::kit::{Backend, Core, Reply};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, ORIGIN};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A verifier and its challenge.
fn pkce(seed: u8) -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode([seed; 40]);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Starts a client sign-in; answers the login URL.
async fn start(core: &Core, challenge: &str, provider: &str) -> String {
    let body = json!({"provider": provider, "redirect_uri": "http://127.0.0.1:53682/callback",
                      "code_challenge": challenge, "state": "client-state-1", "client_name": "gatekey on laptop"});
    let reply = core.call(reqwest::Method::POST, "/auth/client/start", None, Some(body)).await.expect(StatusCode::OK);
    reply.body["data"]["login_url"].as_str().unwrap().to_owned()
}

/// The value of the hidden `name` field of a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {name} on the page:\n{page}")) + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// On the consent page the browser landed on (`consent`, a same-site path), answers
/// `decision`; returns where the browser is sent (the client's loopback URL).
async fn answer(core: &Core, browser: &reqwest::Client, consent: &str, decision: &str) -> reqwest::Url {
    let page = browser.get(format!("{}{consent}", core.http_base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("form-action 'self' http://127.0.0.1:*"), "{policy}");
    let page = page.text().await.unwrap();
    assert!(page.contains("gatekey on laptop") && page.contains("http://127.0.0.1:53682/callback"), "{page}");
    let form =
        [("csrf_token", hidden(&page, "csrf_token")), ("flow", hidden(&page, "flow")), ("decision", decision.into())];
    let answered = browser
        .post(format!("{}/client-login", core.http_base))
        .header(ORIGIN, core.http_base.as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::SEE_OTHER, "{}", answered.text().await.unwrap());
    reqwest::Url::parse(answered.headers()[LOCATION].to_str().unwrap()).unwrap()
}

fn query(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

async fn exchange(core: &Core, code: &str, verifier: &str) -> Reply {
    core.call(reqwest::Method::POST, "/auth/client/token", None, Some(json!({"code": code, "code_verifier": verifier})))
        .await
}

#[tokio::test]
async fn a_client_signs_in_through_the_browser_with_a_code_only_its_verifier_redeems() {
    let core = Core::start(Backend::Sqlite).await;
    let Some(provider) = crate::oidc::start_provider(&core).await else { return };
    let admin = core.admin_token().await;
    crate::oidc::register(&core, &admin, &provider, &[]).await;

    // Where codes may go: loopback listeners only.
    for bad in ["http://localhost:53682/callback", "https://127.0.0.1:53682/", "http://evil.example:53682/"] {
        let body = json!({"redirect_uri": bad, "code_challenge": pkce(1).1});
        core.call(reqwest::Method::POST, "/auth/client/start", None, Some(body))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }

    let (verifier, challenge) = pkce(7);
    let login_url = start(&core, &challenge, "").await;
    let browser = crate::oidc::browser();
    let callback = crate::oidc::authorize_from(&browser, &core, &provider, &login_url, "bob", "normal").await;
    let signed_in = browser.get(&callback).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    let consent = signed_in.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(consent.starts_with("/client-login?flow="), "{consent}");

    // Another site's form cannot answer for the user.
    let page = browser.get(format!("{}{consent}", core.http_base)).send().await.unwrap().text().await.unwrap();
    let forged = browser
        .post(format!("{}/client-login", core.http_base))
        .header(ORIGIN, "https://evil.example")
        .form(&[
            ("csrf_token", hidden(&page, "csrf_token")),
            ("flow", hidden(&page, "flow")),
            ("decision", "allow".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let back = answer(&core, &browser, &consent, "allow").await;
    assert_eq!((back.host_str(), back.port(), back.path()), (Some("127.0.0.1"), Some(53682), "/callback"));
    assert_eq!(query(&back, "state").as_deref(), Some("client-state-1"));
    let code = query(&back, "code").expect("no code");

    // The code with a wrong verifier is refused, and that spends it: the right verifier
    // then comes too late (a code works once, right or wrong).
    let stolen = exchange(&core, &code, &pkce(8).0).await;
    stolen.expect_error(StatusCode::UNAUTHORIZED, "login_failed");
    exchange(&core, &code, &verifier).await.expect_error(StatusCode::UNAUTHORIZED, "login_failed");

    // A fresh sign-in: the code and its verifier open a session of the client's own.
    let (verifier, challenge) = pkce(9);
    let login_url = start(&core, &challenge, "corp").await;
    let callback = crate::oidc::authorize_from(&browser, &core, &provider, &login_url, "bob", "normal").await;
    let consent = browser.get(&callback).send().await.unwrap().headers()[LOCATION].to_str().unwrap().to_owned();
    let back = answer(&core, &browser, &consent, "allow").await;
    let code = query(&back, "code").unwrap();
    let signed_in = exchange(&core, &code, &verifier).await.expect(StatusCode::OK);
    let token = signed_in.body["data"]["session_token"].as_str().unwrap().to_owned();
    let session = core.get("/auth/session", &token).await.expect(StatusCode::OK);
    assert_eq!(session.body["data"]["user"]["email"], "bob@example.com");
    // Replayed: refused.
    exchange(&core, &code, &verifier).await.expect_error(StatusCode::UNAUTHORIZED, "login_failed");
    // The consent page of an answered flow is gone.
    let again = browser.get(format!("{}{consent}", core.http_base)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // Refused consent: the client hears `access_denied`, and there is no code.
    let (_, challenge) = pkce(10);
    let login_url = start(&core, &challenge, "corp").await;
    let callback = crate::oidc::authorize_from(&browser, &core, &provider, &login_url, "bob", "normal").await;
    let consent = browser.get(&callback).send().await.unwrap().headers()[LOCATION].to_str().unwrap().to_owned();
    let back = answer(&core, &browser, &consent, "deny").await;
    assert_eq!((query(&back, "error").as_deref(), query(&back, "code")), (Some("access_denied"), None));

    // Every exchange is on the sign-in record.
    let record = core.get("/admin/sign-ins?per_page=100", &admin).await.expect(StatusCode::OK);
    let client_attempts: Vec<&Value> =
        record.body["data"].as_array().unwrap().iter().filter(|row| row["provider"] == "client").collect();
    assert_eq!(client_attempts.len(), 4, "{}", record.body);
}

#[tokio::test]
async fn a_client_signs_in_through_saml_the_same_way() {
    let Some(setup) = crate::saml::setup(Backend::Sqlite).await else { return };
    let core = &setup.core;
    let (verifier, challenge) = pkce(3);
    let login_url = start(core, &challenge, "corp-saml").await;
    let login = crate::saml::start_from(core, &login_url).await;
    let assertion = setup.assertion("_client1", &login, "carol@example.com", crate::saml::X509_KEY_INFO);
    let xml = crate::saml::signed_response(setup.dir.path(), &assertion, &setup.idp_key, Some(&setup.idp_cert));
    let (status, accepted) = crate::saml::post(core, &login.relay_state, &xml).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let finish_url = accepted["data"]["finish_url"].as_str().unwrap();
    let finished = login.browser.get(format!("{}{finish_url}", core.http_base)).send().await.unwrap();
    assert_eq!(finished.status(), StatusCode::FOUND);
    let consent = finished.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(consent.starts_with("/client-login?flow="), "{consent}");
    let back = answer(core, &login.browser, &consent, "allow").await;
    let signed_in = exchange(core, &query(&back, "code").unwrap(), &verifier).await.expect(StatusCode::OK);
    let token = signed_in.body["data"]["session_token"].as_str().unwrap();
    assert_eq!(core.get("/auth/session", token).await.body["data"]["user"]["email"], "carol@example.com");
}
