//! `AuthService`: local sign-in, sign-out and the current session.

use super::{GrpcResult, respond};
use crate::auth::{Access, Credential};
use crate::context::CoreContext;
use crate::convert;
use crate::error::CoreError;
use gatekey::v1::auth_service_server::AuthService;
use gatekey::v1::{
    CompleteOidcLoginRequest, CompleteSamlLoginRequest, GetSamlMetadataRequest, GetSamlMetadataResponse,
    GetSessionRequest, LocalLoginRequest, LoginResponse, LogoutRequest, LogoutResponse, SessionInfo,
    StartOidcLoginRequest, StartOidcLoginResponse, StartSamlLoginRequest, StartSamlLoginResponse,
};
use std::sync::Arc;
use tonic::Request;

/// Single sign-on, named in answers to its methods until it is built.
const SINGLE_SIGN_ON: &str = "single sign-on (OIDC and SAML)";

/// Implements `AuthService`.
#[derive(Debug, Clone)]
pub struct AuthApi(pub Arc<CoreContext>);

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn local_login(&self, request: Request<LocalLoginRequest>) -> GrpcResult<LoginResponse> {
        let LocalLoginRequest { username, password } = request.into_inner();
        respond(
            async {
                if username.is_empty() || password.is_empty() {
                    return Err(CoreError::InvalidArgument("username and password are required".into()));
                }
                let session = self.0.auth.login_local(&username, &password).await?;
                Ok(LoginResponse {
                    user: Some(convert::user(session.user)),
                    session_token: session.token.secret,
                    expires_at: Some(convert::timestamp(session.expires_at)),
                    redirect_to: String::new(),
                })
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

    async fn start_oidc_login(&self, _: Request<StartOidcLoginRequest>) -> GrpcResult<StartOidcLoginResponse> {
        respond(Err(CoreError::NotImplemented(SINGLE_SIGN_ON)))
    }

    async fn complete_oidc_login(&self, _: Request<CompleteOidcLoginRequest>) -> GrpcResult<LoginResponse> {
        respond(Err(CoreError::NotImplemented(SINGLE_SIGN_ON)))
    }

    async fn start_saml_login(&self, _: Request<StartSamlLoginRequest>) -> GrpcResult<StartSamlLoginResponse> {
        respond(Err(CoreError::NotImplemented(SINGLE_SIGN_ON)))
    }

    async fn complete_saml_login(&self, _: Request<CompleteSamlLoginRequest>) -> GrpcResult<LoginResponse> {
        respond(Err(CoreError::NotImplemented(SINGLE_SIGN_ON)))
    }

    async fn get_saml_metadata(&self, _: Request<GetSamlMetadataRequest>) -> GrpcResult<GetSamlMetadataResponse> {
        respond(Err(CoreError::NotImplemented(SINGLE_SIGN_ON)))
    }
}
