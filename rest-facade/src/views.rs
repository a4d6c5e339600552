//! JSON shapes of responses, converted from contract messages, and the envelope.

mod activity;

pub use activity::{CoreNodeView, DashboardView, DisconnectedView, SignInView, VpnSessionView};

use gatekey::v1;
use prost_types::Timestamp;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `{"data": …}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

/// `{"data": [...], "meta": {...}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Listed<T> {
    /// The items on this page.
    pub data: Vec<T>,
    /// Paging position.
    pub meta: Meta,
}

/// Paging position of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Meta {
    /// Items in the whole list.
    pub total: u64,
    /// This page, from 1.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
}

impl<T> Listed<T> {
    /// A list body from items and the core's page info.
    pub fn new<M>(items: Vec<M>, page: Option<v1::PageInfo>, view: impl FnMut(M) -> T) -> Self {
        let page = page.unwrap_or_default();
        Listed {
            data: items.into_iter().map(view).collect(),
            meta: Meta { total: page.total, page: page.page, per_page: page.per_page },
        }
    }
}

/// An RFC 3339 UTC time such as `2024-01-15T10:30:00Z`.
pub fn rfc3339(timestamp: Option<Timestamp>) -> Option<String> {
    let timestamp = timestamp?;
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?.format(&Rfc3339).ok()
}

/// A user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    id: String,
    username: String,
    email: String,
    name: String,
    groups: Vec<String>,
    is_admin: bool,
    disabled: bool,
    provider: String,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    last_login_at: Option<String>,
}

impl From<v1::User> for UserView {
    fn from(user: v1::User) -> Self {
        UserView {
            id: user.id,
            username: user.username,
            email: user.email,
            name: user.name,
            groups: user.groups,
            is_admin: user.is_admin,
            disabled: user.disabled,
            provider: user.provider,
            created_at: rfc3339(user.created_at),
            last_login_at: rfc3339(user.last_login_at),
        }
    }
}

/// A new session: the user and the token shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginView {
    /// The signed-in user.
    pub user: Option<UserView>,
    /// The session token.
    pub session_token: String,
    /// When the session ends.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// What a page using the session cookie sends as `X-CSRF-Token` with its changes.
    pub csrf_token: String,
}

impl From<v1::LoginResponse> for LoginView {
    fn from(login: v1::LoginResponse) -> Self {
        LoginView {
            user: login.user.map(UserView::from),
            expires_at: rfc3339(login.expires_at),
            csrf_token: crate::csrf::session_token(&login.session_token),
            session_token: login.session_token,
        }
    }
}

/// The caller's session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    user: Option<UserView>,
    auth_method: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// For a session: what a page using the session cookie sends as `X-CSRF-Token`
    /// with its changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

impl SessionView {
    /// The session `info` describes, presented as `credential`.
    pub fn new(info: v1::SessionInfo, credential: Option<&str>) -> Self {
        let csrf_token = credential.filter(|_| info.auth_method == "session").map(crate::csrf::session_token);
        SessionView {
            user: info.user.map(UserView::from),
            auth_method: info.auth_method,
            expires_at: rfc3339(info.expires_at),
            csrf_token,
        }
    }
}

/// An API key without its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

impl From<v1::ApiKey> for ApiKeyView {
    fn from(key: v1::ApiKey) -> Self {
        ApiKeyView {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            scopes: key.scopes,
            created_at: rfc3339(key.created_at),
            expires_at: rfc3339(key.expires_at),
            last_used_at: rfc3339(key.last_used_at),
            revoked_at: rfc3339(key.revoked_at),
        }
    }
}

/// A new API key with its secret, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedApiKeyView {
    /// The stored key.
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The whole key.
    pub secret: String,
}

/// A gateway as users see it: the seed's fields, and its role (`gateway`, or `hub` for
/// a mesh hub, which is a gateway on every gateway route).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayView {
    id: String,
    #[schema(example = "gateway")]
    role: &'static str,
    name: String,
    description: String,
    hostname: String,
    port: u32,
    protocol: &'static str,
    status: &'static str,
    #[schema(format = DateTime)]
    last_heartbeat: Option<String>,
}

