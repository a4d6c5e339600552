//! Store records to contract messages.

use crate::store::{
    AccessRuleRecord, ApiKeyRecord, CertificateRecord, ConfigRecord, GatewayRecord, GeoFenceRuleRecord,
    GeoFenceSettingsRecord, NetworkRecord, SpokeRecord, UserRecord, unix_now,
};
use gatekey::v1;
use prost_types::Timestamp;

/// A Unix-seconds time as a protobuf timestamp.
pub fn timestamp(unix_seconds: i64) -> Timestamp {
    Timestamp { seconds: unix_seconds, nanos: 0 }
}

fn optional_timestamp(unix_seconds: Option<i64>) -> Option<Timestamp> {
    unix_seconds.map(timestamp)
}

/// A user message.
pub fn user(record: UserRecord) -> v1::User {
    v1::User {
        id: record.id,
        username: record.username,
        email: record.email,
        name: record.name,
        groups: record.groups,
        is_admin: record.is_admin,
        disabled: record.disabled,
        provider: record.provider,
        created_at: Some(timestamp(record.created_at)),
        last_login_at: optional_timestamp(record.last_login_at),
    }
}

/// An API-key message (never with its secret, which the record does not hold).
pub fn api_key(record: ApiKeyRecord) -> v1::ApiKey {
    v1::ApiKey {
        id: record.id,
        name: record.name,
        prefix: record.prefix,
        scopes: record.scopes,
        created_at: Some(timestamp(record.created_at)),
        expires_at: optional_timestamp(record.expires_at),
        last_used_at: optional_timestamp(record.last_used_at),
        revoked_at: optional_timestamp(record.revoked_at),
    }
}

/// Which parts of a gateway a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayView {
    /// The seed's user-facing fields only.
    User,
    /// Everything, including grants and networks.
    Admin,
}

/// A gateway message; `offline_after_seconds` without a heartbeat makes it offline.
pub fn gateway(record: GatewayRecord, view: GatewayView, offline_after_seconds: i64) -> v1::Gateway {
    let online = heard_from(record.last_heartbeat, offline_after_seconds);
    let status = if online { v1::GatewayStatus::Online } else { v1::GatewayStatus::Offline };
    let protocol = match record.protocol {
        crate::domain::Transport::Udp => v1::TransportProtocol::Udp,
        crate::domain::Transport::Tcp => v1::TransportProtocol::Tcp,
    };
    let mut message = v1::Gateway {
        id: record.id,
        name: record.name,
        description: record.description,
        hostname: record.hostname,
        port: u32::from(record.port),
        protocol: protocol.into(),
        status: status.into(),
        last_heartbeat: optional_timestamp(record.last_heartbeat),
        role: match record.role {
            crate::store::GatewayRole::Gateway => v1::GatewayRole::Gateway,
            crate::store::GatewayRole::Hub => v1::GatewayRole::Hub,
        }
        .into(),
        ..Default::default()
    };
    if view == GatewayView::Admin {
        message.vpn_subnet = record.vpn_subnet;
        message.is_active = record.is_active;
        message.network_ids = record.network_ids;
        message.user_ids = record.user_ids;
        message.groups = record.groups;
        message.created_at = Some(timestamp(record.created_at));
        message.updated_at = Some(timestamp(record.updated_at));
        message.stream_node = record.stream_node.filter(|_| online).unwrap_or_default();
    }
    message
}

/// Whether a heartbeat arrived within the last `offline_after_seconds`.
fn heard_from(last_heartbeat: Option<i64>, offline_after_seconds: i64) -> bool {
    last_heartbeat.is_some_and(|beat| unix_now() - beat <= offline_after_seconds)
}

/// `online` or `offline`, as mesh messages spell it.
fn status_word(online: bool) -> String {
    if online { "online" } else { "offline" }.into()
}

