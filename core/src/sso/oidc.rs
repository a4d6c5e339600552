//! OpenID Connect login: discovery, authorization code flow with PKCE, state and
//! nonce kept (sealed) in the store for one use and bound to the starting browser,
//! ID-token validation by the `openidconnect` crate (signature, issuer, audience,
//! expiry, nonce), and claims merged from the ID token and the userinfo endpoint.

use super::{BrowserBinding, ExternalIdentity, LOGIN_FLOW_TTL_SECONDS, state_hash, take_bound_flow};
use crate::context::CoreContext;
use crate::error::{CoreError, CoreResult};
use crate::store::{AuthProviderRecord, LoginFlow, LoginFlowStage, unix_now};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AccessToken, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, reqwest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// The secrets of a flow, sealed in the store until the callback.
#[derive(Serialize, Deserialize)]
struct FlowSecrets {
    nonce: String,
    pkce_verifier: String,
}

/// Context under which a flow's secrets are sealed.
fn flow_context(state_hash: &str) -> String {
    format!("login-flow:{state_hash}")
}

/// The HTTP client for provider calls: no redirects (no SSRF through a provider's
/// answers), short timeouts.
fn http_client() -> CoreResult<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| CoreError::Internal(format!("HTTP client: {e}")))
}

fn unavailable(provider: &AuthProviderRecord, error: impl std::fmt::Display) -> CoreError {
    CoreError::ProviderUnavailable(format!(
        "identity provider `{}` cannot be used right now: {error}",
        provider.fields.name
    ))
}

/// The callback URL registered with providers.
pub fn redirect_url(context: &CoreContext) -> String {
    context.settings.public_routes.oidc_callback()
}

async fn discover(provider: &AuthProviderRecord, http: &reqwest::Client) -> CoreResult<CoreProviderMetadata> {
    let issuer = IssuerUrl::new(provider.fields.issuer_url.clone()).map_err(|e| unavailable(provider, e))?;
    CoreProviderMetadata::discover_async(issuer, http).await.map_err(|e| unavailable(provider, e))
}

/// Starts a login: returns the provider URL to send the browser to, and the binding
/// the browser must keep for the callback.
pub async fn start(
    context: &CoreContext,
    provider: &AuthProviderRecord,
    redirect_to: &str,
) -> CoreResult<(String, BrowserBinding)> {
    let http = http_client()?;
    let metadata = discover(provider, &http).await?;
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(provider.fields.client_id.clone()), None)
        .set_redirect_uri(RedirectUrl::new(redirect_url(context)).map_err(|e| CoreError::Internal(e.to_string()))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in provider.fields.scopes.iter().filter(|scope| *scope != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let hash = state_hash(state.secret());
    let binding = BrowserBinding::mint();
    let secrets = FlowSecrets { nonce: nonce.secret().clone(), pkce_verifier: verifier.secret().clone() };
    let sealed = context
        .sealer
        .seal(&flow_context(&hash), &serde_json::to_vec(&secrets).map_err(|e| CoreError::Internal(e.to_string()))?)?;
    context
        .store
        .create_login_flow(
            &hash,
            &LoginFlow {
                provider_id: provider.id.clone(),
                sealed_secrets: sealed,
                redirect_to: redirect_to.to_owned(),
                browser_binding_hash: binding.hash.clone(),
                stage: LoginFlowStage::Started,
                expires_at: unix_now() + LOGIN_FLOW_TTL_SECONDS,
            },
        )
        .await?;
    Ok((url.to_string(), binding))
}

/// Completes a login from the callback's `code` and `state`, in the browser holding
/// `browser_binding`: the provider, the identity it vouched for, and where to send
/// the browser.
pub async fn complete(
    context: &CoreContext,
    code: &str,
    state: &str,
    browser_binding: &str,
) -> CoreResult<(AuthProviderRecord, ExternalIdentity, String)> {
    let hash = state_hash(state);
    let flow = take_bound_flow(context, state, LoginFlowStage::Started, browser_binding).await?;
    if flow.expires_at <= unix_now() {
        return Err(CoreError::LoginFailed("the login took too long; start again".into()));
    }
    let provider = context.store.require_auth_provider(&flow.provider_id).await?;
    if provider.fields.kind != crate::domain::ProviderKind::Oidc {
        return Err(CoreError::LoginFailed("this login state does not belong to an OIDC login".into()));
    }
    let secrets: FlowSecrets =
        serde_json::from_slice(&context.sealer.open(&flow_context(&hash), &flow.sealed_secrets)?)
            .map_err(|e| CoreError::Internal(format!("login flow secrets: {e}")))?;
    if code.is_empty() {
        return Err(CoreError::LoginFailed("the callback carried no authorization code".into()));
    }

    let http = http_client()?;
    let metadata = discover(&provider, &http).await?;
    let userinfo_endpoint = metadata.userinfo_endpoint().map(|url| url.url().clone());
    let secret = match &provider.fields.sealed_client_secret {
        Some(sealed) => {
            Some(ClientSecret::new(context.sealer.open_text(&client_secret_context(&provider.id), sealed)?))
        }
        None => None,
    };
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(provider.fields.client_id.clone()), secret)
        .set_redirect_uri(RedirectUrl::new(redirect_url(context)).map_err(|e| CoreError::Internal(e.to_string()))?);
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| unavailable(&provider, e))?
        .set_pkce_verifier(PkceCodeVerifier::new(secrets.pkce_verifier))
        .request_async(&http)
        .await
        .map_err(|e| CoreError::LoginFailed(format!("the provider refused the authorization code: {e}")))?;
    let id_token =
        tokens.id_token().ok_or_else(|| CoreError::LoginFailed("the provider returned no ID token".into()))?;
    id_token
        .claims(&client.id_token_verifier(), &Nonce::new(secrets.nonce))
        .map_err(|e| CoreError::LoginFailed(format!("the ID token is not valid: {e}")))?;
    // Verified above: now read every claim, including ones the crate does not model.
    let mut claims = jwt_payload(&id_token.to_string())?;
    if let Some(endpoint) = userinfo_endpoint {
        merge_userinfo(&http, endpoint, tokens.access_token(), &mut claims).await;
    }
    let identity = identity_from_claims(&claims, &provider.fields.groups_claim);
    Ok((provider, identity, flow.redirect_to))
}