impl From<&mut v1::Gateway> for GatewayView {
    fn from(gateway: &mut v1::Gateway) -> Self {
        GatewayView {
            id: std::mem::take(&mut gateway.id),
            role: match gateway.role() {
                v1::GatewayRole::Hub => "hub",
                _ => "gateway",
            },
            name: std::mem::take(&mut gateway.name),
            description: std::mem::take(&mut gateway.description),
            hostname: std::mem::take(&mut gateway.hostname),
            port: gateway.port,
            protocol: match gateway.protocol() {
                v1::TransportProtocol::Tcp => "tcp",
                _ => "udp",
            },
            status: match gateway.status() {
                v1::GatewayStatus::Online => "online",
                _ => "offline",
            },
            last_heartbeat: rfc3339(gateway.last_heartbeat),
        }
    }
}

impl From<v1::Gateway> for GatewayView {
    fn from(mut gateway: v1::Gateway) -> Self {
        GatewayView::from(&mut gateway)
    }
}

/// A gateway as admins see it: the seed's fields plus pool, state, grants and networks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminGatewayView {
    #[serde(flatten)]
    base: GatewayView,
    vpn_subnet: String,
    is_active: bool,
    network_ids: Vec<String>,
    user_ids: Vec<String>,
    groups: Vec<String>,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: Option<String>,
    /// The core node holding its agent's stream, while it is online.
    stream_node: Option<String>,
}

impl From<v1::Gateway> for AdminGatewayView {
    fn from(mut gateway: v1::Gateway) -> Self {
        AdminGatewayView {
            base: GatewayView::from(&mut gateway),
            vpn_subnet: gateway.vpn_subnet,
            is_active: gateway.is_active,
            network_ids: gateway.network_ids,
            user_ids: gateway.user_ids,
            groups: gateway.groups,
            created_at: rfc3339(gateway.created_at),
            updated_at: rfc3339(gateway.updated_at),
            stream_node: Some(gateway.stream_node).filter(|node| !node.is_empty()),
        }
    }
}

/// A gateway with its agent token, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GatewayWithTokenView {
    /// The gateway.
    #[serde(flatten)]
    pub gateway: AdminGatewayView,
    /// The agent token.
    pub token: String,
}

impl From<v1::CreateGatewayResponse> for GatewayWithTokenView {
    fn from(created: v1::CreateGatewayResponse) -> Self {
        GatewayWithTokenView {
            gateway: AdminGatewayView::from(created.gateway.unwrap_or_default()),
            token: created.token,
        }
    }
}

/// A mesh hub as a user sees it: the gateway it is (`role` `hub`), and
/// `advertised_cidrs`, the connected spokes' networks the viewer's rules reach.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeshHubView {
    #[serde(flatten)]
    gateway: GatewayView,
    advertised_cidrs: Vec<String>,
}

impl From<v1::MeshHub> for MeshHubView {
    fn from(hub: v1::MeshHub) -> Self {
        MeshHubView { gateway: hub.gateway.unwrap_or_default().into(), advertised_cidrs: hub.advertised_cidrs }
    }
}

/// A mesh hub as admins see it: the gateway it is, as admins see gateways, and every
/// connected spoke's networks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminMeshHubView {
    #[serde(flatten)]
    gateway: AdminGatewayView,
    advertised_cidrs: Vec<String>,
}

impl From<v1::MeshHub> for AdminMeshHubView {
    fn from(hub: v1::MeshHub) -> Self {
        AdminMeshHubView { gateway: hub.gateway.unwrap_or_default().into(), advertised_cidrs: hub.advertised_cidrs }
    }
}

/// A mesh hub with its agent token, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MeshHubWithTokenView {
    /// The hub.
    #[serde(flatten)]
    pub hub: AdminMeshHubView,
    /// The hub agent's token.
    pub token: String,
}