/// A mesh hub message; `advertised_cidrs` are the connected spokes' networks the
/// viewer may see.
pub fn mesh_hub(
    record: GatewayRecord,
    view: GatewayView,
    offline_after_seconds: i64,
    advertised_cidrs: Vec<String>,
) -> v1::MeshHub {
    v1::MeshHub { gateway: Some(gateway(record, view, offline_after_seconds)), advertised_cidrs }
}

/// A mesh spoke message; `online` while its tunnel to the hub is up.
pub fn mesh_spoke(record: SpokeRecord, online: bool) -> v1::MeshSpoke {
    v1::MeshSpoke {
        id: record.id,
        hub_id: record.hub_id,
        name: record.name,
        local_cidrs: record.local_cidrs,
        status: status_word(online),
        advertised_cidrs: record.advertised_cidrs,
        created_at: Some(timestamp(record.created_at)),
    }
}

/// A geo-fence settings message.
pub fn geo_fence_settings(settings: GeoFenceSettingsRecord) -> v1::GeoFenceSettings {
    v1::GeoFenceSettings {
        enabled: settings.enabled,
        mode: settings.mode.as_str().into(),
        database_path: settings.database_path,
        unknown_location_policy: settings.unknown_location_policy.as_str().into(),
    }
}

/// A geo-fence rule message.
pub fn geo_fence_rule(rule: GeoFenceRuleRecord) -> v1::GeoFenceRule {
    v1::GeoFenceRule {
        id: rule.id,
        action: rule.action.as_str().into(),
        countries: rule.countries,
        cidrs: rule.cidrs,
        scope: rule.scope.as_str().into(),
        subject: rule.subject,
    }
}

/// A network message.
pub fn network(record: NetworkRecord) -> v1::Network {
    v1::Network {
        id: record.id,
        name: record.name,
        description: record.description,
        cidrs: record.cidrs,
        gateway_ids: record.gateway_ids,
        created_at: Some(timestamp(record.created_at)),
        updated_at: Some(timestamp(record.updated_at)),
    }
}

/// Paging position of a listing.
pub fn page_info(total: u64, page: crate::store::Page) -> v1::PageInfo {
    v1::PageInfo { total, page: page.number, per_page: page.size }
}

/// A config-ledger message.
pub fn config(record: ConfigRecord) -> v1::VpnConfig {
    v1::VpnConfig {
        id: record.id,
        user_id: record.user_id,
        user_email: record.user_email,
        gateway_id: record.gateway_id,
        gateway_name: record.gateway_name,
        serial: record.certificate.serial,
        protocol: record.protocol.as_str().into(),
        created_at: Some(timestamp(record.created_at)),
        expires_at: Some(timestamp(record.expires_at)),
        revoked: record.certificate.revoked_at.is_some(),
        downloaded_at: optional_timestamp(record.downloaded_at),
    }
}

/// The revocation state of a certificate.
pub fn serial_status(record: CertificateRecord) -> v1::CheckSerialResponse {
    v1::CheckSerialResponse {
        serial: record.serial,
        revoked: record.revoked_at.is_some(),
        revoked_at: optional_timestamp(record.revoked_at),
        reason: record.revocation_reason.unwrap_or_default(),
        expires_at: Some(timestamp(record.expires_at)),
    }
}

/// An access-rule message.
pub fn access_rule(record: AccessRuleRecord) -> v1::AccessRule {
    let rule = record.fields;
    v1::AccessRule {
        id: record.id,
        name: rule.name,
        description: rule.description,
        network_id: rule.network_id,
        user_ids: rule.user_ids,
        groups: rule.groups,
        destination_type: rule.destination_type.as_str().into(),
        destination: rule.destination,
        protocol: rule.protocol.as_str().into(),
        port_from: u32::from(rule.port_from),
        port_to: u32::from(rule.port_to),
        created_at: Some(timestamp(record.created_at)),
        updated_at: Some(timestamp(record.updated_at)),
    }
}
