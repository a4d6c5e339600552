//! SAML 2.0 single sign-on with assertions signed by an independent tool (`xmlsec1`,
//! from Debian's xmlsec): accepted when right, refused when tampered, meant for
//! someone else, expired, replayed, or signed by another key.

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

/// One login as GateKey starts it: the RelayState and the AuthnRequest's ID.
struct Started {
    relay_state: String,
    request_id: String,
}

async fn start(core: &Core) -> Started {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client
        .get(format!("{}/api/v1/auth/saml/login?provider=corp-saml&redirect_to=/welcome", core.http_base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
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
    Started { relay_state: query["RelayState"].clone(), request_id }
}

/// What to put in a response.
struct Assertion<'a> {
    id: &'a str,
    in_response_to: &'a str,
    audience: String,
    recipient: String,
    not_on_or_after: String,
    email: &'a str,
}

fn now_plus(seconds: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    at.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// A response with an enveloped signature made by `xmlsec1 --sign` with `key`.
fn signed_response(dir: &Path, assertion: &Assertion<'_>, key: &str, cert: &str) -> String {
    let now = now_plus(0);
    let Assertion { id, in_response_to, audience, recipient, not_on_or_after, email } = assertion;
    let template = format!(
        r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_resp{id}" Version="2.0" IssueInstant="{now}" InResponseTo="{in_response_to}" Destination="{recipient}"><saml:Issuer>{IDP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="{id}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{IDP_ENTITY}</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{email}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{in_response_to}" Recipient="{recipient}" NotOnOrAfter="{not_on_or_after}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{now}" NotOnOrAfter="{not_on_or_after}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}"/><saml:AttributeStatement><saml:Attribute Name="name"><saml:AttributeValue>Carol Saml</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups"><saml:AttributeValue>staff</saml:AttributeValue><saml:AttributeValue>vpn-admins</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>"##
    );
    let (input, output) = (dir.join(format!("{id}.xml")), dir.join(format!("{id}.signed.xml")));
    std::fs::write(&input, template).unwrap();
    let signed = std::process::Command::new("xmlsec1")
        .args([
            "--sign",
            "--privkey-pem",
            &format!("{key},{cert}"),
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

/// POSTs a response to the ACS as JSON client; returns status, body and session token.
async fn post(core: &Core, relay_state: &str, xml: &str) -> (StatusCode, Value, Option<String>) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/saml/acs/corp-saml", core.http_base))
        .header(ACCEPT, "application/json")
        .form(&[("SAMLResponse", STANDARD.encode(xml)), ("RelayState", relay_state.to_owned())])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let cookie = response.headers().get(SET_COOKIE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, response.json().await.unwrap_or(Value::Null), cookie)
}

#[tokio::test]
async fn saml_assertions_signed_by_the_idp_sign_in_and_everything_else_is_refused() {
    if !tool("xmlsec1") || !tool("openssl") {
        return;
    }
    let core = Core::start(Backend::Sqlite).await;
    let admin = core.admin_token().await;
    let dir = TempDir::new("saml");
    let (idp_key, idp_cert) = key_pair(dir.path(), "idp");
    let (rogue_key, rogue_cert) = key_pair(dir.path(), "rogue");
    core.post(
        "/admin/auth-providers",
        &admin,
        json!({"name": "corp-saml", "type": "saml", "saml_idp_metadata": idp_metadata(&idp_cert), "admin_group": "vpn-admins"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let metadata = reqwest::get(format!("{}/api/v1/auth/saml/metadata/corp-saml", core.http_base)).await.unwrap();
    assert_eq!(metadata.headers()["content-type"], "application/samlmetadata+xml");
    let audience = format!("{}/api/v1/auth/saml/metadata/corp-saml", core.http_base);
    assert!(metadata.text().await.unwrap().contains(&format!("entityID=\"{audience}\"")));
    let recipient = format!("{}/api/v1/auth/saml/acs/corp-saml", core.http_base);

    // Accepted.
    let login = start(&core).await;
    let assertion = Assertion {
        id: "_a1",
        in_response_to: &login.request_id,
        audience: audience.clone(),
        recipient: recipient.clone(),
        not_on_or_after: now_plus(300),
        email: "carol@example.com",
    };
    let accepted_xml = signed_response(dir.path(), &assertion, &idp_key, &idp_cert);
    let (status, body, cookie) = post(&core, &login.relay_state, &accepted_xml).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cookie.unwrap().starts_with("gatekey_session=gks_"));
    let token = body["data"]["session_token"].as_str().unwrap().to_owned();
    let user = core.get("/auth/session", &token).await.body["data"]["user"].clone();
    assert_eq!((user["email"].as_str(), user["provider"].as_str()), (Some("carol@example.com"), Some("corp-saml")));
    assert_eq!(user["groups"], json!(["staff", "vpn-admins"]));
    assert_eq!((user["is_admin"].as_bool(), user["name"].as_str()), (Some(true), Some("Carol Saml")));

    // The same POST again: its RelayState is spent.
    let (status, body, _) = post(&core, &login.relay_state, &accepted_xml).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("login_failed")));

    // Each of these fails closed, with a fresh login each time.
    let users_before = core.get("/admin/users", &admin).await.body["meta"]["total"].clone();
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
        Case { name: "signed by another key", reason: "signature", id: "_r1", rogue_key: true, ..base },
        Case {
            name: "answers another request",
            reason: "does not answer",
            id: "_x1",
            in_response_to: Some("_other"),
            ..base
        },
        Case { name: "replayed assertion", reason: "already used", id: "_a1", ..base },
    ];
    for case in cases {
        let login = start(&core).await;
        let assertion = Assertion {
            id: case.id,
            in_response_to: case.in_response_to.unwrap_or(&login.request_id),
            audience: case.audience.map_or_else(|| audience.clone(), str::to_owned),
            recipient: recipient.clone(),
            not_on_or_after: now_plus(case.lifetime),
            email: "dave@example.com",
        };
        let (key, cert) = if case.rogue_key { (&rogue_key, &rogue_cert) } else { (&idp_key, &idp_cert) };
        let mut xml = signed_response(dir.path(), &assertion, key, cert);
        if case.tamper {
            xml = xml.replace("dave@example.com", "mallory@example.com");
        }
        let (status, body, cookie) = post(&core, &login.relay_state, &xml).await;
        let (case, reason) = (case.name, case.reason);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["error"]["code"], "login_failed", "{case}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(reason), "{case}: {body}");
        assert!(cookie.is_none(), "{case}");
    }
    assert_eq!(
        core.get("/admin/users", &admin).await.body["meta"]["total"],
        users_before,
        "a refused assertion created a user"
    );
}