impl From<v1::CreateMeshHubResponse> for MeshHubWithTokenView {
    fn from(created: v1::CreateMeshHubResponse) -> Self {
        MeshHubWithTokenView { hub: AdminMeshHubView::from(created.hub.unwrap_or_default()), token: created.token }
    }
}

/// A mesh spoke.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeshSpokeView {
    id: String,
    hub_id: String,
    name: String,
    local_cidrs: Vec<String>,
    advertised_cidrs: Vec<String>,
    /// `online` while its tunnel to the hub is up.
    status: String,
    #[schema(format = DateTime)]
    created_at: Option<String>,
}

impl From<v1::MeshSpoke> for MeshSpokeView {
    fn from(spoke: v1::MeshSpoke) -> Self {
        MeshSpokeView {
            id: spoke.id,
            hub_id: spoke.hub_id,
            name: spoke.name,
            local_cidrs: spoke.local_cidrs,
            advertised_cidrs: spoke.advertised_cidrs,
            status: spoke.status,
            created_at: rfc3339(spoke.created_at),
        }
    }
}

/// A mesh spoke with its agent token, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MeshSpokeWithTokenView {
    /// The spoke.
    #[serde(flatten)]
    pub spoke: MeshSpokeView,
    /// The spoke agent's token.
    pub token: String,
}

impl From<v1::CreateMeshSpokeResponse> for MeshSpokeWithTokenView {
    fn from(created: v1::CreateMeshSpokeResponse) -> Self {
        MeshSpokeWithTokenView { spoke: MeshSpokeView::from(created.spoke.unwrap_or_default()), token: created.token }
    }
}

/// A network.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NetworkView {
    id: String,
    name: String,
    description: String,
    cidrs: Vec<String>,
    gateway_ids: Vec<String>,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: Option<String>,
}

impl From<v1::Network> for NetworkView {
    fn from(network: v1::Network) -> Self {
        NetworkView {
            id: network.id,
            name: network.name,
            description: network.description,
            cidrs: network.cidrs,
            gateway_ids: network.gateway_ids,
            created_at: rfc3339(network.created_at),
            updated_at: rfc3339(network.updated_at),
        }
    }
}

/// The answer of `POST /configs/generate`: the seed's example shows the fields at
/// the top level, and the seed's envelope puts every answer under `data`, so the
/// fields stand in both places.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GeneratedConfigView {
    config_id: String,
    download_url: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    data: GeneratedConfigFields,
}

/// The fields of a generated config's handle.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GeneratedConfigFields {
    config_id: String,
    download_url: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

impl From<v1::GenerateConfigResponse> for GeneratedConfigView {
    fn from(generated: v1::GenerateConfigResponse) -> Self {
        let fields = GeneratedConfigFields {
            download_url: crate::public_routes::config_download_path(&generated.config_id),
            config_id: generated.config_id,
            expires_at: rfc3339(generated.expires_at),
        };
        GeneratedConfigView {
            config_id: fields.config_id.clone(),
            download_url: fields.download_url.clone(),
            expires_at: fields.expires_at.clone(),
            data: fields,
        }
    }
}

/// An issued config in the ledger.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigView {
    id: String,
    user_id: String,
    user_email: String,
    gateway_id: String,
    serial: String,
    protocol: String,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    revoked: bool,
    #[schema(format = DateTime)]
    downloaded_at: Option<String>,
}

impl From<v1::VpnConfig> for ConfigView {
    fn from(config: v1::VpnConfig) -> Self {
        ConfigView {
            id: config.id,
            user_id: config.user_id,
            user_email: config.user_email,
            gateway_id: config.gateway_id,
            serial: config.serial,
            protocol: config.protocol,
            created_at: rfc3339(config.created_at),
            expires_at: rfc3339(config.expires_at),
            revoked: config.revoked,
            downloaded_at: rfc3339(config.downloaded_at),
        }
    }
}

/// Whether a certificate is revoked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SerialStatusView {
    serial: String,
    revoked: bool,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    reason: Option<String>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

