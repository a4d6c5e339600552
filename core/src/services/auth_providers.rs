//! `AdminAuthProviderService`: identity providers, managed by admins or declared in
//! the providers file. Client secrets are sealed at rest and never returned.

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::domain::{ProviderKind, UnitOfWork};
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::sso::oidc::client_secret_context;
use crate::store::{AuthProviderFields, AuthProviderRecord};
use crate::validate;
use gatekey::v1::admin_auth_provider_service_server::AdminAuthProviderService;
use gatekey::v1::{
    AuthProvider, DeleteAuthProviderRequest, DeleteAuthProviderResponse, GetAuthProviderRequest,
    ListAuthProvidersRequest, ListAuthProvidersResponse,
};
use std::sync::Arc;
use tonic::Request;

/// Scopes asked for when none are configured.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// Implements `AdminAuthProviderService`.
#[derive(Debug, Clone)]
pub struct AdminAuthProviderApi(pub Arc<CoreContext>);

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(message.into())
}

/// The provider as admins see it: everything but the secret.
fn view(record: AuthProviderRecord) -> AuthProvider {
    let fields = record.fields;
    AuthProvider {
        id: record.id,
        name: fields.name,
        r#type: fields.kind.as_str().into(),
        issuer_url: fields.issuer_url,
        client_id: fields.client_id,
        client_secret: String::new(),
        scopes: fields.scopes,
        groups_claim: fields.groups_claim,
        admin_group: fields.admin_group,
        allowed_groups: fields.allowed_groups,
        saml_idp_metadata: fields.saml_idp_metadata,
        saml_entity_id: fields.saml_entity_id,
        link_by_email: fields.link_by_email,
        allow_unverified_email: fields.allow_unverified_email,
    }
}

/// The longest client secret accepted (providers issue far shorter ones).
const MAX_CLIENT_SECRET_CHARACTERS: usize = 4096;

/// Checks a provider message; the secret is returned apart, still in clear.
fn fields(input: &AuthProvider) -> CoreResult<AuthProviderFields> {
    let name = validate::name("name", &input.name)?;
    if crate::sso::RESERVED_PROVIDER_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(invalid(format!("name: `{name}` is reserved; choose another name")));
    }
    let (link_by_email, allow_unverified_email) = (input.link_by_email, input.allow_unverified_email);
    let groups_claim = if input.groups_claim.is_empty() {
        "groups".to_owned()
    } else {
        validate::text("groups_claim", &input.groups_claim, 100)?
    };
    let admin_group = if input.admin_group.is_empty() {
        String::new()
    } else {
        validate::groups("admin_group", std::slice::from_ref(&input.admin_group))?.pop().unwrap_or_default()
    };
    let allowed_groups = validate::groups("allowed_groups", &input.allowed_groups)?;
    refuse_fields_of_the_other_kind(input)?;
    if input.client_secret.chars().count() > MAX_CLIENT_SECRET_CHARACTERS {
        return Err(invalid(format!("client_secret: must be at most {MAX_CLIENT_SECRET_CHARACTERS} characters")));
    }
    match ProviderKind::parse_field("type", &input.r#type)? {
        ProviderKind::Oidc => {
            let issuer = input.issuer_url.trim();
            let parsed = openidconnect::url::Url::parse(issuer)
                .map_err(|_| invalid(format!("issuer_url: `{issuer}` is not a URL")))?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
                return Err(invalid("issuer_url: must be an http(s) URL"));
            }
            let client_id = validate::text("client_id", &input.client_id, 200)?;
            if client_id.is_empty() {
                return Err(invalid("client_id: is required"));
            }
            let mut scopes: Vec<String> =
                if input.scopes.is_empty() { DEFAULT_SCOPES.map(str::to_owned).to_vec() } else { input.scopes.clone() };
            if let Some(bad) = scopes
                .iter()
                .find(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || "_:.-".contains(c)))
            {
                return Err(invalid(format!("scopes: `{bad}` is not a scope")));
            }
            if !scopes.iter().any(|s| s == "openid") {
                scopes.insert(0, "openid".into());
            }
            Ok(AuthProviderFields {
                name,
                kind: ProviderKind::Oidc,
                issuer_url: issuer.trim_end_matches('/').to_owned(),
                client_id,
                sealed_client_secret: None,
                scopes,
                groups_claim,
                admin_group,
                allowed_groups,
                saml_idp_metadata: String::new(),
                saml_entity_id: String::new(),
                link_by_email,
                allow_unverified_email,
            })
        }
        ProviderKind::Saml => {
            crate::sso::saml::parse_idp_metadata(&input.saml_idp_metadata)?;
            Ok(AuthProviderFields {
                name,
                kind: ProviderKind::Saml,
                issuer_url: String::new(),
                client_id: String::new(),
                sealed_client_secret: None,
                scopes: Vec::new(),
                groups_claim,
                admin_group,
                allowed_groups,
                saml_idp_metadata: input.saml_idp_metadata.clone(),
                saml_entity_id: validate::text("saml_entity_id", &input.saml_entity_id, 500)?,
                link_by_email,
                allow_unverified_email,
            })
        }
    }
}

