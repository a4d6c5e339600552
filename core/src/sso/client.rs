//! Native clients' sign-in in the system browser, as RFC 8252 has it. The client (the
//! `gatekey` command) listens on a loopback port, keeps a random verifier and starts a
//! flow with the verifier's SHA-256; the user signs in at the identity provider in a
//! browser and, back on GateKey's consent page, lets the client sign in as them; the
//! browser then brings a one-time code to the client's loopback listener, and the
//! client exchanges code and verifier for a session of its own.
//!
//! - The flow id travels only in the browser and is stored hashed; it expires in ten
//!   minutes and can be answered once.
//! - The code is stored hashed, works once (the first exchange spends it, right or
//!   wrong), for two minutes, and only with the verifier: a code stolen from a browser
//!   history, a log or another local process is worthless.
//! - Codes go only to loopback URLs (`http://127.0.0.1:<port>/…`, `http://[::1]:<port>/…`)
//!   and only after the signed-in user said yes on a page that names the client.

use super::state_hash;
use crate::context::CoreContext;
use crate::domain::ProviderKind;
use crate::error::{CoreError, CoreResult};
use crate::secrets::random_bytes;
use crate::store::{ClientLoginRecord, UserRecord, unix_now};
use crate::validate;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatekey_rest::public_routes::CLIENT_CONSENT_PATH;
use openidconnect::url::{Host, Url};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a flow waits for the user.
const FLOW_SECONDS: i64 = 600;
/// How long a code waits for the client.
const CODE_SECONDS: i64 = 120;

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(message.into())
}

/// A client's loopback URL: `http`, the IPv4 or IPv6 loopback address, an explicit
/// port, no user, query or fragment.
pub fn loopback_redirect(value: &str) -> CoreResult<String> {
    let problem = || {
        invalid("redirect_uri: must be http://127.0.0.1:<port>/… or http://[::1]:<port>/… (a listener of the client's)")
    };
    if value.len() > 300 {
        return Err(problem());
    }
    let url = Url::parse(value).map_err(|_| problem())?;
    let loopback = match url.host() {
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        _ => false,
    };
    let plain = url.scheme() == "http"
        && url.port().is_some_and(|port| port != 0)
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if !(loopback && plain) {
        return Err(problem());
    }
    Ok(url.to_string())
}

/// A verifier's challenge: BASE64URL(SHA-256), 43 characters.
pub fn challenge(value: &str) -> CoreResult<String> {
    let valid = value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(invalid("code_challenge: must be BASE64URL(SHA-256(verifier)), 43 characters"));
    }
    Ok(value.to_owned())
}

/// The challenge of `verifier`.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` (43 to 128 unreserved characters) is the one behind `challenge`.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && bool::from(challenge_of(verifier).as_bytes().ct_eq(challenge.as_bytes()))
}

fn secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What a client asks for when it starts.
#[derive(Debug)]
pub struct ClientLoginRequest<'a> {
    /// The identity provider's name, or empty for the only one.
    pub provider: &'a str,
    /// The client's loopback URL.
    pub redirect_uri: &'a str,
    /// The verifier's challenge.
    pub code_challenge: &'a str,
    /// The client's opaque value.
    pub state: &'a str,
    /// How the client names itself.
    pub client_name: &'a str,
}

