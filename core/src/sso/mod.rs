//! Single sign-on: picking a provider, keeping login flows safe (same-site redirects,
//! single-use state bound to the browser that started it), and turning an identity
//! the provider vouched for into a user.
//!
//! Accounts are linked as follows. An external identity is keyed by (provider,
//! subject): the same subject signs into the same account whatever its e-mail becomes.
//! A new subject gets a new account unless its e-mail already belongs to one; then it
//! is linked only when the provider is configured to link by e-mail, the e-mail is
//! verified, and the account's own e-mail was vouched for by a provider configured to
//! link as well; never to a local account.

pub mod client;
pub mod oidc;
pub mod saml;

use crate::context::CoreContext;
use crate::domain::{ProviderKind, UnitOfWork, users};
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::secrets::{random_bytes, token_matches, token_verifier};
use crate::services::LOCAL_PROVIDER;
use crate::store::{AuthProviderRecord, LoginFlow, LoginFlowStage, NewUser, UserChanges, UserRecord};
use crate::validate;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a started login may take before its state expires.
pub const LOGIN_FLOW_TTL_SECONDS: i64 = 600;

/// Provider names that can never be given to an identity provider: `local` names the
/// local accounts, and the others are kept for GateKey's own use.
pub const RESERVED_PROVIDER_NAMES: [&str; 3] = [LOCAL_PROVIDER, "gatekey", "api"];

/// An identity as an identity provider asserted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The provider's stable id for the person (OIDC `sub`, SAML `NameID`).
    pub subject: String,
    /// E-mail address (required).
    pub email: String,
    /// Whether the provider vouches that the e-mail belongs to the person.
    pub email_verified: bool,
    /// Display name.
    pub name: String,
    /// Group names.
    pub groups: Vec<String>,
}

/// A secret that ties a login flow to the browser that started it: the facade keeps it
/// in a cookie, the store keeps its hash, and the completion must present it, so a
/// callback URL or a SAML response carried into another browser signs no one in.
pub struct BrowserBinding {
    /// The secret, for the browser only.
    pub secret: String,
    /// Its SHA-256, hex, for the store.
    pub hash: String,
}

impl BrowserBinding {
    /// A fresh binding of 256 random bits.
    pub fn mint() -> BrowserBinding {
        let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let hash = token_verifier(&secret);
        BrowserBinding { secret, hash }
    }

    /// Fails unless `presented` is the secret whose hash is `stored_hash` (constant time).
    pub fn check(presented: &str, stored_hash: &str) -> CoreResult<()> {
        if !presented.is_empty() && token_matches(presented, stored_hash) { Ok(()) } else { Err(other_browser()) }
    }
}

fn other_browser() -> CoreError {
    CoreError::LoginFailed("this login was started in another browser (or its cookie is gone); start it again".into())
}

/// Takes the login flow `state` names at `stage` out of the store, but only for the
/// browser presenting its binding: another browser neither uses nor spends it.
pub async fn take_bound_flow(
    context: &CoreContext,
    state: &str,
    stage: LoginFlowStage,
    presented_binding: &str,
) -> CoreResult<LoginFlow> {
    let hash = state_hash(state);
    let binding_hash = token_verifier(presented_binding);
    if let Some(flow) = context.store.take_login_flow(&hash, stage, Some(&binding_hash)).await? {
        BrowserBinding::check(presented_binding, &flow.browser_binding_hash)?;
        return Ok(flow);
    }
    if context.store.login_flow_exists(&hash).await? {
        return Err(other_browser());
    }
    Err(CoreError::LoginFailed("unknown, expired or already used login state".into()))
}

impl std::fmt::Debug for BrowserBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserBinding").field("hash", &self.hash).finish_non_exhaustive()
    }
}

/// A same-site relative path to send the browser to; anything else is refused, so
/// a login can never redirect to another site.
pub fn same_site_path(redirect_to: &str) -> CoreResult<String> {
    if redirect_to.is_empty() {
        return Ok("/".into());
    }
    let safe = redirect_to.starts_with('/')
        && !redirect_to.starts_with("//")
        && !redirect_to.contains('\\')
        && !redirect_to.chars().any(char::is_control)
        && redirect_to.len() <= 2000;
    if !safe {
        return Err(CoreError::InvalidArgument("redirect_to: must be a path on this site, such as /dashboard".into()));
    }
    Ok(redirect_to.to_owned())
}

/// The stored form of a login state (its SHA-256, hex): the state itself travels only
/// through the browser.
pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// The provider of `kind` named `name`, or the only one of that kind when `name` is empty.
pub async fn select_provider(context: &CoreContext, kind: ProviderKind, name: &str) -> CoreResult<AuthProviderRecord> {
    if !name.is_empty() {
        let name = validate::name("provider", name)?;
        return match context.store.find_auth_provider_by_name(&name).await? {
            Some(provider) if provider.fields.kind == kind => Ok(provider),
            _ => Err(CoreError::NotFound(format!("no {kind} identity provider named `{name}`"))),
        };
    }
    let mut providers = context.store.auth_providers_of_kind(kind).await?;
    match providers.len() {
        1 => providers.pop().ok_or_else(|| CoreError::Internal("provider vanished".into())),
        0 => Err(CoreError::NotFound(format!("no {kind} identity provider is configured"))),
        _ => Err(CoreError::InvalidArgument(format!(
            "provider: several {kind} providers exist; name one with ?provider="
        ))),
    }
}

fn refused(message: String) -> CoreError {
    CoreError::LoginFailed(message)
}

