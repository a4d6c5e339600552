//! SAML 2.0 service provider: SP metadata, AuthnRequests over the redirect binding,
//! and responses over the POST binding. Signatures are checked by Debian's `xmlsec1`
//! (libxmlsec) against the IdP certificate pinned from its metadata; this module
//! then insists that the one signature in the document covers the assertion it
//! reads (no signature wrapping), and checks issuer, audience, recipient, request,
//! time window and replay.

use super::{ExternalIdentity, LOGIN_FLOW_TTL_SECONDS, state_hash};
use crate::context::CoreContext;
use crate::error::{CoreError, CoreResult};
use crate::store::{AuthProviderRecord, LoginFlow, unix_now};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use roxmltree::{Document, Node};
use std::io::Write;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// Clock skew tolerated on assertion time windows.
const SKEW_SECONDS: i64 = 120;
/// Largest SAML response accepted.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// What GateKey needs from an IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// The IdP's entity id (the expected `Issuer`).
    pub entity_id: String,
    /// Its single sign-on URL for the redirect binding.
    pub sso_url: String,
    /// Its signing certificate, PEM.
    pub certificate_pem: String,
}

fn invalid_metadata(problem: &str) -> CoreError {
    CoreError::InvalidArgument(format!("saml_idp_metadata: {problem}"))
}

/// Reads the entity id, redirect-binding SSO URL and signing certificate of an IdP.
pub fn parse_idp_metadata(xml: &str) -> CoreResult<IdpMetadata> {
    let document = Document::parse(xml).map_err(|e| invalid_metadata(&format!("not XML: {e}")))?;
    let entity = document
        .descendants()
        .find(|n| n.has_tag_name((METADATA, "EntityDescriptor")))
        .ok_or_else(|| invalid_metadata("no EntityDescriptor"))?;
    let idp = entity
        .children()
        .find(|n| n.has_tag_name((METADATA, "IDPSSODescriptor")))
        .ok_or_else(|| invalid_metadata("no IDPSSODescriptor"))?;
    let sso_url = idp
        .children()
        .find(|n| n.has_tag_name((METADATA, "SingleSignOnService")) && n.attribute("Binding") == Some(REDIRECT_BINDING))
        .and_then(|n| n.attribute("Location"))
        .ok_or_else(|| invalid_metadata("no SingleSignOnService with the HTTP-Redirect binding"))?;
    let certificate = idp
        .children()
        .filter(|n| n.has_tag_name((METADATA, "KeyDescriptor")) && n.attribute("use") != Some("encryption"))
        .flat_map(|n| n.descendants())
        .find(|n| n.has_tag_name((DSIG, "X509Certificate")))
        .and_then(|n| n.text())
        .ok_or_else(|| invalid_metadata("no signing certificate"))?;
    let der: String = certificate.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(&der).map_err(|_| invalid_metadata("the signing certificate is not base64"))?;
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in der.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Ok(IdpMetadata {
        entity_id: entity.attribute("entityID").ok_or_else(|| invalid_metadata("no entityID"))?.to_owned(),
        sso_url: sso_url.to_owned(),
        certificate_pem: pem,
    })
}

/// The assertion consumer URL of a provider.
pub fn acs_url(context: &CoreContext, provider: &AuthProviderRecord) -> String {
    format!("{}/api/v1/auth/saml/acs/{}", context.settings.public_url, provider.fields.name)
}

/// The SP entity id a provider uses (configured, or the metadata URL).
pub fn sp_entity_id(context: &CoreContext, provider: &AuthProviderRecord) -> String {
    match provider.fields.saml_entity_id.as_str() {
        "" => format!("{}/api/v1/auth/saml/metadata/{}", context.settings.public_url, provider.fields.name),
        configured => configured.to_owned(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SP metadata document for a provider.
pub fn sp_metadata(context: &CoreContext, provider: &AuthProviderRecord) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{METADATA}" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="{PROTOCOL}">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{POST_BINDING}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = escape(&sp_entity_id(context, provider)),
        acs = escape(&acs_url(context, provider)),
    )
}

/// Starts a login: the IdP URL carrying a deflated AuthnRequest and the RelayState.
pub async fn start(context: &CoreContext, provider: &AuthProviderRecord, redirect_to: &str) -> CoreResult<String> {
    let idp = parse_idp_metadata(&provider.fields.saml_idp_metadata)?;
    let request_id = format!("_{}", hex::encode(crate::secrets::random_bytes::<16>()));
    let relay_state = URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes::<24>());
    let now = OffsetDateTime::now_utc().format(&Rfc3339).map_err(|e| CoreError::Internal(e.to_string()))?;
    let request = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="{request_id}" Version="2.0" IssueInstant="{now}" Destination="{destination}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{POST_BINDING}"><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/></samlp:AuthnRequest>"#,
        destination = escape(&idp.sso_url),
        acs = escape(&acs_url(context, provider)),
        issuer = escape(&sp_entity_id(context, provider)),
    );
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(request.as_bytes()).map_err(|e| CoreError::Internal(e.to_string()))?;
    let deflated = deflater.finish().map_err(|e| CoreError::Internal(e.to_string()))?;
    let hash = state_hash(&relay_state);
    let flow = LoginFlow {
        provider_id: provider.id.clone(),
        sealed_secrets: context.sealer.seal(&format!("login-flow:{hash}"), request_id.as_bytes())?,
        redirect_to: redirect_to.to_owned(),
        expires_at: unix_now() + LOGIN_FLOW_TTL_SECONDS,
    };
    context.store.create_login_flow(&hash, &flow).await?;
    let mut url =
        openidconnect::url::Url::parse(&idp.sso_url).map_err(|_| invalid_metadata("the SSO URL is not a URL"))?;
    url.query_pairs_mut()
        .append_pair("SAMLRequest", &STANDARD.encode(deflated))
        .append_pair("RelayState", &relay_state);
    Ok(url.to_string())
}