impl From<v1::CheckSerialResponse> for SerialStatusView {
    fn from(status: v1::CheckSerialResponse) -> Self {
        SerialStatusView {
            serial: status.serial,
            revoked: status.revoked,
            revoked_at: rfc3339(status.revoked_at),
            reason: Some(status.reason).filter(|reason| !reason.is_empty()),
            expires_at: rfc3339(status.expires_at),
        }
    }
}

/// An access rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessRuleView {
    id: String,
    name: String,
    description: String,
    network_id: String,
    user_ids: Vec<String>,
    groups: Vec<String>,
    destination_type: String,
    destination: String,
    protocol: String,
    port_from: u32,
    port_to: u32,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: Option<String>,
}

impl From<v1::AccessRule> for AccessRuleView {
    fn from(rule: v1::AccessRule) -> Self {
        AccessRuleView {
            id: rule.id,
            name: rule.name,
            description: rule.description,
            network_id: rule.network_id,
            user_ids: rule.user_ids,
            groups: rule.groups,
            destination_type: rule.destination_type,
            destination: rule.destination,
            protocol: rule.protocol,
            port_from: rule.port_from,
            port_to: rule.port_to,
            created_at: rfc3339(rule.created_at),
            updated_at: rfc3339(rule.updated_at),
        }
    }
}

/// One allowed destination, as agents apply it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FirewallRuleView {
    destination: String,
    protocol: String,
    port_from: u32,
    port_to: u32,
}

impl From<v1::FirewallRule> for FirewallRuleView {
    fn from(rule: v1::FirewallRule) -> Self {
        FirewallRuleView {
            destination: rule.destination,
            protocol: rule.protocol,
            port_from: rule.port_from,
            port_to: rule.port_to,
        }
    }
}

/// The verdict on a connecting client.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyView {
    allowed: bool,
    reason: Option<String>,
    user_id: Option<String>,
    rules: Vec<FirewallRuleView>,
    push_routes: Vec<String>,
    /// Networks behind a mesh spoke, routed into its tunnel by the hub.
    iroutes: Vec<String>,
}

impl From<v1::VerifyResponse> for VerifyView {
    fn from(verdict: v1::VerifyResponse) -> Self {
        VerifyView {
            allowed: verdict.allowed,
            reason: Some(verdict.reason).filter(|r| !r.is_empty()),
            user_id: Some(verdict.user_id).filter(|u| !u.is_empty()),
            rules: verdict.rules.into_iter().map(FirewallRuleView::from).collect(),
            push_routes: verdict.push_routes,
            iroutes: verdict.iroutes,
        }
    }
}

/// One identity's rules at a gateway.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientRulesView {
    common_name: String,
    user_id: String,
    rules: Vec<FirewallRuleView>,
    push_routes: Vec<String>,
}

impl From<v1::ClientRules> for ClientRulesView {
    fn from(client: v1::ClientRules) -> Self {
        ClientRulesView {
            common_name: client.common_name,
            user_id: client.user_id,
            rules: client.rules.into_iter().map(FirewallRuleView::from).collect(),
            push_routes: client.push_routes,
        }
    }
}

/// Every identity's rules at one version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleSnapshotView {
    version: u64,
    clients: Vec<ClientRulesView>,
}

impl From<v1::RuleSnapshot> for RuleSnapshotView {
    fn from(snapshot: v1::RuleSnapshot) -> Self {
        RuleSnapshotView {
            version: snapshot.version,
            clients: snapshot.clients.into_iter().map(ClientRulesView::from).collect(),
        }
    }
}

/// A gateway's server material (it carries the server's private key).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProvisionView {
    gateway_id: String,
    ca_certificate_pem: String,
    server_certificate_pem: String,
    server_private_key_pem: String,
    tls_crypt_key: String,
    vpn_subnet: String,
    port: u32,
    protocol: String,
    crl_pem: String,
    config_version: u64,
    /// `gateway`, or `hub` for a mesh hub.
    role: String,
}

