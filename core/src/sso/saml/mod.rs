//! SAML 2.0 service provider: SP metadata, AuthnRequests over the redirect binding,
//! and responses over the POST binding. A response is refused unless its one
//! signature, whose shape is checked first, verifies with the IdP certificate pinned
//! from its metadata and nothing else (`xmldsig`), and it then names this service,
//! this login's request, a current time window and an identity read whole
//! (`response`). The response arrives by a cross-site POST, which carries no cookie:
//! it is verified and parked, and the browser that started the login finishes it.

mod response;
mod xmldsig;

use super::{BrowserBinding, ExternalIdentity, LOGIN_FLOW_TTL_SECONDS, state_hash, take_bound_flow};
use crate::context::CoreContext;
use crate::error::{CoreError, CoreResult};
use crate::store::{AuthProviderRecord, LoginFlow, LoginFlowStage, unix_now};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use roxmltree::Document;
use std::io::Write;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// Largest SAML response accepted.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// How long a verified response waits for its browser to finish the login.
const FINISH_TTL_SECONDS: i64 = 120;

/// What GateKey needs from an IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// The IdP's entity id (the expected `Issuer`).
    pub entity_id: String,
    /// Its single sign-on URL for the redirect binding.
    pub sso_url: String,
    /// Its signing certificate, PEM.
    pub certificate_pem: String,
    /// The same certificate, base64 DER without whitespace, as a signature may repeat it.
    pub certificate_base64: String,
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
        certificate_base64: der,
    })
}

/// The assertion consumer URL of a provider.
pub fn acs_url(context: &CoreContext, provider: &AuthProviderRecord) -> String {
    context.settings.public_routes.saml_acs(&provider.fields.name)
}

/// The SP entity id a provider uses (configured, or the metadata URL).
pub fn sp_entity_id(context: &CoreContext, provider: &AuthProviderRecord) -> String {
    match provider.fields.saml_entity_id.as_str() {
        "" => context.settings.public_routes.saml_metadata(&provider.fields.name),
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
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{POST_BINDING}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = escape(&sp_entity_id(context, provider)),
        acs = escape(&acs_url(context, provider)),
    )
}

/// Starts a login: the IdP URL carrying a deflated AuthnRequest and the RelayState,
/// and the binding the browser must keep to finish it.
pub async fn start(
    context: &CoreContext,
    provider: &AuthProviderRecord,
    redirect_to: &str,
) -> CoreResult<(String, BrowserBinding)> {
    let idp = parse_idp_metadata(&provider.fields.saml_idp_metadata)?;
    let request_id = format!("_{}", hex::encode(crate::secrets::random_bytes::<16>()));
    let relay_state = URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes::<24>());
    let now = OffsetDateTime::now_utc().format(&Rfc3339).map_err(|e| CoreError::Internal(e.to_string()))?;
    let request = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="{request_id}" Version="2.0" IssueInstant="{now}" Destination="{destination}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{POST_BINDING}"><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#,
        destination = escape(&idp.sso_url),
        acs = escape(&acs_url(context, provider)),
        issuer = escape(&sp_entity_id(context, provider)),
    );
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(request.as_bytes()).map_err(|e| CoreError::Internal(e.to_string()))?;
    let deflated = deflater.finish().map_err(|e| CoreError::Internal(e.to_string()))?;
    let hash = state_hash(&relay_state);
    let binding = BrowserBinding::mint();
    let flow = LoginFlow {
        provider_id: provider.id.clone(),
        sealed_secrets: context.sealer.seal(&format!("login-flow:{hash}"), request_id.as_bytes())?,
        redirect_to: redirect_to.to_owned(),
        browser_binding_hash: binding.hash.clone(),
        stage: LoginFlowStage::Started,
        expires_at: unix_now() + LOGIN_FLOW_TTL_SECONDS,
    };
    context.store.create_login_flow(&hash, &flow).await?;
    let mut url =
        openidconnect::url::Url::parse(&idp.sso_url).map_err(|_| invalid_metadata("the SSO URL is not a URL"))?;
    url.query_pairs_mut()
        .append_pair("SAMLRequest", &STANDARD.encode(deflated))
        .append_pair("RelayState", &relay_state);
    Ok((url.to_string(), binding))
}

fn refused(reason: impl Into<String>) -> CoreError {
    CoreError::LoginFailed(format!("the SAML response is not acceptable: {}", reason.into()))
}

