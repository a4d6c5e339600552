//! Authentication and authorisation: who is calling (session token or API key from
//! the `authorization` metadata), what the credential allows, and local sign-in.

use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::secrets::{
    API_KEY_PREFIX, GATEWAY_TOKEN_PREFIX, MintedToken, SESSION_TOKEN_PREFIX, SPOKE_TOKEN_PREFIX, hash_password,
    mint_token, random_password, token_matches, token_selector, verify_password,
};
use crate::store::{GatewayRecord, SpokeRecord, Store, UserRecord, unix_now};
use std::sync::OnceLock;
use tonic::Request;

/// What a method does, so API-key scopes can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Changes nothing; needs the `read` scope.
    Read,
    /// Changes state; needs the `write` scope.
    Write,
}

impl Access {
    /// The scope name that grants this access.
    pub fn scope(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A sign-in session.
    Session {
        /// `ses-…`
        id: String,
        /// Unix seconds.
        expires_at: i64,
    },
    /// An API key.
    ApiKey {
        /// `key-…`
        id: String,
        /// Unix seconds, if it expires.
        expires_at: Option<i64>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user behind the credential.
    pub user: UserRecord,
    /// The credential used.
    pub credential: Credential,
}

impl Caller {
    /// Fails unless the caller holds the admin role.
    pub fn require_admin(&self) -> CoreResult<()> {
        if self.user.is_admin {
            Ok(())
        } else {
            Err(CoreError::Forbidden("this method requires the admin role".into()))
        }
    }
}

/// A newly opened session.
#[derive(Debug)]
pub struct OpenedSession {
    /// The signed-in user.
    pub user: UserRecord,
    /// The token to hand to the client once.
    pub token: MintedToken,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Checks credentials against the store.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    session_ttl_seconds: i64,
}

impl Authenticator {
    /// An authenticator whose sessions last `session_ttl_seconds`.
    pub fn new(store: Store, session_ttl_seconds: i64) -> Self {
        Authenticator { store, session_ttl_seconds }
    }

    /// Identifies the caller of `request` and checks its credential allows `access`.
    pub async fn authenticate<T>(&self, request: &Request<T>, access: Access) -> CoreResult<Caller> {
        let token = bearer_token(request)?;
        let caller = if token.starts_with(API_KEY_PREFIX) {
            self.authenticate_api_key(token, access).await?
        } else {
            self.authenticate_session(token).await?
        };
        if caller.user.disabled {
            return Err(CoreError::AccountDisabled);
        }
        Ok(caller)
    }

    async fn authenticate_session(&self, token: &str) -> CoreResult<Caller> {
        let invalid = || CoreError::Unauthenticated("invalid or expired session token".into());
        let selector = token_selector(token, SESSION_TOKEN_PREFIX).ok_or_else(invalid)?;
        let (session, user) = self.store.find_session(selector).await?.ok_or_else(invalid)?;
        if !token_matches(token, &session.verifier) {
            return Err(invalid());
        }
        if session.expires_at <= unix_now() {
            self.store.delete_session(&session.id).await?;
            return Err(invalid());
        }
        Ok(Caller { user, credential: Credential::Session { id: session.id, expires_at: session.expires_at } })
    }

    async fn authenticate_api_key(&self, token: &str, access: Access) -> CoreResult<Caller> {
        let invalid = || CoreError::Unauthenticated("invalid API key".into());
        let selector = token_selector(token, API_KEY_PREFIX).ok_or_else(invalid)?;
        let key = self.store.find_api_key_by_selector(selector).await?.ok_or_else(invalid)?;
        if !token_matches(token, &key.verifier) {
            return Err(invalid());
        }
        if key.revoked_at.is_some() {
            return Err(CoreError::Unauthenticated("this API key has been revoked".into()));
        }
        if key.expires_at.is_some_and(|expiry| expiry <= unix_now()) {
            return Err(CoreError::Unauthenticated("this API key has expired".into()));
        }
        if !key.scopes.iter().any(|scope| scope == access.scope()) {
            return Err(CoreError::InsufficientScope(access.scope()));
        }
        self.store.touch_api_key(&key).await?;
        let user = self.store.find_user(&key.user_id).await?.ok_or_else(invalid)?;
        Ok(Caller { user, credential: Credential::ApiKey { id: key.id, expires_at: key.expires_at } })
    }

    /// Identifies the gateway (or hub) calling with `x-gateway-token` metadata.
    pub async fn authenticate_gateway<T>(&self, request: &Request<T>) -> CoreResult<GatewayRecord> {
        let (token, selector) = agent_token(request, "x-gateway-token", "gateway", GATEWAY_TOKEN_PREFIX)?;
        let found = self.store.find_gateway_by_token_selector(selector).await?;
        let Some((gateway, _)) = found.filter(|(_, verifier)| token_matches(token, verifier)) else {
            return Err(CoreError::Unauthenticated("invalid gateway token".into()));
        };
        if !gateway.is_active {
            return Err(CoreError::Forbidden(format!("gateway `{}` is deactivated", gateway.name)));
        }
        Ok(gateway)
    }

    /// Like [`Authenticator::authenticate_gateway`], also answering the presented token's
    /// selector (which tells this token from the gateway's next one).
    pub async fn authenticate_gateway_token<T>(&self, request: &Request<T>) -> CoreResult<(GatewayRecord, String)> {
        let gateway = self.authenticate_gateway(request).await?;
        let (_, selector) = agent_token(request, "x-gateway-token", "gateway", GATEWAY_TOKEN_PREFIX)?;
        Ok((gateway, selector.to_owned()))
    }

    /// Identifies the mesh spoke calling with `x-spoke-token` metadata.
    pub async fn authenticate_spoke<T>(&self, request: &Request<T>) -> CoreResult<SpokeRecord> {
        let (token, selector) = agent_token(request, "x-spoke-token", "spoke", SPOKE_TOKEN_PREFIX)?;
        match self.store.find_spoke_by_token_selector(selector).await? {
            Some((spoke, verifier)) if token_matches(token, &verifier) => Ok(spoke),
            _ => Err(CoreError::Unauthenticated("invalid spoke token".into())),
        }
    }

    /// The enabled local account that `password` proves; the caller opens its session.
    pub async fn verify_local(&self, username: &str, password: &str) -> CoreResult<UserRecord> {
        let Some((user_id, Some(stored_hash))) = self.store.password_hash_for(username).await? else {
            // Spend the same time as a real check so usernames cannot be probed by timing.
            verify_password(password, dummy_password_hash());
            return Err(CoreError::InvalidCredentials);
        };
        if !verify_password(password, &stored_hash) {
            return Err(CoreError::InvalidCredentials);
        }
        let user = self.store.require_user(&user_id).await?;
        if user.disabled {
            return Err(CoreError::AccountDisabled);
        }
        Ok(user)
    }

    /// Opens a session for a user who has just proven who they are.
    pub async fn open_session(&self, user: UserRecord) -> CoreResult<OpenedSession> {
        let token = mint_token(SESSION_TOKEN_PREFIX);
        let expires_at = unix_now() + self.session_ttl_seconds;
        let id = new_id(IdKind::Session);
        let mut tx = self.store.begin_write().await?;
        self.store.touch_last_login(&mut tx, &user.id).await?;
        self.store.create_session(&mut tx, &id, &user.id, &token, expires_at).await?;
        tx.commit().await?;
        Ok(OpenedSession { user, token, expires_at })
    }

    /// Ends the caller's session; API keys are not sessions and are revoked elsewhere.
    pub async fn logout(&self, caller: &Caller) -> CoreResult<()> {
        match &caller.credential {
            Credential::Session { id, .. } => self.store.delete_session(id).await,
            Credential::ApiKey { .. } => Err(CoreError::Forbidden(
                "logout ends a session; an API key is revoked with DELETE /api/v1/api-keys/{id}".into(),
            )),
        }
    }
}

/// Metadata key of the client address a REST facade resolved at its HTTP edge.
pub const CLIENT_ADDRESS_METADATA: &str = "x-gatekey-client-address";
/// Metadata key of the secret that shows a request comes from a trusted REST facade.
pub const FACADE_KEY_METADATA: &str = "x-gatekey-facade-key";

/// Whom the core believes about a request's client address.
#[derive(Clone, Default)]
pub struct ClientAddressTrust {
    /// SHA-256 (hex) of the keys of the facades whose `x-gatekey-client-address` is
    /// believed: the in-process facade's (random per process) and a configured one.
    pub facade_key_verifiers: Vec<String>,
    /// gRPC peers (an L7 proxy in front of the gRPC port) whose last `x-forwarded-for`
    /// hop is believed; none by default.
    pub grpc_proxies: Vec<ipnet::IpNet>,
}

impl std::fmt::Debug for ClientAddressTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAddressTrust")
            .field("facade_keys", &self.facade_key_verifiers.len())
            .field("grpc_proxies", &self.grpc_proxies)
            .finish()
    }
}

