//! `AuthService`: local and single sign-on logins, sign-out and the current session.
//! Every login method shares one per-address limit, and every attempt is recorded.

use super::{GrpcResult, respond};
use crate::auth::{Access, Credential, OpenedSession, client_address};
use crate::context::CoreContext;
use crate::convert;
use crate::domain::{ProviderKind, watched};
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::sso::{self, ExternalIdentity, oidc, saml};
use crate::store::AuthProviderRecord;
use crate::store::LoginEvent;
use crate::validate;
use gatekey::v1::auth_service_server::AuthService;
use gatekey::v1::event;
use gatekey::v1::{
    AcceptSamlResponseRequest, AcceptSamlResponseResponse, AuthorizeClientLoginRequest, AuthorizeClientLoginResponse,
    ClientLoginDescription, CompleteOidcLoginRequest, CompleteSamlLoginRequest, DescribeClientLoginRequest,
    ExchangeClientCodeRequest, GetSamlMetadataRequest, GetSamlMetadataResponse, GetSessionRequest,
    ListSignInProvidersRequest, ListSignInProvidersResponse, LocalLoginRequest, LoginResponse, LogoutRequest,
    LogoutResponse, SessionInfo, SignInProvider, StartClientLoginRequest, StartClientLoginResponse,
    StartOidcLoginRequest, StartOidcLoginResponse, StartSamlLoginRequest, StartSamlLoginResponse,
};
use std::sync::Arc;
use tonic::Request;

/// Implements `AuthService`.
#[derive(Debug, Clone)]
pub struct AuthApi(pub Arc<CoreContext>);

impl AuthApi {
    /// The caller's address, after charging it one login attempt: on this node, then
    /// (on PostgreSQL) across every node, so spreading guesses over nodes gains nothing.
    async fn admit<T>(&self, request: &Request<T>) -> CoreResult<String> {
        let address = client_address(request, &self.0.settings.client_address_trust);
        let key = crate::ratelimit::address_key(&address);
        self.0.limits.auth.check(&key)?;
        self.0.limits.auth.check_across_nodes(&self.0.store, &format!("sign-in {key}")).await?;
        Ok(address)
    }

    /// Finishes a single sign-on: the provider's verdict (`attempt`) becomes a user and
    /// a session, and the attempt is recorded either way.
    async fn external_login(
        &self,
        provider_hint: &str,
        address: &str,
        attempt: impl std::future::Future<Output = CoreResult<(AuthProviderRecord, ExternalIdentity, String)>>,
    ) -> CoreResult<LoginResponse> {
        let (mut provider_name, mut subject) = (provider_hint.to_owned(), String::new());
        let outcome: CoreResult<(OpenedSession, String)> = async {
            let (provider, identity, redirect_to) = attempt.await?;
            provider_name.clone_from(&provider.fields.name);
            subject.clone_from(&identity.email);
            let user = sso::sign_in_external(&self.0, &provider, identity).await?;
            self.0.geo_fence.enforce(&self.0.store, &user, address).await?;
            Ok((self.0.auth.open_session(user).await?, redirect_to))
        }
        .await;
        let (outcome, redirect_to) = match outcome {
            Ok((session, redirect_to)) => (Ok(session), redirect_to),
            Err(error) => (Err(error), String::new()),
        };
        self.record(&provider_name, &subject, address, &outcome).await;
        Ok(login_response(outcome?, redirect_to))
    }

    /// Records a login attempt; a failure to record is logged, never fatal. The values
    /// come from clients, so they are logged in their escaped (`Debug`) form.
    async fn record<T>(&self, provider: &str, subject: &str, address: &str, outcome: &CoreResult<T>) {
        let reason = match outcome {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.to_string(),
        };
        let event = LoginEvent {
            id: new_id(IdKind::LoginEvent),
            provider,
            subject,
            client_address: address,
            success: outcome.is_ok(),
            reason: &reason,
        };
        match self.0.store.record_login_event(event).await {
            Ok(record) => watched::publish(&self.0, event::Kind::SignIn(super::activity::sign_in(record))).await,
            Err(error) => tracing::error!(%error, "cannot record a login attempt"),
        }
        match outcome {
            Ok(_) => tracing::info!(?provider, ?subject, client_address = %address, "login"),
            Err(_) => tracing::warn!(?provider, ?subject, client_address = %address, ?reason, "login refused"),
        }
    }
}

