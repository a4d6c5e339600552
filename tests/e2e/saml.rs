//! SAML 2.0 single sign-on with assertions signed by an independent tool (`xmlsec1`,
//! from Debian's xmlsec): accepted when right, refused when tampered, meant for
//! someone else, expired, replayed, or signed by another key; and the attacks of the
//! outside review: a forgery signed with the attacker's own key carried in the
//! document, a key fetched from elsewhere, references that make the core fetch URLs,
//! a signed value split by a comment, and a login finished in another browser.

use crate::kit::{Backend, Core, TempDir, missing};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;

const IDP_ENTITY: &str = "https://idp.test/metadata";

fn tool(name: &str) -> bool {
    let present = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        missing(name);
    }
    present
}

/// A key pair and self-signed certificate made by openssl.
fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let (key, cert) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pem")));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (key.to_string_lossy().into_owned(), cert.to_string_lossy().into_owned())
}

fn idp_metadata(cert_path: &str) -> String {
    let pem = std::fs::read_to_string(cert_path).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    )
}

/// One login as GateKey starts it: the browser that started it (holding its login
/// cookie), the RelayState and the AuthnRequest's ID.
pub(crate) struct Started {
    pub(crate) browser: reqwest::Client,
    pub(crate) relay_state: String,
    request_id: String,
}

/// A browser: a cookie jar, redirects followed by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

async fn start(core: &Core) -> Started {
    start_from(core, &format!("{}/api/v1/auth/saml/login?provider=corp-saml&redirect_to=/welcome", core.http_base))
        .await
}

/// Starts a login at `url` (a login start of `corp-saml`) in a fresh browser.
pub(crate) async fn start_from(core: &Core, url: &str) -> Started {
    let client = browser();
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(
        response.headers().get_all(SET_COOKIE).iter().any(|c| c.to_str().unwrap().starts_with("gatekey_login=")),
        "the login start sets no login cookie"
    );
    let url = reqwest::Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert!(url.as_str().starts_with("https://idp.test/sso?"), "{url}");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let deflated = STANDARD.decode(&query["SAMLRequest"]).unwrap();
    let mut request = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice()).read_to_string(&mut request).unwrap();
    assert!(
        request.contains(&format!("AssertionConsumerServiceURL=\"{}/api/v1/auth/saml/acs/corp-saml\"", core.http_base))
    );
    let request_id = request.split("ID=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    Started { browser: client, relay_state: query["RelayState"].clone(), request_id }
}

/// What to put in a response.
pub(crate) struct Assertion<'a> {
    id: &'a str,
    in_response_to: &'a str,
    audience: String,
    recipient: String,
    not_on_or_after: String,
    email: &'a str,
    /// The signature's `KeyInfo` template (xmlsec1 fills it in).
    key_info: &'a str,
    /// The NameID's `Format`.
    name_id_format: &'a str,
}

/// The KeyInfo an IdP sends: its certificate.
pub(crate) const X509_KEY_INFO: &str = "<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>";