/// The client behind a request: the address a trusted facade resolved (it presents a
/// facade key), or the last `x-forwarded-for` hop from a trusted gRPC proxy, or the
/// transport peer. Anything else that reaches the gRPC port, a local process included,
/// is judged by its own address.
pub fn client_address<T>(request: &Request<T>, trust: &ClientAddressTrust) -> String {
    let metadata = request.metadata();
    let text = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
    let from_facade = text(FACADE_KEY_METADATA)
        .filter(|key| trust.facade_key_verifiers.iter().any(|verifier| token_matches(key, verifier)))
        .and_then(|_| text(CLIENT_ADDRESS_METADATA))
        .and_then(|address| address.trim().parse::<std::net::IpAddr>().ok());
    if let Some(address) = from_facade {
        return address.to_canonical().to_string();
    }
    let peer = request.remote_addr().map(|address| address.ip());
    let forwarded = || {
        text("x-forwarded-for")
            .and_then(|value| value.rsplit(',').next())
            .and_then(|hop| hop.trim().parse::<std::net::IpAddr>().ok())
    };
    match peer {
        Some(peer) if trust.grpc_proxies.iter().any(|proxy| proxy.contains(&peer)) => {
            forwarded().unwrap_or(peer).to_canonical().to_string()
        }
        Some(peer) => peer.to_canonical().to_string(),
        None => "unknown".to_owned(),
    }
}