/// Refuses settings that belong to the other kind of provider, rather than ignore them
/// (a SAML provider given an issuer URL was surely meant to be another provider).
fn refuse_fields_of_the_other_kind(input: &AuthProvider) -> CoreResult<()> {
    let (other_kind, given) = match input.r#type.as_str() {
        "oidc" => (
            "saml",
            [
                ("saml_idp_metadata", !input.saml_idp_metadata.is_empty()),
                ("saml_entity_id", !input.saml_entity_id.is_empty()),
            ]
            .to_vec(),
        ),
        "saml" => (
            "oidc",
            [
                ("issuer_url", !input.issuer_url.is_empty()),
                ("client_id", !input.client_id.is_empty()),
                ("client_secret", !input.client_secret.is_empty()),
                ("scopes", !input.scopes.is_empty()),
            ]
            .to_vec(),
        ),
        _ => return Ok(()),
    };
    match given.into_iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(invalid(format!("{field}: applies to {other_kind} providers only"))),
        None => Ok(()),
    }
}

/// Who issues a provider's subjects: the OIDC issuer, or the SAML IdP's entity id.
/// Subjects of one issuer mean nothing at another.
fn issuer(fields: &AuthProviderFields) -> (String, String) {
    let saml_entity =
        crate::sso::saml::parse_idp_metadata(&fields.saml_idp_metadata).map(|idp| idp.entity_id).unwrap_or_default();
    (fields.issuer_url.clone(), saml_entity)
}

impl AdminAuthProviderApi {
    /// Creates a provider, or replaces the one with the same id (`replace`), sealing a
    /// new client secret (bound to the provider's id, made here for a new one); an empty
    /// secret on replace keeps the old one. One write either way.
    pub async fn save(
        &self,
        input: &AuthProvider,
        replace: Option<&AuthProviderRecord>,
    ) -> CoreResult<AuthProviderRecord> {
        let mut fields = fields(input)?;
        let store = &self.0.store;
        let id = replace.map_or_else(|| new_id(IdKind::AuthProvider), |existing| existing.id.clone());
        let mut work = UnitOfWork::begin(&self.0).await?;
        // What is replaced is read again under a lock: a concurrent replacement that
        // committed meanwhile decides the old issuer, secret and name.
        let existing = match replace {
            Some(_) => Some(store.lock_auth_provider(&mut work.tx, &id).await?),
            None => None,
        };
        fields.sealed_client_secret = match (input.client_secret.is_empty(), &existing) {
            (false, _) => Some(self.0.sealer.seal(&client_secret_context(&id), input.client_secret.as_bytes())?),
            (true, Some(existing)) => existing.fields.sealed_client_secret.clone(),
            (true, None) => None,
        };
        match &existing {
            Some(existing) => {
                let issuer_changed = issuer(&existing.fields) != issuer(&fields);
                if issuer_changed {
                    tracing::warn!(provider = %existing.fields.name, "the provider's issuer changed; its linked subjects are forgotten");
                }
                store.replace_auth_provider(&mut work.tx, existing, &fields, issuer_changed).await?;
            }
            None => store.create_auth_provider(&mut work.tx, &id, &fields).await?,
        }
        work.commit().await?;
        store.require_auth_provider(&id).await
    }
}

#[tonic::async_trait]
impl AdminAuthProviderService for AdminAuthProviderApi {
    async fn list_auth_providers(
        &self,
        request: Request<ListAuthProvidersRequest>,
    ) -> GrpcResult<ListAuthProvidersResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_auth_providers(page).await?;
                Ok(ListAuthProvidersResponse {
                    providers: listing.items.into_iter().map(view).collect(),
                    page: Some(crate::convert::page_info(listing.total, page)),
                })
            }
            .await,
        )
    }

    async fn get_auth_provider(&self, request: Request<GetAuthProviderRequest>) -> GrpcResult<AuthProvider> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let provider = self.0.store.require_auth_provider(validate::id("id", &request.get_ref().id)?).await?;
                Ok(view(provider))
            }
            .await,
        )
    }

    async fn create_auth_provider(&self, request: Request<AuthProvider>) -> GrpcResult<AuthProvider> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                Ok(view(self.save(request.get_ref(), None).await?))
            }
            .await,
        )
    }

    async fn update_auth_provider(&self, request: Request<AuthProvider>) -> GrpcResult<AuthProvider> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let existing = self.0.store.require_auth_provider(validate::id("id", &request.get_ref().id)?).await?;
                Ok(view(self.save(request.get_ref(), Some(&existing)).await?))
            }
            .await,
        )
    }

    async fn delete_auth_provider(
        &self,
        request: Request<DeleteAuthProviderRequest>,
    ) -> GrpcResult<DeleteAuthProviderResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.delete_auth_provider(&mut work.tx, validate::id("id", &request.get_ref().id)?).await?;
                work.commit().await?;
                Ok(DeleteAuthProviderResponse {})
            }
            .await,
        )
    }
}
