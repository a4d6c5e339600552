//! What a SAML response must say once its signature holds: success, the expected
//! issuer, audience, recipient and request, a current time window, and the identity.
//! Values are read whole (see [`text_only`]), and only where SAML puts them, as direct
//! children along their path: an attribute smuggled elsewhere in the assertion, such
//! as inside the signature's unsigned `KeyInfo`, is never read.

use super::{ASSERTION, IdpMetadata, PROTOCOL, refused, text_only};
use crate::error::CoreResult;
use crate::sso::ExternalIdentity;
use crate::store::unix_now;
use roxmltree::Node;
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

/// The direct children of `node` named `name` in `namespace`.
fn children<'a, 'input>(
    node: Node<'a, 'input>,
    namespace: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(move |n| n.has_tag_name((namespace, name)))
}

/// The one direct child of `node` named `name`: none or several is refused.
fn only_child<'a, 'input>(node: Node<'a, 'input>, namespace: &'a str, name: &'a str) -> CoreResult<Node<'a, 'input>> {
    let mut found = children(node, namespace, name);
    match (found.next(), found.next()) {
        (Some(child), None) => Ok(child),
        (None, _) => Err(refused(format!("no {name}"))),
        (Some(_), Some(_)) => Err(refused(format!("more than one {name}"))),
    }
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
    let status = only_child(response, PROTOCOL, "Status")
        .and_then(|s| only_child(s, PROTOCOL, "StatusCode"))?
        .attribute("Value");
    if status != Some("urn:oasis:names:tc:SAML:2.0:status:Success") {
        return Err(refused("the IdP reported a failure"));
    }
    let issuer = text_only(only_child(assertion, ASSERTION, "Issuer")?)?;
    if issuer != idp.entity_id {
        return Err(refused(format!("issuer {issuer:?} is not `{}`", idp.entity_id)));
    }
    let now = unix_now();
    let conditions = only_child(assertion, ASSERTION, "Conditions")?;
    if instant(conditions.attribute("NotBefore"))?.is_some_and(|at| now + SKEW_SECONDS < at) {
        return Err(refused("not valid yet"));
    }
    let not_on_or_after = instant(conditions.attribute("NotOnOrAfter"))?.ok_or_else(|| refused("no NotOnOrAfter"))?;
    if now - SKEW_SECONDS >= not_on_or_after {
        return Err(refused("expired"));
    }
    let audiences = children(conditions, ASSERTION, "AudienceRestriction")
        .flat_map(|restriction| children(restriction, ASSERTION, "Audience"))
        .map(text_only)
        .collect::<CoreResult<Vec<_>>>()?;
    if !audiences.iter().any(|audience| audience == expected.audience) {
        return Err(refused(format!("it is meant for {audiences:?}, not `{}`", expected.audience)));
    }
    let subject = only_child(assertion, ASSERTION, "Subject")?;
    let confirmation =
        only_child(only_child(subject, ASSERTION, "SubjectConfirmation")?, ASSERTION, "SubjectConfirmationData")?;
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
        children(assertion, ASSERTION, "AttributeStatement")
            .flat_map(|statement| children(statement, ASSERTION, "Attribute"))
            .filter(|attribute| attribute.attribute("Name") == Some(name))
            .flat_map(|attribute| children(attribute, ASSERTION, "AttributeValue"))
            .map(text_only)
            .collect()
    };
    // The NameID is the subject an account is keyed by: a transient one names nobody
    // twice. A persistent one is best; an e-mail one makes the e-mail the subject.
    let name_id_node = only_child(subject, ASSERTION, "NameID")?;
    if name_id_node.attribute("Format") == Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient") {
        return Err(refused("its NameID is transient; configure the IdP to send a persistent one"));
    }
    let name_id = text_only(name_id_node)?;
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
    fn only_direct_children_are_read_and_twins_refused() {
        let document = Document::parse("<r xmlns=\"urn:t\"><a>1</a><b><a>2</a></b><c/><c/></r>").unwrap();
        let root = document.root_element();
        assert_eq!(children(root, "urn:t", "a").count(), 1, "a nested element is not a child");
        assert!(only_child(root, "urn:t", "a").is_ok());
        assert!(only_child(root, "urn:t", "c").is_err(), "two of a kind");
        assert!(only_child(root, "urn:t", "d").is_err(), "none");
    }
}
