//! Single sign-on: picking a provider, keeping login flows safe (same-site redirects,
//! single-use state), and turning an identity the provider vouched for into a user.

pub mod oidc;
pub mod saml;

use crate::context::CoreContext;
use crate::error::{CoreError, CoreResult};
use crate::store::{AuthProviderRecord, NewUser, UserChanges, UserRecord};
use crate::validate;
use sha2::{Digest, Sha256};

/// How long a started login may take before its state expires.
pub const LOGIN_FLOW_TTL_SECONDS: i64 = 600;

/// An identity as an identity provider asserted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// E-mail address (required).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Group names.
    pub groups: Vec<String>,
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
pub async fn select_provider(context: &CoreContext, kind: &str, name: &str) -> CoreResult<AuthProviderRecord> {
    if !name.is_empty() {
        return match context.store.find_auth_provider_by_name(name).await? {
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

/// Creates or updates the user an identity provider vouched for: groups and the admin
/// role follow the provider on every login; a login can be limited to allowed groups.
pub async fn sign_in_external(
    context: &CoreContext,
    provider: &AuthProviderRecord,
    identity: ExternalIdentity,
) -> CoreResult<UserRecord> {
    let fields = &provider.fields;
    let email = validate::email(&identity.email).map_err(|_| {
        CoreError::LoginFailed(format!("the provider sent no usable e-mail address (`{}`)", identity.email))
    })?;
    let groups = validate::groups("groups", &identity.groups)
        .map_err(|e| CoreError::LoginFailed(format!("the provider sent unusable groups: {e}")))?;
    if !fields.allowed_groups.is_empty() && !groups.iter().any(|group| fields.allowed_groups.contains(group)) {
        return Err(CoreError::LoginFailed(format!("`{email}` is in none of the groups allowed to sign in")));
    }
    let is_admin = !fields.admin_group.is_empty() && groups.contains(&fields.admin_group);
    let name = if identity.name.trim().is_empty() { email.clone() } else { identity.name.trim().to_owned() };
    let user = match context.store.find_user_by_email(&email).await? {
        Some(existing) if existing.provider != fields.name => {
            return Err(CoreError::LoginFailed(format!(
                "`{email}` belongs to an account of `{}`, not `{}`",
                existing.provider, fields.name
            )));
        }
        Some(existing) => {
            let changes =
                UserChanges { name: Some(name), groups: Some(groups), is_admin: Some(is_admin), ..Default::default() };
            let mut affected = context.store.gateways_granted_to_user(&existing.id).await?;
            let user = context.store.update_user(&existing.id, changes).await?;
            affected.extend(context.store.gateways_granted_to_user(&user.id).await?);
            context.hub.rules_changed(&context.store, affected).await?;
            user
        }
        None => {
            context
                .store
                .create_user(NewUser {
                    username: email.clone(),
                    email,
                    name,
                    password_hash: None,
                    is_admin,
                    groups,
                    provider: fields.name.clone(),
                })
                .await?
        }
    };
    if user.disabled {
        return Err(CoreError::AccountDisabled);
    }
    Ok(user)
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
}