fn login_response(session: OpenedSession, redirect_to: String) -> LoginResponse {
    LoginResponse {
        user: Some(convert::user(session.user)),
        session_token: session.token.secret.clone(),
        expires_at: Some(convert::timestamp(session.expires_at)),
        redirect_to,
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn local_login(&self, request: Request<LocalLoginRequest>) -> GrpcResult<LoginResponse> {
        respond(
            async {
                let address = self.admit(&request).await?;
                let LocalLoginRequest { username, password } = request.into_inner();
                if username.is_empty() || password.is_empty() {
                    return Err(CoreError::InvalidArgument("username and password are required".into()));
                }
                let outcome = async {
                    // No account can have such a name; it is refused (and recorded) as bad input.
                    if username.chars().count() > 256 || username.chars().any(char::is_control) {
                        return Err(CoreError::InvalidArgument(
                            "username: must be at most 256 characters, without control characters".into(),
                        ));
                    }
                    let user = self.0.auth.verify_local(&username, &password).await?;
                    self.0.geo_fence.enforce(&self.0.store, &user, &address).await?;
                    self.0.auth.open_session(user).await
                }
                .await;
                self.record("local", &username, &address, &outcome).await;
                Ok(login_response(outcome?, String::new()))
            }
            .await,
        )
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> GrpcResult<LogoutResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                self.0.auth.logout(&caller).await?;
                Ok(LogoutResponse {})
            }
            .await,
        )
    }

    async fn get_session(&self, request: Request<GetSessionRequest>) -> GrpcResult<SessionInfo> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                let (auth_method, expires_at) = match caller.credential {
                    Credential::Session { expires_at, .. } => ("session", Some(expires_at)),
                    Credential::ApiKey { expires_at, .. } => ("api_key", expires_at),
                };
                Ok(SessionInfo {
                    user: Some(convert::user(caller.user)),
                    auth_method: auth_method.into(),
                    expires_at: expires_at.map(convert::timestamp),
                })
            }
            .await,
        )
    }

    async fn start_oidc_login(&self, request: Request<StartOidcLoginRequest>) -> GrpcResult<StartOidcLoginResponse> {
        respond(
            async {
                self.admit(&request).await?;
                let input = request.into_inner();
                let redirect_to = sso::same_site_path(&input.redirect_to)?;
                let provider = sso::select_provider(&self.0, ProviderKind::Oidc, &input.provider).await?;
                let (authorization_url, binding) = oidc::start(&self.0, &provider, &redirect_to).await?;
                Ok(StartOidcLoginResponse { authorization_url, browser_binding: binding.secret })
            }
            .await,
        )
    }

    async fn complete_oidc_login(&self, request: Request<CompleteOidcLoginRequest>) -> GrpcResult<LoginResponse> {
        respond(
            async {
                let address = self.admit(&request).await?;
                let input = request.into_inner();
                let attempt = async {
                    if !input.error.is_empty() {
                        return Err(CoreError::LoginFailed(format!(
                            "the identity provider answered {:?}",
                            input.error
                        )));
                    }
                    oidc::complete(&self.0, &input.code, &input.state, &input.browser_binding).await
                };
                self.external_login("oidc", &address, attempt).await
            }
            .await,
        )
    }

    async fn start_saml_login(&self, request: Request<StartSamlLoginRequest>) -> GrpcResult<StartSamlLoginResponse> {
        respond(
            async {
                self.admit(&request).await?;
                let input = request.into_inner();
                let redirect_to = sso::same_site_path(&input.redirect_to)?;
                let provider = sso::select_provider(&self.0, ProviderKind::Saml, &input.provider).await?;
                let (redirect_url, binding) = saml::start(&self.0, &provider, &redirect_to).await?;
                Ok(StartSamlLoginResponse { redirect_url, browser_binding: binding.secret })
            }
            .await,
        )
    }

    async fn accept_saml_response(
        &self,
        request: Request<AcceptSamlResponseRequest>,
    ) -> GrpcResult<AcceptSamlResponseResponse> {
        respond(
            async {
                let address = self.admit(&request).await?;
                let input = request.into_inner();
                let provider = validate::name("provider", &input.provider)?;
                let accepted = saml::accept(&self.0, &provider, &input.saml_response, &input.relay_state).await;
                // Only a refusal is recorded here; a verified response is recorded when its
                // browser finishes the login.
                if accepted.is_err() {
                    self.record(&provider, "", &address, &accepted).await;
                }
                let (_, finish_code) = accepted?;
                Ok(AcceptSamlResponseResponse { finish_code })
            }
            .await,
        )
    }

    async fn complete_saml_login(&self, request: Request<CompleteSamlLoginRequest>) -> GrpcResult<LoginResponse> {
        respond(
            async {
                let address = self.admit(&request).await?;
                let input = request.into_inner();
                let attempt = saml::finish(&self.0, &input.finish_code, &input.browser_binding);
                self.external_login("saml", &address, attempt).await
            }
            .await,
        )
    }

    async fn list_sign_in_providers(
        &self,
        _request: Request<ListSignInProvidersRequest>,
    ) -> GrpcResult<ListSignInProvidersResponse> {
        respond(
            async {
                let mut providers = Vec::new();
                for kind in ProviderKind::ALL.iter().copied() {
                    for provider in self.0.store.auth_providers_of_kind(kind).await? {
                        providers.push(SignInProvider { name: provider.fields.name, kind: kind.as_str().to_owned() });
                    }
                }
                providers.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(ListSignInProvidersResponse { providers })
            }
            .await,
        )
    }

    async fn start_client_login(
        &self,
        request: Request<StartClientLoginRequest>,
    ) -> GrpcResult<StartClientLoginResponse> {
        respond(
            async {
                self.admit(&request).await?;
                let input = request.into_inner();
                let asked = sso::client::ClientLoginRequest {
                    provider: &input.provider,
                    redirect_uri: &input.redirect_uri,
                    code_challenge: &input.code_challenge,
                    state: &input.state,
                    client_name: &input.client_name,
                };
                let (login_url, expires_at) = sso::client::start(&self.0, asked).await?;
                Ok(StartClientLoginResponse { login_url, expires_at: Some(convert::timestamp(expires_at)) })
            }
            .await,
        )
    }

    async fn describe_client_login(
        &self,
        request: Request<DescribeClientLoginRequest>,
    ) -> GrpcResult<ClientLoginDescription> {
        respond(
            async {
                self.0.auth.authenticate(&request, Access::Read).await?;
                let flow = sso::client::pending(&self.0, &request.get_ref().flow).await?;
                Ok(ClientLoginDescription {
                    client_name: flow.client_name,
                    redirect_uri: flow.redirect_uri,
                    expires_at: Some(convert::timestamp(flow.expires_at)),
                })
            }
            .await,
        )
    }

    async fn authorize_client_login(
        &self,
        request: Request<AuthorizeClientLoginRequest>,
    ) -> GrpcResult<AuthorizeClientLoginResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Write).await?;
                // A person answers in a browser: an API key cannot hand out sessions.
                if !matches!(caller.credential, Credential::Session { .. }) {
                    return Err(CoreError::Forbidden(
                        "a client sign-in is answered from a browser session, not with an API key".into(),
                    ));
                }
                let input = request.into_inner();
                let redirect_url = sso::client::authorize(&self.0, &caller.user, &input.flow, input.allow).await?;
                tracing::info!(user = %caller.user.id, allowed = input.allow, "client sign-in answered");
                Ok(AuthorizeClientLoginResponse { redirect_url })
            }
            .await,
        )
    }

    async fn exchange_client_code(&self, request: Request<ExchangeClientCodeRequest>) -> GrpcResult<LoginResponse> {
        respond(
            async {
                let address = self.admit(&request).await?;
                let input = request.into_inner();
                let outcome = async {
                    let user = sso::client::exchange(&self.0, &input.code, &input.code_verifier).await?;
                    self.0.geo_fence.enforce(&self.0.store, &user, &address).await?;
                    self.0.auth.open_session(user).await
                }
                .await;
                let subject = outcome.as_ref().map(|session| session.user.username.clone()).unwrap_or_default();
                self.record("client", &subject, &address, &outcome).await;
                Ok(login_response(outcome?, String::new()))
            }
            .await,
        )
    }

    async fn get_saml_metadata(&self, request: Request<GetSamlMetadataRequest>) -> GrpcResult<GetSamlMetadataResponse> {
        respond(
            async {
                let provider =
                    sso::select_provider(&self.0, ProviderKind::Saml, &request.into_inner().provider).await?;
                Ok(GetSamlMetadataResponse { xml: saml::sp_metadata(&self.0, &provider) })
            }
            .await,
        )
    }
}
