//! What a SAML response must say once its signature holds: success, the expected
//! issuer, audience, recipient and request, a current time window, and the identity.
//! Values are read whole: an element whose text is split (by a comment, say) or that
//! holds other elements is refused rather than read in part.

use super::{ASSERTION, IdpMetadata, PROTOCOL, refused};
use crate::error::CoreResult;
use crate::sso::ExternalIdentity;
use crate::store::unix_now;
use roxmltree::{Node, NodeType};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Clock skew tolerated on assertion time windows.
const SKEW_SECONDS: i64 = 120;

/// What a response must match.
pub(super) struct Expected<'a> {
    /// The SP entity id.
    pub audience: &'a str,
    /// The ACS URL.
    pub recipient: &'a str,
    /// The AuthnRequest's ID.
    pub request_id: &'a str,
    /// The attribute holding group names.
    pub groups_attribute: &'a str,
}

/// An accepted assertion.
#[derive(Debug)]
pub(super) struct Accepted {
    /// Who it names.
    pub identity: ExternalIdentity,
    /// Its ID, for the replay guard.
    pub assertion_id: String,
    /// When it stops being valid (Unix seconds).
    pub expires_at: i64,
}

fn child<'a, 'input>(node: Node<'a, 'input>, namespace: &str, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name((namespace, name)))
}

/// The whole text of an element that holds only text, trimmed.
fn full_text(node: Node<'_, '_>) -> CoreResult<String> {
    let mut text = String::new();
    for part in node.children() {
        match part.node_type() {
            NodeType::Text => text.push_str(part.text().unwrap_or_default()),
            _ => return Err(refused(format!("<{}> must hold only text", node.tag_name().name()))),
        }
    }
    Ok(text.trim().to_owned())
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

/// Checks a response whose signature covers `assertion` (directly or through the
/// Response), and reads the identity.
pub(super) fn check(
    response: Node<'_, '_>,
    assertion: Node<'_, '_>,
    idp: &IdpMetadata,
    expected: &Expected<'_>,
) -> CoreResult<Accepted> {
    let status = child(response, PROTOCOL, "Status")
        .and_then(|s| child(s, PROTOCOL, "StatusCode"))
        .and_then(|c| c.attribute("Value"));
    if status != Some("urn:oasis:names:tc:SAML:2.0:status:Success") {
        return Err(refused("the IdP reported a failure"));
    }
    let issuer = child(assertion, ASSERTION, "Issuer").map(full_text).transpose()?.unwrap_or_default();
    if issuer != idp.entity_id {
        return Err(refused(format!("issuer {issuer:?} is not `{}`", idp.entity_id)));
    }
    let now = unix_now();
    let conditions = child(assertion, ASSERTION, "Conditions").ok_or_else(|| refused("no Conditions"))?;
    if instant(conditions.attribute("NotBefore"))?.is_some_and(|at| now + SKEW_SECONDS < at) {
        return Err(refused("not valid yet"));
    }
    let not_on_or_after = instant(conditions.attribute("NotOnOrAfter"))?.ok_or_else(|| refused("no NotOnOrAfter"))?;
    if now - SKEW_SECONDS >= not_on_or_after {
        return Err(refused("expired"));
    }
    let audiences = conditions
        .descendants()
        .filter(|n| n.has_tag_name((ASSERTION, "Audience")))
        .map(full_text)
        .collect::<CoreResult<Vec<_>>>()?;
    if !audiences.iter().any(|audience| audience == expected.audience) {
        return Err(refused(format!("it is meant for {audiences:?}, not `{}`", expected.audience)));
    }
    let subject = child(assertion, ASSERTION, "Subject").ok_or_else(|| refused("no Subject"))?;
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
    let attribute = |name: &str| -> CoreResult<Vec<String>> {
        assertion
            .descendants()
            .filter(|n| n.has_tag_name((ASSERTION, "Attribute")) && n.attribute("Name") == Some(name))
            .flat_map(|n| n.children().filter(|v| v.has_tag_name((ASSERTION, "AttributeValue"))))
            .map(full_text)
            .collect()
    };
    // The NameID is the subject an account is keyed by: a transient one names nobody
    // twice. A persistent one is best; an e-mail one makes the e-mail the subject.
    let name_id_node = child(subject, ASSERTION, "NameID").ok_or_else(|| refused("no NameID"))?;
    if name_id_node.attribute("Format") == Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient") {
        return Err(refused("its NameID is transient; configure the IdP to send a persistent one"));
    }
    let name_id = full_text(name_id_node)?;
    let email = attribute("email")?.into_iter().next().unwrap_or_else(|| name_id.clone());
    let name = attribute("name")?.into_iter().chain(attribute("displayName")?).next().unwrap_or_default();
    let groups_attribute = if expected.groups_attribute.is_empty() { "groups" } else { expected.groups_attribute };
    Ok(Accepted {
        // A SAML IdP has no `email_verified`: the e-mail it signs counts as vouched for.
        identity: ExternalIdentity {
            subject: name_id,
            email,
            email_verified: true,
            name,
            groups: attribute(groups_attribute)?,
        },
        assertion_id: assertion.attribute("ID").ok_or_else(|| refused("the assertion has no ID"))?.to_owned(),
        expires_at: not_on_or_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use roxmltree::Document;

    #[test]
    fn split_or_nested_values_are_refused_not_truncated() {
        let document = Document::parse(
            "<r><a>alice@example.test</a><b>alice@example.test<!---->.evil.test</b><c>x<i>y</i></c><d>  </d></r>",
        )
        .unwrap();
        let values: Vec<_> = document.root_element().children().map(full_text).collect();
        assert_eq!(values[0].as_ref().unwrap(), "alice@example.test");
        assert!(values[1].is_err(), "a value split by a comment was read");
        assert!(values[2].is_err(), "a value holding an element was read");
        assert_eq!(values[3].as_ref().unwrap(), "");
    }
}