fn refused(reason: impl Into<String>) -> CoreError {
    CoreError::LoginFailed(format!("the SAML response is not acceptable: {}", reason.into()))
}

/// Checks the XML signature with `xmlsec1` against the pinned IdP certificate.
async fn verify_signature(xml: &str, certificate_pem: &str) -> CoreResult<()> {
    let dir = std::env::temp_dir().join(format!("gatekey-saml-{}", hex::encode(crate::secrets::random_bytes::<8>())));
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::Internal(e.to_string()))?;
    let (document, certificate) = (dir.join("response.xml"), dir.join("idp.pem"));
    let written = std::fs::write(&document, xml).and_then(|()| std::fs::write(&certificate, certificate_pem));
    let outcome = match written {
        Ok(()) => tokio::process::Command::new("xmlsec1")
            .arg("--verify")
            .arg("--pubkey-cert-pem")
            .arg(&certificate)
            .args(["--id-attr:ID", &format!("{ASSERTION}:Assertion"), "--id-attr:ID", &format!("{PROTOCOL}:Response")])
            .arg(&document)
            .output()
            .await
            .map_err(|e| {
                CoreError::ProviderUnavailable(format!("SAML needs the xmlsec1 program (Debian package xmlsec1): {e}"))
            }),
        Err(e) => Err(CoreError::Internal(e.to_string())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    if outcome?.status.success() {
        Ok(())
    } else {
        Err(refused("its signature does not verify with the IdP's certificate"))
    }
}

fn child<'a, 'input>(node: Node<'a, 'input>, namespace: &str, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name((namespace, name)))
}

fn instant(value: Option<&str>) -> CoreResult<Option<i64>> {
    value
        .map(|text| {
            OffsetDateTime::parse(text, &Rfc3339)
                .map(|at| at.unix_timestamp())
                .map_err(|_| refused(format!("bad time `{text}`")))
        })
        .transpose()
}

/// Completes a login from a POSTed response: the provider, the identity and where to go.
pub async fn complete(
    context: &CoreContext,
    provider_name: &str,
    saml_response: &str,
    relay_state: &str,
) -> CoreResult<(AuthProviderRecord, ExternalIdentity, String)> {
    let hash = state_hash(relay_state);
    let flow = context
        .store
        .take_login_flow(&hash)
        .await?
        .ok_or_else(|| CoreError::LoginFailed("unknown, expired or already used RelayState".into()))?;
    let provider = context.store.require_auth_provider(&flow.provider_id).await?;
    if provider.fields.name != provider_name || flow.expires_at <= unix_now() {
        return Err(CoreError::LoginFailed("the login flow does not match this provider or has expired".into()));
    }
    let request_id = context.sealer.open_text(&format!("login-flow:{hash}"), &flow.sealed_secrets)?;
    let idp = parse_idp_metadata(&provider.fields.saml_idp_metadata)?;
    let compact: String = saml_response.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD.decode(compact).map_err(|_| refused("SAMLResponse is not base64"))?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(refused("too large"));
    }
    let xml = String::from_utf8(bytes).map_err(|_| refused("not UTF-8"))?;
    if xml.contains("<!DOCTYPE") {
        return Err(refused("document type declarations are not accepted"));
    }
    verify_signature(&xml, &idp.certificate_pem).await?;
    let identity = check_response(
        &xml,
        &idp,
        &Expected {
            audience: &sp_entity_id(context, &provider),
            recipient: &acs_url(context, &provider),
            request_id: &request_id,
            groups_attribute: &provider.fields.groups_claim,
        },
    )?;
    if !context.store.remember_assertion(&identity.assertion_id, identity.expires_at).await? {
        return Err(refused("this assertion was already used"));
    }
    Ok((provider, identity.identity, flow.redirect_to))
}

/// What a response must match.
struct Expected<'a> {
    audience: &'a str,
    recipient: &'a str,
    request_id: &'a str,
    groups_attribute: &'a str,
}

/// An accepted assertion.
#[derive(Debug)]
struct Accepted {
    identity: ExternalIdentity,
    assertion_id: String,
    expires_at: i64,
}