/// Starts a flow; answers the URL the user opens and when the flow expires.
pub async fn start(context: &CoreContext, request: ClientLoginRequest<'_>) -> CoreResult<(String, i64)> {
    let redirect_uri = loopback_redirect(request.redirect_uri)?;
    let code_challenge = challenge(request.code_challenge)?;
    let state = validate::reported("state", request.state, 128)?;
    let client_name = match validate::text("client_name", request.client_name, 100)? {
        name if name.is_empty() => "a GateKey client".to_owned(),
        name => name,
    };
    let provider = provider(context, request.provider).await?;
    let flow = secret();
    let expires_at = unix_now() + FLOW_SECONDS;
    let record = ClientLoginRecord {
        client_name,
        redirect_uri,
        code_challenge,
        state,
        expires_at,
        user_id: None,
        code_expires_at: None,
    };
    context.store.create_client_login(&state_hash(&flow), &record).await?;
    let login = context.settings.public_routes.sso_login(provider.fields.kind.as_str());
    let mut url =
        Url::parse(&login).map_err(|e| CoreError::Internal(format!("the public URL makes no login URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("provider", &provider.fields.name)
        .append_pair("redirect_to", &format!("{CLIENT_CONSENT_PATH}?flow={flow}"));
    Ok((url.to_string(), expires_at))
}

/// The provider named `name`, or the only one there is.
async fn provider(context: &CoreContext, name: &str) -> CoreResult<crate::store::AuthProviderRecord> {
    if !name.is_empty() {
        let name = validate::name("provider", name)?;
        return context
            .store
            .find_auth_provider_by_name(&name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no identity provider named `{name}`")));
    }
    let mut providers = context.store.auth_providers_of_kind(ProviderKind::Oidc).await?;
    providers.extend(context.store.auth_providers_of_kind(ProviderKind::Saml).await?);
    match providers.len() {
        0 => Err(invalid("provider: no identity provider is configured; sign in with a password instead")),
        1 => Ok(providers.remove(0)),
        _ => {
            let names: Vec<_> = providers.iter().map(|provider| provider.fields.name.as_str()).collect();
            Err(invalid(format!("provider: several identity providers exist; name one of {}", names.join(", "))))
        }
    }
}

fn not_pending() -> CoreError {
    CoreError::NotFound(
        "this sign-in request is unknown, expired or already answered; start again from the client".into(),
    )
}

/// The pending flow `flow` names.
pub async fn pending(context: &CoreContext, flow: &str) -> CoreResult<ClientLoginRecord> {
    let flow = validate::reported("flow", flow, 128)?;
    context.store.pending_client_login(&state_hash(&flow)).await?.ok_or_else(not_pending)
}

/// The signed-in `user` answers flow `flow`; answers where the browser goes next: the
/// client's loopback URL with a fresh code (or with `error=access_denied`).
pub async fn authorize(context: &CoreContext, user: &UserRecord, flow: &str, allow: bool) -> CoreResult<String> {
    let record = pending(context, flow).await?;
    let flow_hash = state_hash(flow);
    let mut url = Url::parse(&record.redirect_uri).map_err(|_| not_pending())?;
    if !allow {
        if !context.store.refuse_client_login(&flow_hash).await? {
            return Err(not_pending());
        }
        url.query_pairs_mut().append_pair("error", "access_denied").append_pair("state", &record.state);
        return Ok(url.to_string());
    }
    let code = secret();
    let issued = context
        .store
        .authorize_client_login(&flow_hash, &user.id, &state_hash(&code), unix_now() + CODE_SECONDS)
        .await?;
    if !issued {
        return Err(not_pending());
    }
    url.query_pairs_mut().append_pair("code", &code).append_pair("state", &record.state);
    Ok(url.to_string())
}

/// The user a code and its verifier sign in; the code is spent either way.
pub async fn exchange(context: &CoreContext, code: &str, verifier: &str) -> CoreResult<UserRecord> {
    let refused = |why: &str| CoreError::LoginFailed(why.to_owned());
    if code.is_empty() || code.len() > 128 {
        return Err(refused("the code is unknown or already used"));
    }
    let Some(record) = context.store.take_client_code(&state_hash(code)).await? else {
        return Err(refused("the code is unknown or already used"));
    };
    if record.code_expires_at.is_none_or(|deadline| deadline < unix_now()) {
        return Err(refused("the code expired; sign in again"));
    }
    if !verifier_matches(verifier, &record.code_challenge) {
        return Err(refused("the code verifier does not match the challenge"));
    }
    let user_id = record.user_id.ok_or_else(|| refused("the code is unknown or already used"))?;
    let user = context.store.require_user(&user_id).await?;
    if user.disabled {
        return Err(CoreError::AccountDisabled);
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_go_only_to_loopback_listeners() {
        assert_eq!(loopback_redirect("http://127.0.0.1:53682/callback").unwrap(), "http://127.0.0.1:53682/callback");
        assert!(loopback_redirect("http://[::1]:8400/").is_ok());
        for bad in [
            "http://localhost:8400/",
            "https://127.0.0.1:8400/",
            "http://127.0.0.1/",
            "http://127.0.0.1:0/",
            "http://evil.example:8400/",
            "http://127.0.0.1.evil.example:8400/",
            "http://user@127.0.0.1:8400/",
            "http://127.0.0.1:8400/?next=x",
            "http://10.0.0.1:8400/",
            "javascript:alert(1)",
        ] {
            assert!(loopback_redirect(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verifiers_match_only_their_challenge() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = challenge_of(verifier);
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "RFC 7636 appendix B");
        assert!(super::challenge(&challenge).is_ok());
        assert!(verifier_matches(verifier, &challenge));
        assert!(!verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", &challenge));
        assert!(!verifier_matches("short", &challenge_of("short")), "too short to be a verifier");
        assert!(super::challenge("not a challenge").is_err());
    }
}