fn now_plus(seconds: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    at.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// A response with an enveloped signature made by `xmlsec1 --sign` with `key` (and
/// `cert`, when the KeyInfo is to carry a certificate).
pub(crate) fn signed_response(dir: &Path, assertion: &Assertion<'_>, key: &str, cert: Option<&str>) -> String {
    let id = assertion.id;
    let template = template_xml(assertion, &format!("#{id}"));
    let (input, output) = (dir.join(format!("{id}.xml")), dir.join(format!("{id}.signed.xml")));
    std::fs::write(&input, template).unwrap();
    let signed = std::process::Command::new("xmlsec1")
        .args([
            "--sign",
            "--privkey-pem",
            &cert.map_or_else(|| key.to_owned(), |cert| format!("{key},{cert}")),
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .arg("--output")
        .arg(&output)
        .arg(&input)
        .output()
        .unwrap();
    assert!(signed.status.success(), "xmlsec1 --sign failed: {}", String::from_utf8_lossy(&signed.stderr));
    std::fs::read_to_string(&output).unwrap()
}

/// POSTs a response to the ACS as the IdP's form would (no cookies: a cross-site POST),
/// asking for JSON; returns the status and body.
pub(crate) async fn post(core: &Core, relay_state: &str, xml: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/saml/acs/corp-saml", core.http_base))
        .header(ACCEPT, "application/json")
        .form(&[("SAMLResponse", STANDARD.encode(xml)), ("RelayState", relay_state.to_owned())])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Follows the ACS's finish URL in `browser`, asking for JSON; returns status, body and
/// the session cookie set, if any.
async fn finish(core: &Core, browser: &reqwest::Client, finish_url: &str) -> (StatusCode, Value, Option<String>) {
    let response =
        browser.get(format!("{}{finish_url}", core.http_base)).header(ACCEPT, "application/json").send().await.unwrap();
    let status = response.status();
    let session = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gatekey_session=") && !c.starts_with("gatekey_session=;"))
        .map(str::to_owned);
    (status, response.json().await.unwrap_or(Value::Null), session)
}

/// Posts a response for `login` and finishes it in the browser that started it.
async fn sign_in(core: &Core, login: &Started, xml: &str) -> (StatusCode, Value, Option<String>) {
    let (status, body) = post(core, &login.relay_state, xml).await;
    if status != StatusCode::OK {
        return (status, body, None);
    }
    finish(core, &login.browser, body["data"]["finish_url"].as_str().unwrap()).await
}

/// A core with the `corp-saml` provider whose IdP key pair is `idp`.
pub(crate) struct Setup {
    pub(crate) core: Core,
    admin: String,
    pub(crate) dir: TempDir,
    pub(crate) idp_key: String,
    pub(crate) idp_cert: String,
    audience: String,
    recipient: String,
}

pub(crate) async fn setup(backend: Backend) -> Option<Setup> {
    if !tool("xmlsec1") || !tool("openssl") {
        return None;
    }
    let core = Core::start(backend).await;
    let admin = core.admin_token().await;
    let dir = TempDir::new("saml");
    let (idp_key, idp_cert) = key_pair(dir.path(), "idp");
    core.post(
        "/admin/auth-providers",
        &admin,
        json!({"name": "corp-saml", "type": "saml", "saml_idp_metadata": idp_metadata(&idp_cert), "admin_group": "vpn-admins"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let audience = format!("{}/api/v1/auth/saml/metadata/corp-saml", core.http_base);
    let recipient = format!("{}/api/v1/auth/saml/acs/corp-saml", core.http_base);
    Some(Setup { core, admin, dir, idp_key, idp_cert, audience, recipient })
}

impl Setup {
    /// An assertion for `login` naming `email`.
    pub(crate) fn assertion<'a>(
        &self,
        id: &'a str,
        login: &'a Started,
        email: &'a str,
        key_info: &'a str,
    ) -> Assertion<'a> {
        Assertion {
            id,
            in_response_to: &login.request_id,
            audience: self.audience.clone(),
            recipient: self.recipient.clone(),
            not_on_or_after: now_plus(300),
            email,
            key_info,
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        }
    }

    async fn user_count(&self) -> u64 {
        self.core.get("/admin/users", &self.admin).await.body["meta"]["total"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn saml_assertions_signed_by_the_idp_sign_in_and_everything_else_is_refused() {
    let Some(setup) = setup(Backend::Sqlite).await else { return };
    let Setup { core, dir, idp_key, idp_cert, audience, .. } = &setup;
    let (rogue_key, rogue_cert) = key_pair(dir.path(), "rogue");
    let metadata = reqwest::get(format!("{}/api/v1/auth/saml/metadata/corp-saml", core.http_base)).await.unwrap();
    assert_eq!(metadata.headers()["content-type"], "application/samlmetadata+xml");
    assert!(metadata.text().await.unwrap().contains(&format!("entityID=\"{audience}\"")));

    // Accepted: the ACS verifies and sends the browser on; the browser that started the
    // login finishes it.
    let login = start(core).await;
    let assertion = setup.assertion("_a1", &login, "carol@example.com", X509_KEY_INFO);
    let accepted_xml = signed_response(dir.path(), &assertion, idp_key, Some(idp_cert));
    let (status, accepted) = post(core, &login.relay_state, &accepted_xml).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let finish_url = accepted["data"]["finish_url"].as_str().unwrap().to_owned();
    assert!(finish_url.starts_with("/api/v1/auth/saml/finish?code="), "{finish_url}");
    let (status, body, cookie) = finish(core, &login.browser, &finish_url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cookie.unwrap().starts_with("gatekey_session=gks_"));
    let token = body["data"]["session_token"].as_str().unwrap().to_owned();
    let user = core.get("/auth/session", &token).await.body["data"]["user"].clone();
    assert_eq!((user["email"].as_str(), user["provider"].as_str()), (Some("carol@example.com"), Some("corp-saml")));
    assert_eq!(user["groups"], json!(["staff", "vpn-admins"]));
    assert_eq!((user["is_admin"].as_bool(), user["name"].as_str()), (Some(true), Some("Carol Saml")));

    // The same finish again, and the same POST again: both spent.
    let (status, body, _) = finish(core, &login.browser, &finish_url).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("login_failed")));
    let (status, body) = post(core, &login.relay_state, &accepted_xml).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("login_failed")));

    // A browser post (no JSON asked for) is sent on with a 303 to the same-site finish.
    let login = start(core).await;
    let xml = signed_response(
        dir.path(),
        &setup.assertion("_b1", &login, "carol@example.com", X509_KEY_INFO),
        idp_key,
        Some(idp_cert),
    );
    let redirect = browser()
        .post(format!("{}/api/v1/auth/saml/acs/corp-saml", core.http_base))
        .form(&[("SAMLResponse", STANDARD.encode(&xml)), ("RelayState", login.relay_state.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
    let location = redirect.headers()[LOCATION].to_str().unwrap().to_owned();
    let done = login.browser.get(format!("{}{location}", core.http_base)).send().await.unwrap();
    assert_eq!((done.status(), done.headers()[LOCATION].to_str().unwrap()), (StatusCode::FOUND, "/welcome"));

    // Each of these fails closed, with a fresh login each time.
    let users_before = setup.user_count().await;
    /// One way a response must be refused.
    struct Case {
        name: &'static str,
        reason: &'static str,
        id: &'static str,
        in_response_to: Option<&'static str>,
        audience: Option<&'static str>,
        lifetime: i64,
        rogue_key: bool,
        tamper: bool,
        transient: bool,
    }
    let base = Case {
        name: "",
        reason: "",
        id: "",
        in_response_to: None,
        audience: None,
        lifetime: 300,
        rogue_key: false,
        tamper: false,
        transient: false,
    };
    let cases = [
        Case { name: "tampered", reason: "signature", id: "_t1", tamper: true, ..base },
        Case {
            name: "wrong audience",
            reason: "meant for",
            id: "_w1",
            audience: Some("https://other.example/sp"),
            ..base
        },
        Case { name: "expired", reason: "expired", id: "_e1", lifetime: -600, ..base },
        Case {
            name: "signed by another key, its certificate embedded",
            reason: "certificate other than",
            id: "_r1",
            rogue_key: true,
            ..base
        },
        Case {
            name: "answers another request",
            reason: "does not answer",
            id: "_x1",
            in_response_to: Some("_other"),
            ..base
        },
        Case { name: "replayed assertion", reason: "already used", id: "_a1", ..base },
        Case { name: "a transient NameID", reason: "transient", id: "_n1", transient: true, ..base },
    ];
    for case in cases {
        let login = start(core).await;
        let mut assertion = setup.assertion(case.id, &login, "dave@example.com", X509_KEY_INFO);
        if let Some(request) = case.in_response_to {
            assertion.in_response_to = request;
        }
        if let Some(other) = case.audience {
            assertion.audience = other.to_owned();
        }
        assertion.not_on_or_after = now_plus(case.lifetime);
        if case.transient {
            assertion.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
        }
        let (key, cert) = if case.rogue_key { (&rogue_key, &rogue_cert) } else { (idp_key, idp_cert) };
        let mut xml = signed_response(dir.path(), &assertion, key, Some(cert));
        if case.tamper {
            xml = xml.replace("dave@example.com", "mallory@example.com");
        }
        let (status, body, cookie) = sign_in(core, &login, &xml).await;
        let (case, reason) = (case.name, case.reason);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["error"]["code"], "login_failed", "{case}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(reason), "{case}: {body}");
        assert!(cookie.is_none(), "{case}");
    }
    assert_eq!(setup.user_count().await, users_before, "a refused assertion created a user");
}

/// A listener on loopback that counts connections: a SAML response must never make the
/// core fetch anything.
struct Tripwire {
    address: std::net::SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Tripwire {
    async fn arm() -> Tripwire {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((_, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Tripwire { address, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The outside review's attacks, each refused on SQLite and PostgreSQL with nothing
/// created and nothing fetched.
#[tokio::test]
async fn forged_fetching_and_truncated_saml_responses_are_refused() {
    for backend in crate::kit::backends() {
        let Some(setup) = setup(backend).await else { return };
        let Setup { core, dir, idp_key, idp_cert, .. } = &setup;
        let (attacker_key, attacker_cert) = key_pair(dir.path(), "attacker");
        let tripwire = Tripwire::arm().await;
        let users_before = setup.user_count().await;

        // 1. The critical forgery: any e-mail, the admin group, signed with the attacker's
        // own key whose public half rides in <ds:KeyValue>.
        let login = start(core).await;
        let forged = signed_response(
            dir.path(),
            &setup.assertion("_f1", &login, "root@example.com", "<ds:KeyInfo><ds:KeyValue/></ds:KeyInfo>"),
            &attacker_key,
            None,
        );
        assert!(forged.contains("RSAKeyValue"), "the forgery carries its key");
        let (status, body, cookie) = sign_in(core, &login, &forged).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("login_failed")),
            "{body}"
        );
        assert!(body["error"]["message"].as_str().unwrap().contains("key of its own"), "{body}");
        assert!(cookie.is_none());

        // 2. The attacker's X.509 certificate embedded instead.
        let login = start(core).await;
        let forged = signed_response(
            dir.path(),
            &setup.assertion("_f2", &login, "root@example.com", X509_KEY_INFO),
            &attacker_key,
            Some(&attacker_cert),
        );
        let (status, body, _) = sign_in(core, &login, &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("certificate other than"), "{body}");

        // 3. A key to be fetched from elsewhere (RetrievalMethod), pointing at the tripwire.
        let login = start(core).await;
        let retrieval = format!(
            r#"<ds:KeyInfo><ds:RetrievalMethod URI="http://{}/key" Type="http://www.w3.org/2000/09/xmldsig#X509Data"/></ds:KeyInfo>"#,
            tripwire.address
        );
        let unsigned = unsigned_response(&setup.assertion("_f3", &login, "root@example.com", &retrieval), "#_f3");
        let (status, body, _) = sign_in(core, &login, &unsigned).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("RetrievalMethod"), "{body}");

        // 4. Server-side request forgery through a reference URI.
        let login = start(core).await;
        let remote = format!("http://{}/x", tripwire.address);
        let unsigned = unsigned_response(&setup.assertion("_f4", &login, "root@example.com", ""), &remote);
        let (status, body, _) = sign_in(core, &login, &unsigned).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("within the document"), "{body}");

        // 5. Comment truncation: the IdP signed `carol@example.com.evil.test`; a comment
        // inserted afterwards leaves the signature intact and used to make the core read
        // `carol@example.com`.
        let login = start(core).await;
        let signed = signed_response(
            dir.path(),
            &setup.assertion("_f5", &login, "carol@example.com.evil.test", X509_KEY_INFO),
            idp_key,
            Some(idp_cert),
        );
        let truncated = signed.replace("carol@example.com.evil.test", "carol@example.com<!---->.evil.test");
        let (status, body, cookie) = sign_in(core, &login, &truncated).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("comments"), "{body}");
        assert!(cookie.is_none());

        // 6. Login CSRF: the attacker's own valid response, posted for a victim's browser,
        // finishes in no other browser than the one that started the login.
        let attacker_login = start(core).await;
        let genuine = signed_response(
            dir.path(),
            &setup.assertion("_f6", &attacker_login, "mallory@example.com", X509_KEY_INFO),
            idp_key,
            Some(idp_cert),
        );
        let (status, accepted) = post(core, &attacker_login.relay_state, &genuine).await;
        assert_eq!(status, StatusCode::OK, "{accepted}");
        let finish_url = accepted["data"]["finish_url"].as_str().unwrap();
        let victim = start(core).await.browser;
        let (status, body, cookie) = finish(core, &victim, finish_url).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("another browser"), "{body}");
        assert!(cookie.is_none());
        // The other browser could not even spend it: the attacker's own browser finishes
        // the attacker's own login, once.
        let (status, _, cookie) = finish(core, &attacker_login.browser, finish_url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(cookie.is_some());
        let (status, _, _) = finish(core, &attacker_login.browser, finish_url).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a finish code is single use");

        // 7. Attributes smuggled into the signature's KeyInfo, which no signature covers:
        // read, they would have overridden the e-mail of a genuine assertion.
        let login = start(core).await;
        let genuine = signed_response(
            dir.path(),
            &setup.assertion("_f7", &login, "carol@example.com", X509_KEY_INFO),
            idp_key,
            Some(idp_cert),
        );
        let smuggled = genuine.replacen(
            "</ds:X509Certificate>",
            "<saml:Attribute Name=\"email\"><saml:AttributeValue>root@example.com</saml:AttributeValue></saml:Attribute></ds:X509Certificate>",
            1,
        );
        assert_ne!(smuggled, genuine);
        let (status, body, cookie) = sign_in(core, &login, &smuggled).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("only text"), "{body}");
        assert!(cookie.is_none());

        assert_eq!(setup.user_count().await, users_before + 1, "only mallory's own login made a user");
        assert_eq!(tripwire.hits(), 0, "a SAML response made the core fetch a URL");
        let log = core.log();
        assert!(!log.contains("panicked"), "{log}");
    }
}

/// UTF-7 of `text` as one shifted run: `+`, base64 of its UTF-16BE without padding, `-`.
fn utf7(text: &str) -> String {
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    format!("+{}-", base64::engine::general_purpose::STANDARD_NO_PAD.encode(utf16))
}

/// A response that two XML parsers would read differently: declared UTF-7, whose
/// `+ADwAIQAtAC0-` is text to a parser that ignores the declaration and `<!--` to one
/// that obeys it. The first sees a forged assertion (anyone, admins' group); the second
/// sees only a genuine, IdP-signed assertion of the attacker's own login.
#[tokio::test]
async fn a_response_two_parsers_would_read_differently_is_refused() {
    let Some(setup) = setup(Backend::Sqlite).await else { return };
    let Setup { core, dir, idp_key, idp_cert, .. } = &setup;
    let login = start(core).await;
    let genuine = signed_response(
        dir.path(),
        &setup.assertion("_g", &login, "mallory@example.com", X509_KEY_INFO),
        idp_key,
        Some(idp_cert),
    );
    let span = |xml: &str| {
        let from = xml.find("<saml:Assertion").unwrap();
        let to = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
        xml[from..to].to_owned()
    };
    let genuine_assertion = span(&genuine);
    let forged_assertion = span(&unsigned_response(&setup.assertion("_g", &login, "root@example.com", ""), "#_g"));
    assert!(!forged_assertion.contains('+') && !forged_assertion.contains("--"));
    let body = genuine
        .replace(&genuine_assertion, &format!("+ADwAIQAtAC0-{forged_assertion}+AC0ALQA+-{}", utf7(&genuine_assertion)));
    let response = &body[body.find("<samlp:Response").unwrap()..];
    let users_before = setup.user_count().await;
    // Declared outright, and hidden behind a first, harmless declaration.
    for (declarations, reason) in [
        ("<?xml version=\"1.0\" encoding=\"UTF-7\"?>", "only UTF-8"),
        ("<?xml version=\"1.0\"?><?xml version=\"1.0\" encoding=\"UTF-7\"?>", "second XML declaration"),
    ] {
        let login = start(core).await;
        let smuggled = format!("{declarations}{response}").replace(&setup_request_id(response), &login.request_id);
        let (status, body, cookie) = sign_in(core, &login, &smuggled).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(reason), "{body}");
        assert!(cookie.is_none());
    }
    assert_eq!(setup.user_count().await, users_before);
}

/// A genuine signature and its assertion hidden from one parser by empty prefix
/// declarations (`xmlns:ds=""`, `xmlns:saml=""`: roxmltree reads them as no namespace,
/// libxml2 drops them), beside a forged assertion for the victim with a well-shaped but
/// worthless signature. xmlsec1 would verify the hidden one; the core must read neither.
#[tokio::test]
async fn a_signature_hidden_by_an_empty_namespace_prefix_is_refused() {
    let Some(setup) = setup(Backend::Sqlite).await else { return };
    let Setup { core, dir, idp_key, idp_cert, .. } = &setup;
    let login = start(core).await;
    let genuine = signed_response(
        dir.path(),
        &setup.assertion("_a1", &login, "mallory@example.com", X509_KEY_INFO),
        idp_key,
        Some(idp_cert),
    );
    let span = |xml: &str, open: &str, close: &str| {
        let from = xml.find(open).unwrap();
        xml[from..xml.find(close).unwrap() + close.len()].to_owned()
    };
    let assertion = span(&genuine, "<saml:Assertion", "</saml:Assertion>");
    let signature = span(&assertion, "<ds:Signature", "</ds:Signature>");
    let hidden_signature = signature.replacen(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"",
        "<ds:Signature xmlns:ds=\"\"",
        1,
    );
    let hidden_assertion =
        assertion.replace(&signature, "").replacen("<saml:Assertion", "<saml:Assertion xmlns:saml=\"\"", 1);
    let forged = span(
        &unsigned_response(&setup.assertion("_forged", &login, "root@example.com", ""), "#_forged"),
        "<saml:Assertion",
        "</saml:Assertion>",
    );
    let attack = genuine.replace(&assertion, &format!("{hidden_signature}{hidden_assertion}{forged}")).replacen(
        "<samlp:Response ",
        "<samlp:Response xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" ",
        1,
    );
    assert!(attack.contains("xmlns:ds=\"\"") && attack.contains("xmlns:saml=\"\""));
    let users_before = setup.user_count().await;
    let (status, body, cookie) = sign_in(core, &login, &attack).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("empty"), "{body}");
    assert!(cookie.is_none());
    assert_eq!(setup.user_count().await, users_before);
}

/// The request id a response answers (its `InResponseTo`).
fn setup_request_id(response: &str) -> String {
    response.split("InResponseTo=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
}

/// The template of a response whose one signature, in the assertion, refers to
/// `reference`, with empty digest and signature values for `xmlsec1 --sign` to fill.
fn template_xml(assertion: &Assertion<'_>, reference: &str) -> String {
    let now = now_plus(0);
    let Assertion { id, in_response_to, audience, recipient, not_on_or_after, email, key_info, name_id_format } =
        assertion;
    format!(
        r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_resp{id}" Version="2.0" IssueInstant="{now}" InResponseTo="{in_response_to}" Destination="{recipient}"><saml:Issuer>{IDP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="{id}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{IDP_ENTITY}</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="{reference}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/>{key_info}</ds:Signature><saml:Subject><saml:NameID Format="{name_id_format}">{email}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{in_response_to}" Recipient="{recipient}" NotOnOrAfter="{not_on_or_after}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{now}" NotOnOrAfter="{not_on_or_after}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}"/><saml:AttributeStatement><saml:Attribute Name="email"><saml:AttributeValue>{email}</saml:AttributeValue></saml:Attribute><saml:Attribute Name="name"><saml:AttributeValue>Carol Saml</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups"><saml:AttributeValue>staff</saml:AttributeValue><saml:AttributeValue>vpn-admins</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>"##
    )
}

/// A response that needs no valid signature to attack: made-up digest and signature.
fn unsigned_response(assertion: &Assertion<'_>, reference: &str) -> String {
    template_xml(assertion, reference)
        .replace("<ds:DigestValue/>", "<ds:DigestValue>AAAA</ds:DigestValue>")
        .replace("<ds:SignatureValue/>", "<ds:SignatureValue>AAAA</ds:SignatureValue>")
}