/// Context under which a provider's client secret is sealed.
pub fn client_secret_context(provider_id: &str) -> String {
    format!("oidc-client-secret:{provider_id}")
}

/// The claims of a JWT whose signature was already verified.
fn jwt_payload(jwt: &str) -> CoreResult<Map<String, Value>> {
    let payload = jwt.split('.').nth(1).ok_or_else(|| CoreError::LoginFailed("malformed ID token".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| CoreError::LoginFailed("malformed ID token".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| CoreError::LoginFailed("malformed ID token claims".into()))
}

/// Adds userinfo claims the ID token lacks (the ID token wins where both have one).
async fn merge_userinfo(
    http: &reqwest::Client,
    endpoint: openidconnect::url::Url,
    token: &AccessToken,
    claims: &mut Map<String, Value>,
) {
    let answer = http.get(endpoint).bearer_auth(token.secret()).send().await;
    let info: Option<Map<String, Value>> = match answer {
        Ok(response) if response.status().is_success() => {
            response.bytes().await.ok().and_then(|body| serde_json::from_slice(&body).ok())
        }
        Ok(response) => {
            tracing::warn!(status = %response.status(), "userinfo request refused");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "userinfo request failed");
            None
        }
    };
    for (key, value) in info.unwrap_or_default() {
        claims.entry(key).or_insert(value);
    }
}

/// Subject, e-mail (and whether it is verified), name and groups from merged claims.
/// `email_verified` counts only as JSON `true` (or the string `"true"`, as some
/// providers send it).
fn identity_from_claims(claims: &Map<String, Value>, groups_claim: &str) -> ExternalIdentity {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let groups = match claims.get(groups_claim) {
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(verified)) => verified == "true",
        _ => false,
    };
    ExternalIdentity { subject: text("sub"), email: text("email"), email_verified, name: text("name"), groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_configured_claim() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"sub": "s1", "email": "a@example.com", "email_verified": true, "name": "A", "roles": ["eng", "ops", 7], "groups": "ignored"}"#,
        )
        .unwrap();
        let identity = identity_from_claims(&claims, "roles");
        assert_eq!(
            identity,
            ExternalIdentity {
                subject: "s1".into(),
                email: "a@example.com".into(),
                email_verified: true,
                name: "A".into(),
                groups: vec!["eng".into(), "ops".into()]
            }
        );
        assert_eq!(identity_from_claims(&claims, "groups").groups, ["ignored"]);
        assert!(identity_from_claims(&claims, "missing").groups.is_empty());
    }

    #[test]
    fn only_a_true_email_verified_counts() {
        for (claims, verified) in [
            (r#"{"email_verified": true}"#, true),
            (r#"{"email_verified": "true"}"#, true),
            (r#"{"email_verified": false}"#, false),
            (r#"{"email_verified": "yes"}"#, false),
            (r#"{"email_verified": 1}"#, false),
            (r#"{}"#, false),
        ] {
            let claims: Map<String, Value> = serde_json::from_str(claims).unwrap();
            assert_eq!(identity_from_claims(&claims, "groups").email_verified, verified, "{claims:?}");
        }
    }

    #[test]
    fn jwt_payloads_decode() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"email":"a@example.com"}"#);
        assert_eq!(jwt_payload(&format!("h.{payload}.s")).unwrap()["email"], "a@example.com");
        assert!(jwt_payload("garbage").is_err());
    }
}