/// Creates, updates or links the user an identity provider vouched for: groups and the
/// admin role follow the provider on every login; a login can be limited to allowed
/// groups; see the module header for how accounts are linked.
pub async fn sign_in_external(
    context: &CoreContext,
    provider: &AuthProviderRecord,
    identity: ExternalIdentity,
) -> CoreResult<UserRecord> {
    let fields = &provider.fields;
    let subject = identity.subject.trim();
    if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return Err(refused("the provider sent no usable subject identifier".into()));
    }
    let email = validate::asserted_email(&identity.email)
        .map_err(|_| refused(format!("the provider sent no usable e-mail address ({:?})", identity.email)))?;
    if !identity.email_verified && !fields.allow_unverified_email {
        return Err(refused(format!("the provider does not vouch for the e-mail address `{email}` (not verified)")));
    }
    let groups = validate::groups("groups", &identity.groups)
        .map_err(|e| refused(format!("the provider sent unusable groups: {e}")))?;
    if !fields.allowed_groups.is_empty() && !groups.iter().any(|group| fields.allowed_groups.contains(group)) {
        return Err(refused(format!("`{email}` is in none of the groups allowed to sign in")));
    }
    let is_admin = !fields.admin_group.is_empty() && groups.contains(&fields.admin_group);
    let name = if identity.name.trim().is_empty() { email.clone() } else { identity.name.trim().to_owned() };
    let store = &context.store;
    // What to do is decided first; the account's changes then commit as one.
    let (existing, link) = match store.find_user_by_external_identity(&provider.id, subject).await? {
        Some(user) => (Some(user), false),
        None => match store.find_user_by_email(&email).await? {
            None => (None, false),
            Some(owner) => {
                may_link_by_email(context, provider, &identity, &owner).await?;
                (Some(owner), true)
            }
        },
    };
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    let user_id = match existing {
        Some(existing) => {
            if link {
                store.link_external_identity(&mut work.tx, &existing.id, &provider.id, subject).await?;
            }
            let email_change = (existing.email != email).then(|| email.clone());
            let changes = UserChanges {
                email: email_change,
                email_verified_by: Some(identity.email_verified.then(|| provider.id.clone())),
                name: Some(name),
                groups: Some(groups),
                is_admin: Some(is_admin),
                ..Default::default()
            };
            // Groups follow the provider; a change of address cuts the sessions under the
            // old one.
            users::update_in(context, &mut work, &existing.id, changes).await.map_err(|error| match error {
                CoreError::Conflict(_) => refused(format!("`{email}` belongs to another account")),
                other => other,
            })?;
            existing.id
        }
        None => {
            let new_user = NewUser {
                id: new_id(IdKind::User),
                username: email.clone(),
                email: email.clone(),
                name,
                password_hash: None,
                is_admin,
                groups,
                provider: fields.name.clone(),
                email_verified_by: identity.email_verified.then(|| provider.id.clone()),
            };
            store.create_external_user(&mut work.tx, new_user, &provider.id, subject).await.map_err(
                |error| match error {
                    CoreError::Conflict(_) => refused(format!("`{email}` is taken by another account")),
                    other => other,
                },
            )?
        }
    };
    work.commit().await?;
    let user = store.require_user(&user_id).await?;
    if user.disabled {
        return Err(CoreError::AccountDisabled);
    }
    Ok(user)
}

/// Whether a subject of `provider` may be linked to `owner`, the account holding the
/// same e-mail; refuses if not: never to a local account; only for a verified e-mail; only through a
/// provider set to link by e-mail that has no subject there yet, and only into an
/// account whose e-mail a provider also set to link by e-mail vouched for (so an
/// account someone made through a provider the admin does not trust that far, with a
/// victim's address, never receives the victim). The one exception is an account this
/// provider made before subjects were kept, which its first verified sign-in claims.
async fn may_link_by_email(
    context: &CoreContext,
    provider: &AuthProviderRecord,
    identity: &ExternalIdentity,
    owner: &UserRecord,
) -> CoreResult<()> {
    let fields = &provider.fields;
    if owner.provider == LOCAL_PROVIDER {
        return Err(refused(format!(
            "`{}` belongs to a local account, which cannot be signed into through `{}`",
            owner.email, fields.name
        )));
    }
    let linked = context.store.external_identity_providers_of(&owner.id).await?;
    let made_here_unclaimed = owner.awaiting_subject_of.as_deref() == Some(provider.id.as_str()) && linked.is_empty();
    let vouched_by_a_linking_provider = match &owner.email_verified_by {
        Some(voucher) => context.store.require_auth_provider(voucher).await.is_ok_and(|p| p.fields.link_by_email),
        None => false,
    };
    let may_link = fields.link_by_email && vouched_by_a_linking_provider && !linked.contains(&provider.id);
    if !identity.email_verified || !(made_here_unclaimed || may_link) {
        return Err(refused(format!(
            "`{}` belongs to another account; it is linked only for a verified e-mail through a provider set to link by e-mail",
            owner.email
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_paths_are_accepted() {
        assert_eq!(same_site_path("").unwrap(), "/");
        assert_eq!(same_site_path("/gateways?x=1").unwrap(), "/gateways?x=1");
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "evil", "/a\nb", "javascript:alert(1)"]
        {
            assert!(same_site_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_binding_matches_only_its_own_secret() {
        let binding = BrowserBinding::mint();
        assert!(BrowserBinding::check(&binding.secret, &binding.hash).is_ok());
        assert!(BrowserBinding::check("", &binding.hash).is_err());
        assert!(BrowserBinding::check(&BrowserBinding::mint().secret, &binding.hash).is_err());
        assert!(!format!("{binding:?}").contains(&binding.secret));
    }
}
