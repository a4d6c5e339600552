//! Identity providers (OIDC and SAML): listed, made, changed and deleted. Client
//! secrets are write-only: never shown, and an empty one on a change keeps the stored
//! secret.

use super::form::ConsoleForm;
use super::page::{AdminViewer, ConfirmPage, FieldErrors, Nav, Viewer, render, render_form};
use super::users::form_failure;
use crate::FacadeState;
use crate::public_routes::PublicRoutes;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_auth_provider_service_client::AdminAuthProviderServiceClient;
use gatekey::v1::{
    AuthProvider, DeleteAuthProviderRequest, GetAuthProviderRequest, ListAuthProvidersRequest, PageRequest,
};
use tonic::transport::Channel;

/// The fields of the provider form.
const PROVIDER_FIELDS: [&str; 13] = [
    "name",
    "type",
    "issuer_url",
    "client_id",
    "client_secret",
    "scopes",
    "groups_claim",
    "admin_group",
    "allowed_groups",
    "saml_idp_metadata",
    "saml_entity_id",
    "link_by_email",
    "allow_unverified_email",
];

/// A provider as the list shows it.
struct ProviderRow {
    /// Its id.
    id: String,
    /// Its name.
    name: String,
    /// `oidc` or `saml`.
    kind: String,
    /// The OIDC issuer, or the SAML IdP's entity id.
    issuer: String,
    /// Whether new subjects link to accounts with the same verified e-mail.
    link_by_email: bool,
    /// Whether unverified e-mails are accepted.
    allow_unverified_email: bool,
}

impl From<AuthProvider> for ProviderRow {
    fn from(provider: AuthProvider) -> Self {
        ProviderRow {
            issuer: if provider.r#type == "saml" {
                idp_entity_id(&provider.saml_idp_metadata).unwrap_or_default().to_owned()
            } else {
                provider.issuer_url
            },
            id: provider.id,
            name: provider.name,
            kind: provider.r#type,
            link_by_email: provider.link_by_email,
            allow_unverified_email: provider.allow_unverified_email,
        }
    }
}

/// The `entityID` of the IdP's metadata (the first in the document), for the list.
fn idp_entity_id(metadata: &str) -> Option<&str> {
    let (_, rest) = metadata.split_once("entityID=")?;
    let quote = rest.chars().next().filter(|quote| matches!(quote, '"' | '\''))?;
    rest.strip_prefix(quote)?.split(quote).next()
}

/// What the provider form holds (never the client secret).
struct ProviderFields {
    /// Name.
    name: String,
    /// `oidc` or `saml`.
    kind: String,
    /// OIDC issuer URL.
    issuer_url: String,
    /// OIDC client id.
    client_id: String,
    /// OIDC scopes, comma-separated.
    scopes: String,
    /// The groups claim or attribute.
    groups_claim: String,
    /// Members of this group become admins.
    admin_group: String,
    /// Only members of these groups may sign in, comma-separated.
    allowed_groups: String,
    /// SAML IdP metadata XML.
    saml_idp_metadata: String,
    /// SAML SP entity id.
    saml_entity_id: String,
    /// Link by verified e-mail.
    link_by_email: bool,
    /// Accept unverified e-mails.
    allow_unverified_email: bool,
}