/// Checks a response whose one signature `xmlsec1` verified, and reads the identity.
fn check_response(xml: &str, idp: &IdpMetadata, expected: &Expected<'_>) -> CoreResult<Accepted> {
    let document = Document::parse(xml).map_err(|_| refused("not XML"))?;
    let response = document.root_element();
    if !response.has_tag_name((PROTOCOL, "Response")) {
        return Err(refused("not a Response"));
    }
    let success = child(response, PROTOCOL, "Status")
        .and_then(|s| child(s, PROTOCOL, "StatusCode"))
        .and_then(|c| c.attribute("Value"))
        == Some("urn:oasis:names:tc:SAML:2.0:status:Success");
    if !success {
        return Err(refused("the IdP reported a failure"));
    }
    let assertions: Vec<_> = document.descendants().filter(|n| n.has_tag_name((ASSERTION, "Assertion"))).collect();
    let signatures: Vec<_> = document.descendants().filter(|n| n.has_tag_name((DSIG, "Signature"))).collect();
    let [assertion] = assertions.as_slice() else { return Err(refused("it must hold exactly one assertion")) };
    let [signature] = signatures.as_slice() else { return Err(refused("it must carry exactly one signature")) };
    // The verified signature must be enveloped in, and refer to, the assertion or the
    // response that holds it: otherwise it signs something other than what is read.
    let signed = signature.parent().ok_or_else(|| refused("a detached signature"))?;
    let reference = signature
        .descendants()
        .find(|n| n.has_tag_name((DSIG, "Reference")))
        .and_then(|n| n.attribute("URI"))
        .unwrap_or_default();
    let covers = (signed == *assertion || signed == response)
        && Some(reference) == signed.attribute("ID").map(|id| format!("#{id}")).as_deref();
    if !covers || assertion.parent() != Some(response) {
        return Err(refused("the signature does not cover the assertion"));
    }
    let issuer = child(*assertion, ASSERTION, "Issuer").and_then(|n| n.text()).unwrap_or_default();
    if issuer.trim() != idp.entity_id {
        return Err(refused(format!("issuer `{issuer}` is not `{}`", idp.entity_id)));
    }
    let now = unix_now();
    let conditions = child(*assertion, ASSERTION, "Conditions").ok_or_else(|| refused("no Conditions"))?;
    if instant(conditions.attribute("NotBefore"))?.is_some_and(|at| now + SKEW_SECONDS < at) {
        return Err(refused("not valid yet"));
    }
    let not_on_or_after = instant(conditions.attribute("NotOnOrAfter"))?.ok_or_else(|| refused("no NotOnOrAfter"))?;
    if now - SKEW_SECONDS >= not_on_or_after {
        return Err(refused("expired"));
    }
    let audiences: Vec<&str> =
        conditions.descendants().filter(|n| n.has_tag_name((ASSERTION, "Audience"))).filter_map(|n| n.text()).collect();
    if !audiences.iter().any(|audience| audience.trim() == expected.audience) {
        return Err(refused(format!("it is meant for {audiences:?}, not `{}`", expected.audience)));
    }
    let subject = child(*assertion, ASSERTION, "Subject").ok_or_else(|| refused("no Subject"))?;
    let confirmation = subject
        .descendants()
        .find(|n| n.has_tag_name((ASSERTION, "SubjectConfirmationData")))
        .ok_or_else(|| refused("no SubjectConfirmationData"))?;
    if confirmation.attribute("Recipient") != Some(expected.recipient) {
        return Err(refused("its recipient is not this service"));
    }
    if confirmation.attribute("InResponseTo") != Some(expected.request_id) {
        return Err(refused("it does not answer this login's request"));
    }
    if instant(confirmation.attribute("NotOnOrAfter"))?.is_some_and(|at| now - SKEW_SECONDS >= at) {
        return Err(refused("its subject confirmation expired"));
    }
    let attribute = |name: &str| -> Vec<String> {
        assertion
            .descendants()
            .filter(|n| n.has_tag_name((ASSERTION, "Attribute")) && n.attribute("Name") == Some(name))
            .flat_map(|n| n.children().filter(|v| v.has_tag_name((ASSERTION, "AttributeValue"))))
            .filter_map(|v| v.text().map(|t| t.trim().to_owned()))
            .collect()
    };
    let name_id = child(subject, ASSERTION, "NameID").and_then(|n| n.text()).unwrap_or_default().trim().to_owned();
    let email = attribute("email").into_iter().next().unwrap_or(name_id);
    let name = attribute("name").into_iter().chain(attribute("displayName")).next().unwrap_or_default();
    let groups_attribute = if expected.groups_attribute.is_empty() { "groups" } else { expected.groups_attribute };
    Ok(Accepted {
        identity: ExternalIdentity { email, name, groups: attribute(groups_attribute) },
        assertion_id: assertion.attribute("ID").ok_or_else(|| refused("the assertion has no ID"))?.to_owned(),
        expires_at: not_on_or_after,
    })
}