/// Accepts a POSTed response for the login its RelayState names: verifies it whole,
/// spends the assertion, and parks the identity for the browser that started the
/// login. Returns the single-use code with which that browser finishes it.
pub async fn accept(
    context: &CoreContext,
    provider_name: &str,
    saml_response: &str,
    relay_state: &str,
) -> CoreResult<(AuthProviderRecord, String)> {
    let hash = state_hash(relay_state);
    let flow = context
        .store
        .take_login_flow(&hash, LoginFlowStage::Started, None)
        .await?
        .ok_or_else(|| CoreError::LoginFailed("unknown, expired or already used RelayState".into()))?;
    let provider = context.store.require_auth_provider(&flow.provider_id).await?;
    if provider.fields.kind != crate::domain::ProviderKind::Saml
        || provider.fields.name != provider_name
        || flow.expires_at <= unix_now()
    {
        return Err(CoreError::LoginFailed("the login flow does not match this provider or has expired".into()));
    }
    let request_id = context.sealer.open_text(&format!("login-flow:{hash}"), &flow.sealed_secrets)?;
    let idp = parse_idp_metadata(&provider.fields.saml_idp_metadata)?;
    let compact: String = saml_response.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD.decode(compact).map_err(|_| refused("SAMLResponse is not base64"))?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(refused("too large"));
    }
    let decoded = String::from_utf8(bytes).map_err(|_| refused("not UTF-8"))?;
    // Both parsers (roxmltree here, libxml2 in xmlsec1) must read the same characters.
    let xml = as_utf8_document(&decoded)?;
    // roxmltree refuses document type declarations (no entities, no external DTDs).
    let document = Document::parse(&xml).map_err(|e| refused(format!("not well-formed XML: {e}")))?;
    check_structure(&document)?;
    xmldsig::refuse_hidden_content(&document)?;
    let signed = xmldsig::check_shape(&document, &idp.certificate_base64)?;
    // What is read below is what xmlsec1 digested, not the document as posted.
    let digested = xmldsig::verify(&xml, &idp.certificate_pem, signed).await?;
    let digested = Document::parse(&digested).map_err(|e| refused(format!("the signed content is not XML: {e}")))?;
    let (status_holder, assertion) = match signed {
        xmldsig::SignedElement::Response => {
            let response = digested.root_element();
            let assertion = response.children().find(|n| n.has_tag_name((ASSERTION, "Assertion")));
            (response, assertion.ok_or_else(|| refused("the signed response holds no assertion"))?)
        }
        xmldsig::SignedElement::Assertion => (document.root_element(), digested.root_element()),
    };
    if !assertion.has_tag_name((ASSERTION, "Assertion")) {
        return Err(refused("the signature does not cover the assertion"));
    }
    let accepted = response::check(
        status_holder,
        assertion,
        &idp,
        &response::Expected {
            audience: &sp_entity_id(context, &provider),
            recipient: &acs_url(context, &provider),
            request_id: &request_id,
            groups_attribute: &provider.fields.groups_claim,
        },
    )?;
    if !context.store.remember_assertion(&accepted.assertion_id, accepted.expires_at).await? {
        return Err(refused("this assertion was already used"));
    }
    let finish_code = URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes::<32>());
    let finish_hash = state_hash(&finish_code);
    let identity = serde_json::to_vec(&accepted.identity).map_err(|e| CoreError::Internal(e.to_string()))?;
    let parked = LoginFlow {
        provider_id: provider.id.clone(),
        sealed_secrets: context.sealer.seal(&format!("login-flow:{finish_hash}"), &identity)?,
        redirect_to: flow.redirect_to,
        browser_binding_hash: flow.browser_binding_hash,
        stage: LoginFlowStage::Verified,
        expires_at: unix_now() + FINISH_TTL_SECONDS,
    };
    context.store.create_login_flow(&finish_hash, &parked).await?;
    Ok((provider, finish_code))
}

/// Refuses a response whose structure two parsers could read differently: the root
/// must be the one Response, with one Assertion directly in it, counting elements by
/// local name whatever their namespace; and no prefix may be declared empty (roxmltree
/// takes `xmlns:p=""` for no namespace, libxml2 drops it and keeps the outer one).
fn check_structure(document: &Document<'_>) -> CoreResult<()> {
    let root = document.root_element();
    if !root.has_tag_name((PROTOCOL, "Response")) {
        return Err(refused("not a Response"));
    }
    for element in document.descendants().filter(roxmltree::Node::is_element) {
        if element.namespaces().any(|ns| ns.name().is_some() && ns.uri().is_empty()) {
            return Err(refused("it declares a namespace prefix empty"));
        }
    }
    let named = |name: &str| document.descendants().filter(|n| n.is_element() && n.tag_name().name() == name).count();
    if named("Response") != 1 {
        return Err(refused("it must be exactly one Response"));
    }
    let assertions: Vec<_> =
        document.descendants().filter(|n| n.is_element() && n.tag_name().name() == "Assertion").collect();
    match assertions.as_slice() {
        [assertion] if assertion.has_tag_name((ASSERTION, "Assertion")) && assertion.parent_element() == Some(root) => {
            Ok(())
        }
        [_] => Err(refused("the assertion must sit directly in the Response")),
        _ => Err(refused("it must hold exactly one assertion")),
    }
}

/// The whole text of an element that holds only text, trimmed: an element holding
/// anything else (a comment that splits a signed value, a smuggled element) is refused
/// rather than read in part.
fn text_only(node: roxmltree::Node<'_, '_>) -> CoreResult<String> {
    let mut text = String::new();
    for part in node.children() {
        match part.node_type() {
            roxmltree::NodeType::Text => text.push_str(part.text().unwrap_or_default()),
            _ => return Err(refused(format!("<{}> must hold only text", node.tag_name().name()))),
        }
    }
    // Only ASCII white space is trimmed: an e-mail ending in a no-break space stays
    // invalid rather than becoming someone else's address.
    Ok(text.trim_matches(|c: char| c.is_ascii_whitespace()).to_owned())
}