impl Default for ProviderFields {
    fn default() -> Self {
        ProviderFields::from(AuthProvider { r#type: "oidc".into(), ..AuthProvider::default() })
    }
}

impl From<AuthProvider> for ProviderFields {
    fn from(provider: AuthProvider) -> Self {
        ProviderFields {
            scopes: provider.scopes.join(", "),
            allowed_groups: provider.allowed_groups.join(", "),
            name: provider.name,
            kind: provider.r#type,
            issuer_url: provider.issuer_url,
            client_id: provider.client_id,
            groups_claim: provider.groups_claim,
            admin_group: provider.admin_group,
            saml_idp_metadata: provider.saml_idp_metadata,
            saml_entity_id: provider.saml_entity_id,
            link_by_email: provider.link_by_email,
            allow_unverified_email: provider.allow_unverified_email,
        }
    }
}

impl ProviderFields {
    /// The fields a form posted.
    fn of(form: &ConsoleForm) -> Self {
        let data = &form.data;
        ProviderFields {
            name: data.get("name").trim().to_owned(),
            kind: data.get("type").to_owned(),
            issuer_url: data.get("issuer_url").trim().to_owned(),
            client_id: data.get("client_id").trim().to_owned(),
            scopes: data.get("scopes").to_owned(),
            groups_claim: data.get("groups_claim").trim().to_owned(),
            admin_group: data.get("admin_group").trim().to_owned(),
            allowed_groups: data.get("allowed_groups").to_owned(),
            saml_idp_metadata: data.get("saml_idp_metadata").trim().to_owned(),
            saml_entity_id: data.get("saml_entity_id").trim().to_owned(),
            link_by_email: data.checked("link_by_email"),
            allow_unverified_email: data.checked("allow_unverified_email"),
        }
    }

    /// The provider the form makes (with `id`): only the fields of its type, since the
    /// core refuses those of the other kind.
    fn provider(&self, id: String, form: &ConsoleForm) -> AuthProvider {
        let common = AuthProvider {
            id,
            name: self.name.clone(),
            r#type: self.kind.clone(),
            groups_claim: self.groups_claim.clone(),
            admin_group: self.admin_group.clone(),
            allowed_groups: form.data.list("allowed_groups"),
            link_by_email: self.link_by_email,
            allow_unverified_email: self.allow_unverified_email,
            ..AuthProvider::default()
        };
        match self.kind.as_str() {
            "oidc" => AuthProvider {
                issuer_url: self.issuer_url.clone(),
                client_id: self.client_id.clone(),
                // Trimmed: a pasted secret often brings a line break; blank keeps the stored one.
                client_secret: form.data.optional("client_secret").unwrap_or_default(),
                scopes: form.data.list("scopes"),
                ..common
            },
            "saml" => AuthProvider {
                saml_idp_metadata: self.saml_idp_metadata.clone(),
                saml_entity_id: self.saml_entity_id.clone(),
                ..common
            },
            _ => common,
        }
    }
}

/// Where the identity providers send browsers back, for the help text.
struct Endpoints(PublicRoutes);

impl Endpoints {
    /// The endpoints of this facade.
    fn of(state: &FacadeState) -> Self {
        Endpoints(PublicRoutes::new(state.options.public_origin.as_deref().unwrap_or_default()))
    }

    /// The OIDC redirect URI to register.
    fn oidc_callback(&self) -> String {
        self.0.oidc_callback()
    }

    /// The SAML SP metadata URL of provider `name` (also the default SP entity id).
    fn saml_metadata(&self, name: &str) -> String {
        self.0.saml_metadata(placeholder(name))
    }

    /// The SAML assertion consumer service URL of provider `name`.
    fn saml_acs(&self, name: &str) -> String {
        self.0.saml_acs(placeholder(name))
    }
}

/// `name`, or a placeholder for it while it is not chosen.
fn placeholder(name: &str) -> &str {
    if name.is_empty() { "<name>" } else { name }
}

/// The list and the form to make a provider.
#[derive(Template)]
#[template(path = "admin/providers.html")]
struct ProvidersPage {
    /// The navigation.
    nav: Option<Nav>,
    /// The token of the form.
    csrf: String,
    /// The providers.
    providers: Vec<ProviderRow>,
    /// The form.
    fields: ProviderFields,
    /// The form's errors.
    errors: FieldErrors,
    /// The URLs to give the providers.
    endpoints: Endpoints,
    /// Whether the form edits a stored provider (whose secret an empty field keeps).
    editing: bool,
}

/// One provider's form.
#[derive(Template)]
#[template(path = "admin/provider.html")]
struct ProviderPage {
    /// The navigation.
    nav: Option<Nav>,
    /// The token of the form.
    csrf: String,
    /// The provider's id.
    id: String,
    /// The form.
    fields: ProviderFields,
    /// The form's errors.
    errors: FieldErrors,
    /// The URLs to give the provider.
    endpoints: Endpoints,
    /// Whether the form edits a stored provider (whose secret an empty field keeps).
    editing: bool,
}

fn client(state: &FacadeState) -> AdminAuthProviderServiceClient<Channel> {
    AdminAuthProviderServiceClient::new(state.channel.clone())
}

/// The list page with the form holding `fields` and `errors`.
async fn list_page(
    state: &FacadeState,
    viewer: &Viewer,
    fields: ProviderFields,
    (status, errors): (StatusCode, FieldErrors),
) -> Response {
    let request = viewer.call.request(ListAuthProvidersRequest { page: Some(PageRequest { page: 1, per_page: 100 }) });
    let providers = match client(state).list_auth_providers(request).await {
        Ok(listed) => listed.into_inner().providers.into_iter().map(ProviderRow::from).collect(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let page = ProvidersPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        providers,
        fields,
        errors,
        endpoints: Endpoints::of(state),
        editing: false,
    };
    render_form(&page.errors, status, &page)
}

/// One provider's page with the form holding `fields` and `errors`.
fn provider_page(
    state: &FacadeState,
    viewer: &Viewer,
    id: String,
    fields: ProviderFields,
    (status, errors): (StatusCode, FieldErrors),
) -> Response {
    let page = ProviderPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        id,
        fields,
        errors,
        endpoints: Endpoints::of(state),
        editing: true,
    };
    render_form(&page.errors, status, &page)
}

/// `/admin/providers`.
pub(super) async fn list(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    list_page(&state, &viewer, ProviderFields::default(), (StatusCode::OK, FieldErrors::none())).await
}

/// `POST /admin/providers`.
pub(super) async fn create(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let fields = ProviderFields::of(&form);
    let request = form.viewer.call.request(fields.provider(String::new(), &form));
    match client(&state).create_auth_provider(request).await {
        Ok(_) => Redirect::to("/admin/providers").into_response(),
        Err(status) => match form_failure(status, &PROVIDER_FIELDS) {
            Ok(failed) => list_page(&state, &form.viewer, fields, failed).await,
            Err(error) => form.viewer.failed(error).into_response(),
        },
    }
}

/// `/admin/providers/{id}`.
pub(super) async fn edit(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_auth_provider(viewer.call.request(GetAuthProviderRequest { id: id.clone() })).await {
        Ok(provider) => {
            let fields = ProviderFields::from(provider.into_inner());
            provider_page(&state, &viewer, id, fields, (StatusCode::OK, FieldErrors::none()))
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/providers/{id}`: replaces the provider (an empty client secret keeps
/// the stored one).
pub(super) async fn update(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    let fields = ProviderFields::of(&form);
    let request = form.viewer.call.request(fields.provider(id.clone(), &form));
    match client(&state).update_auth_provider(request).await {
        Ok(_) => Redirect::to("/admin/providers").into_response(),
        Err(status) => match form_failure(status, &PROVIDER_FIELDS) {
            Ok(failed) => provider_page(&state, &form.viewer, id, fields, failed),
            Err(error) => form.viewer.failed(error).into_response(),
        },
    }
}

/// `/admin/providers/{id}/delete`: asks first.
pub(super) async fn confirm_delete(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_auth_provider(viewer.call.request(GetAuthProviderRequest { id: id.clone() })).await {
        Ok(provider) => render(&ConfirmPage {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf.clone(),
            what: format!("the identity provider {}", provider.into_inner().name),
            consequences: "Its users can no longer sign in through it.".into(),
            action: format!("/admin/providers/{id}/delete"),
            back: "/admin/providers".into(),
        }),
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/providers/{id}/delete`.
pub(super) async fn delete(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    form.viewer.then_to(
        client(&state).delete_auth_provider(form.viewer.call.request(DeleteAuthProviderRequest { id })).await,
        "/admin/providers",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idp_entity_id_is_read_from_the_metadata() {
        let metadata = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com/saml">"#;
        assert_eq!(idp_entity_id(metadata), Some("https://idp.example.com/saml"));
        assert_eq!(idp_entity_id("<EntityDescriptor entityID='x'>"), Some("x"));
        assert_eq!(idp_entity_id("no metadata"), None);
    }

    #[test]
    fn endpoints_name_the_provider_or_a_placeholder() {
        let endpoints = Endpoints(PublicRoutes::new("https://vpn.example.com"));
        assert_eq!(endpoints.saml_acs("corp"), "https://vpn.example.com/api/v1/auth/saml/acs/corp");
        assert_eq!(endpoints.saml_metadata(""), "https://vpn.example.com/api/v1/auth/saml/metadata/<name>");
        assert_eq!(endpoints.oidc_callback(), "https://vpn.example.com/api/v1/auth/oidc/callback");
    }

    #[test]
    fn the_secret_is_never_filled_in_and_its_rule_is_said() {
        let provider = AuthProvider {
            name: "corp".into(),
            r#type: "oidc".into(),
            client_id: "gatekey".into(),
            client_secret: "should-never-show".into(),
            ..AuthProvider::default()
        };
        let page = ProviderPage {
            nav: None,
            csrf: "tok".into(),
            id: "idp-1".into(),
            fields: ProviderFields::from(provider),
            errors: FieldErrors::none(),
            endpoints: Endpoints(PublicRoutes::new("")),
            editing: true,
        };
        let html = page.render().unwrap();
        assert!(!html.contains("should-never-show"));
        assert!(html.contains("leave this empty to keep the stored secret"));
        assert!(html.contains("/api/v1/auth/saml/metadata/corp") && html.contains("/api/v1/auth/oidc/callback"));
        assert!(html.contains(r#"<option value="oidc" selected>"#));
        assert!(!html.contains("style="));
    }
}