impl From<v1::ProvisionResponse> for ProvisionView {
    fn from(material: v1::ProvisionResponse) -> Self {
        ProvisionView {
            gateway_id: material.gateway_id,
            ca_certificate_pem: material.ca_certificate_pem,
            server_certificate_pem: material.server_certificate_pem,
            server_private_key_pem: material.server_private_key_pem,
            tls_crypt_key: material.tls_crypt_key,
            vpn_subnet: material.vpn_subnet,
            port: material.port,
            protocol: material.protocol,
            crl_pem: material.crl_pem,
            config_version: material.config_version,
            role: material.role,
        }
    }
}

/// An identity provider (never with its client secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthProviderView {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    issuer_url: String,
    client_id: String,
    scopes: Vec<String>,
    groups_claim: String,
    admin_group: String,
    allowed_groups: Vec<String>,
    saml_idp_metadata: String,
    saml_entity_id: String,
    link_by_email: bool,
    allow_unverified_email: bool,
}

impl From<v1::AuthProvider> for AuthProviderView {
    fn from(provider: v1::AuthProvider) -> Self {
        AuthProviderView {
            id: provider.id,
            name: provider.name,
            kind: provider.r#type,
            issuer_url: provider.issuer_url,
            client_id: provider.client_id,
            scopes: provider.scopes,
            groups_claim: provider.groups_claim,
            admin_group: provider.admin_group,
            allowed_groups: provider.allowed_groups,
            saml_idp_metadata: provider.saml_idp_metadata,
            saml_entity_id: provider.saml_entity_id,
            link_by_email: provider.link_by_email,
            allow_unverified_email: provider.allow_unverified_email,
        }
    }
}

/// The answer to a DELETE.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedView {
    /// The deleted resource's id.
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

/// Geo-fence settings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GeoFenceSettingsView {
    enabled: bool,
    mode: String,
    database_path: String,
    unknown_location_policy: String,
}

impl From<v1::GeoFenceSettings> for GeoFenceSettingsView {
    fn from(settings: v1::GeoFenceSettings) -> Self {
        GeoFenceSettingsView {
            enabled: settings.enabled,
            mode: settings.mode,
            database_path: settings.database_path,
            unknown_location_policy: settings.unknown_location_policy,
        }
    }
}

/// A geo-fence rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GeoFenceRuleView {
    id: String,
    action: String,
    countries: Vec<String>,
    cidrs: Vec<String>,
    scope: String,
    subject: String,
}

impl From<v1::GeoFenceRule> for GeoFenceRuleView {
    fn from(rule: v1::GeoFenceRule) -> Self {
        GeoFenceRuleView {
            id: rule.id,
            action: rule.action,
            countries: rule.countries,
            cidrs: rule.cidrs,
            scope: rule.scope,
            subject: rule.subject,
        }
    }
}

/// A geo-fence verdict and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GeoFenceCheckView {
    allowed: bool,
    country: Option<String>,
    rule_id: Option<String>,
    explanation: String,
}

impl From<v1::GeoFenceCheckResponse> for GeoFenceCheckView {
    fn from(check: v1::GeoFenceCheckResponse) -> Self {
        let present = |value: String| (!value.is_empty()).then_some(value);
        GeoFenceCheckView {
            allowed: check.allowed,
            country: present(check.country),
            rule_id: present(check.rule_id),
            explanation: check.explanation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let stamp = Timestamp { seconds: 1_705_314_600, nanos: 0 };
        assert_eq!(rfc3339(Some(stamp)).as_deref(), Some("2024-01-15T10:30:00Z"));
        assert_eq!(rfc3339(None), None);
    }

    #[test]
    fn user_gateways_show_exactly_the_seed_fields() {
        let gateway = v1::Gateway {
            id: "gw-1".into(),
            name: "us-east-1".into(),
            port: 1194,
            status: v1::GatewayStatus::Online.into(),
            protocol: v1::TransportProtocol::Udp.into(),
            vpn_subnet: "10.8.0.0/24".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(GatewayView::from(gateway)).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["description", "hostname", "id", "last_heartbeat", "name", "port", "protocol", "role", "status"]
        );
        assert_eq!(json["status"], "online");
        assert_eq!(json["role"], "gateway");
        assert_eq!(json["protocol"], "udp");
    }
}