/// The declaration both parsers read the response with.
const UTF8_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// The response as both parsers must read it: after a UTF-8 byte-order mark and the
/// response's own XML declaration (which may name no encoding but UTF-8), behind a
/// declaration of UTF-8. roxmltree ignores a declared encoding and libxml2 obeys it, so
/// a document declaring, say, UTF-7 reads as one thing to the checks here and as another
/// to `xmlsec1`; with one UTF-8 declaration first, a second declaration anywhere is an
/// error to both.
fn as_utf8_document(xml: &str) -> CoreResult<String> {
    let body = without_xml_declaration(xml)?;
    if body.to_ascii_lowercase().contains("<?xml") {
        return Err(refused("it holds a second XML declaration"));
    }
    Ok(format!("{UTF8_DECLARATION}{body}"))
}

/// `xml` after a UTF-8 byte-order mark and its XML declaration, which may name no
/// encoding but UTF-8.
fn without_xml_declaration(xml: &str) -> CoreResult<&str> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let Some(rest) = xml.strip_prefix("<?xml") else { return Ok(xml) };
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Ok(xml);
    }
    let end = rest.find("?>").ok_or_else(|| refused("an unterminated XML declaration"))?;
    let declaration = &rest[..end];
    if let Some(at) = declaration.find("encoding") {
        let value = declaration[at + "encoding".len()..]
            .trim_start()
            .strip_prefix('=')
            .map(str::trim_start)
            .and_then(|v| v.strip_prefix(['"', '\'']))
            .and_then(|v| v.split(['"', '\'']).next())
            .unwrap_or_default();
        if !value.eq_ignore_ascii_case("utf-8") {
            return Err(refused(format!("it declares the encoding {value:?}; only UTF-8 is accepted")));
        }
    }
    Ok(&rest[end + 2..])
}

/// Finishes a login whose response [`accept`] parked, in the browser holding
/// `browser_binding`: the provider, the identity and where to go.
pub async fn finish(
    context: &CoreContext,
    finish_code: &str,
    browser_binding: &str,
) -> CoreResult<(AuthProviderRecord, ExternalIdentity, String)> {
    let hash = state_hash(finish_code);
    let flow = take_bound_flow(context, finish_code, LoginFlowStage::Verified, browser_binding).await?;
    if flow.expires_at <= unix_now() {
        return Err(CoreError::LoginFailed("the login took too long; start again".into()));
    }
    let provider = context.store.require_auth_provider(&flow.provider_id).await?;
    let identity = serde_json::from_slice(&context.sealer.open(&format!("login-flow:{hash}"), &flow.sealed_secrets)?)
        .map_err(|e| CoreError::Internal(format!("parked SAML identity: {e}")))?;
    Ok((provider, identity, flow.redirect_to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_utf8_documents_are_read_and_the_declaration_goes() {
        assert_eq!(without_xml_declaration("<r/>").unwrap(), "<r/>");
        assert_eq!(without_xml_declaration("\u{feff}<?xml version=\"1.0\"?><r/>").unwrap(), "<r/>");
        assert_eq!(without_xml_declaration("<?xml version='1.0' encoding='utf-8'?>\n<r/>").unwrap(), "\n<r/>");
        for other in ["UTF-7", "ISO-8859-1", "UTF-16", ""] {
            let xml = format!("<?xml version=\"1.0\" encoding = \"{other}\"?><r/>");
            assert!(without_xml_declaration(&xml).is_err(), "{other}");
        }
        assert!(without_xml_declaration("<?xml version=\"1.0\" encoding=\"UTF-7\"").is_err());
    }

    #[test]
    fn a_second_declaration_is_refused() {
        let twice = "<?xml version=\"1.0\"?><?xml version=\"1.0\" encoding=\"UTF-7\"?><r/>";
        assert!(as_utf8_document(twice).is_err());
        assert!(as_utf8_document("<r><?XML version='1.0'?></r>").is_err());
        assert_eq!(as_utf8_document("<r/>").unwrap(), format!("{UTF8_DECLARATION}<r/>"));
    }

    #[test]
    fn split_or_nested_values_are_refused_not_truncated() {
        let document = Document::parse(
            "<r><a>alice@example.test</a><b>alice@example.test<!---->.evil.test</b><c>x<i>y</i></c><d>  </d></r>",
        )
        .unwrap();
        let values: Vec<_> = document.root_element().children().map(text_only).collect();
        assert_eq!(values[0].as_ref().unwrap(), "alice@example.test");
        assert!(values[1].is_err(), "a value split by a comment was read");
        assert!(values[2].is_err(), "a value holding an element was read");
        assert_eq!(values[3].as_ref().unwrap(), "");
    }
}
