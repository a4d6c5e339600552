//! Hand-written `Debug` for messages that carry secrets (see `SECRET_MESSAGES` in
//! `build.rs`): the listed fields are shown, the secret ones never are.

use crate::v1::{
    AcceptSamlResponseRequest, AcceptSamlResponseResponse, AuthProvider, CompleteOidcLoginRequest,
    CompleteSamlLoginRequest, CreateApiKeyResponse, CreateGatewayResponse, CreateMeshHubResponse,
    CreateMeshSpokeResponse, CreateUserRequest, DownloadConfigResponse, LocalLoginRequest, LoginResponse,
    ProvisionResponse, ProvisionSpokeResponse, StartOidcLoginResponse, StartSamlLoginResponse, UpdateUserRequest,
};
use std::fmt;

/// Implements `Debug` showing only the named fields, ending with `..` for the rest.
macro_rules! debug_without_secrets {
    ($($message:ident { $($field:ident),* $(,)? })*) => {$(
        impl fmt::Debug for $message {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($message))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    )*};
}

debug_without_secrets! {
    LocalLoginRequest { username }
    LoginResponse { user, expires_at, redirect_to }
    StartOidcLoginResponse { authorization_url }
    CompleteOidcLoginRequest { error }
    StartSamlLoginResponse { redirect_url }
    AcceptSamlResponseRequest { provider }
    AcceptSamlResponseResponse {}
    CompleteSamlLoginRequest {}
    CreateApiKeyResponse { api_key }
    CreateGatewayResponse { gateway }
    CreateUserRequest { username, email, name, is_admin, groups }
    UpdateUserRequest { id, email, name, is_admin, disabled, groups }
    DownloadConfigResponse { file_name }
    ProvisionResponse { gateway_id, vpn_subnet, port, protocol, config_version, role }
    AuthProvider { id, name, r#type, issuer_url, client_id, scopes, groups_claim, admin_group, link_by_email, allow_unverified_email }
    CreateMeshHubResponse { hub }
    CreateMeshSpokeResponse { spoke }
    ProvisionSpokeResponse { spoke, expires_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_in_debug_output() {
        let login = LocalLoginRequest { username: "alice".into(), password: "hunter2-secret".into() };
        let shown = format!("{login:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");

        let key = CreateApiKeyResponse { api_key: None, secret: "gk_top_secret".into() };
        assert!(!format!("{key:?}").contains("gk_top_secret"));

        let provision = ProvisionResponse {
            server_private_key_pem: "-----BEGIN PRIVATE KEY-----".into(),
            tls_crypt_key: "static key".into(),
            ..Default::default()
        };
        let shown = format!("{provision:?}");
        assert!(!shown.contains("PRIVATE KEY") && !shown.contains("static key"), "{shown}");
        let spoke = ProvisionSpokeResponse { openvpn_config: "<key>PRIVATE</key>".into(), ..Default::default() };
        assert!(!format!("{spoke:?}").contains("PRIVATE"));
    }
}