/// An agent's token from `header` metadata and its selector; `what` names the agent
/// in errors.
fn agent_token<'r, T>(
    request: &'r Request<T>,
    header: &str,
    what: &str,
    prefix: &str,
) -> CoreResult<(&'r str, &'r str)> {
    let invalid = || CoreError::Unauthenticated(format!("invalid {what} token"));
    let token = request
        .metadata()
        .get(header)
        .ok_or_else(|| CoreError::Unauthenticated(format!("{what} token required: send {header}")))?
        .to_str()
        .map_err(|_| invalid())?;
    let selector = token_selector(token, prefix).ok_or_else(invalid)?;
    Ok((token, selector))
}

/// The token of `authorization: Bearer <token>`.
fn bearer_token<T>(request: &Request<T>) -> CoreResult<&str> {
    let header = request
        .metadata()
        .get("authorization")
        .ok_or_else(|| CoreError::Unauthenticated("authentication required: send a bearer token".into()))?;
    let value =
        header.to_str().map_err(|_| CoreError::Unauthenticated("the authorization header is not valid text".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| CoreError::Unauthenticated("the authorization header must be `Bearer <token>`".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(CoreError::Unauthenticated("the authorization header must be `Bearer <token>`".into()));
    }
    Ok(token.trim())
}

/// A hash of a random password, checked when a username is unknown.
fn dummy_password_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_password()).unwrap_or_default())
}
