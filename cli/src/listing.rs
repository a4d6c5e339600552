//! `gatekey gateways`, `gatekey hubs` and `gatekey config`: what the user may use, and
//! a profile for other OpenVPN clients; and choosing a gateway by a name prefix.

use crate::failure::Failure;
use gatekey::Client;
use gatekey::v1::{Gateway, GatewayStatus};
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

/// A time as RFC 3339, or "" for none.
pub fn rfc3339(timestamp: Option<prost_types::Timestamp>) -> String {
    timestamp
        .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at.seconds).ok())
        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn status_word(gateway: &Gateway) -> &'static str {
    if gateway.status() == GatewayStatus::Online { "online" } else { "offline" }
}

fn protocol_word(gateway: &Gateway) -> String {
    gateway.protocol().as_str_name().trim_start_matches("TRANSPORT_PROTOCOL_").to_ascii_lowercase()
}

/// `gatekey gateways`.
pub async fn gateways(client: &Client, as_json: bool) -> Result<String, Failure> {
    let gateways = client.gateways().await.map_err(|error| Failure::from_sdk("listing gateways", error))?;
    if as_json {
        let rows: Vec<_> = gateways
            .iter()
            .map(|gateway| {
                json!({"id": gateway.id, "name": gateway.name, "description": gateway.description,
                       "hostname": gateway.hostname, "port": gateway.port, "protocol": protocol_word(gateway),
                       "status": status_word(gateway), "last_heartbeat": rfc3339(gateway.last_heartbeat)})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default());
    }
    if gateways.is_empty() {
        return Ok("No gateway is granted to you. Ask an administrator.".into());
    }
    let mut out = format!("{:<24} {:<8} {:<32} {}\n", "NAME", "STATUS", "ADDRESS", "DESCRIPTION");
    for gateway in &gateways {
        let address = format!("{}:{}/{}", gateway.hostname, gateway.port, protocol_word(gateway));
        out.push_str(&format!(
            "{:<24} {:<8} {:<32} {}\n",
            gateway.name,
            status_word(gateway),
            address,
            gateway.description
        ));
    }
    Ok(out.trim_end().to_owned())
}

/// `gatekey hubs`.
pub async fn hubs(client: &Client, as_json: bool) -> Result<String, Failure> {
    let hubs = client.hubs().await.map_err(|error| Failure::from_sdk("listing mesh hubs", error))?;
    if as_json {
        let rows: Vec<_> = hubs
            .iter()
            .map(|hub| {
                let gateway = hub.gateway.clone().unwrap_or_default();
                json!({"id": gateway.id, "name": gateway.name, "hostname": gateway.hostname, "port": gateway.port,
                       "protocol": protocol_word(&gateway), "status": status_word(&gateway),
                       "networks": hub.advertised_cidrs})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default());
    }
    if hubs.is_empty() {
        return Ok("No mesh hub is granted to you.".into());
    }
    let mut out = format!("{:<24} {:<8} {:<32} {}\n", "NAME", "STATUS", "ADDRESS", "NETWORKS");
    for hub in &hubs {
        let gateway = hub.gateway.clone().unwrap_or_default();
        let address = format!("{}:{}/{}", gateway.hostname, gateway.port, protocol_word(&gateway));
        out.push_str(&format!(
            "{:<24} {:<8} {:<32} {}\n",
            gateway.name,
            status_word(&gateway),
            address,
            hub.advertised_cidrs.join(", ")
        ));
    }
    Ok(out.trim_end().to_owned())
}

/// The gateway (or hub) `wanted` names: an exact name or id, or a unique name prefix;
/// with no name, the only one the user may use.
pub async fn choose(client: &Client, wanted: Option<&str>) -> Result<Gateway, Failure> {
    let mut choices = client.gateways().await.map_err(|error| Failure::from_sdk("listing gateways", error))?;
    let hubs = client.hubs().await.map_err(|error| Failure::from_sdk("listing mesh hubs", error))?;
    choices.extend(hubs.into_iter().filter_map(|hub| hub.gateway));
    let names = |list: &[Gateway]| list.iter().map(|gateway| gateway.name.as_str()).collect::<Vec<_>>().join(", ");
    let Some(wanted) = wanted else {
        return match choices.len() {
            0 => Err(Failure::Refused("no gateway is granted to you; ask an administrator".into())),
            1 => Ok(choices.remove(0)),
            _ => Err(Failure::Refused(format!("several gateways are granted to you; name one of {}", names(&choices)))),
        };
    };
    if let Some(exact) = choices.iter().position(|gateway| gateway.name == wanted || gateway.id == wanted) {
        return Ok(choices.remove(exact));
    }
    let mut matching: Vec<Gateway> = choices.into_iter().filter(|gateway| gateway.name.starts_with(wanted)).collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(Failure::Refused(format!("no gateway granted to you is called `{wanted}`; see `gatekey gateways`"))),
        _ => Err(Failure::Refused(format!("`{wanted}` could be {}; give more of the name", names(&matching)))),
    }
}

/// A fresh profile: its `.ovpn` text, its certificate's serial and expiry.
pub struct Profile {
    /// The `.ovpn` text (it holds the private key).
    pub content: String,
    /// The certificate's serial.
    pub serial: String,
    /// When the certificate expires.
    pub expires_at: Option<prost_types::Timestamp>,
}

/// A fresh profile for `gateway`.
pub async fn profile(client: &Client, gateway: &Gateway) -> Result<Profile, Failure> {
    let generated =
        client.generate_config(&gateway.id).await.map_err(|error| Failure::from_sdk("generating a profile", error))?;
    let file = client
        .download_config(&generated.config_id)
        .await
        .map_err(|error| Failure::from_sdk("downloading the profile", error))?;
    Ok(Profile { content: file.content, serial: generated.serial, expires_at: generated.expires_at })
}

/// `gatekey config <gateway> -o file`: writes a profile (0600) for another client.
pub async fn write_profile(client: &Client, wanted: Option<&str>, output: &std::path::Path) -> Result<String, Failure> {
    let gateway = choose(client, wanted).await?;
    let Profile { content, expires_at, .. } = profile(client, &gateway).await?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(output)
        .map_err(|e| Failure::Local(format!("cannot write {}: {e}", output.display())))?;
    // An existing file keeps its mode on open; the key inside must not be readable by others.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Failure::Local(format!("cannot secure {}: {e}", output.display())))?;
    file.write_all(content.as_bytes())
        .map_err(|e| Failure::Local(format!("cannot write {}: {e}", output.display())))?;
    Ok(format!(
        "Wrote a profile for {} to {} (it holds a private key; the certificate expires {}).",
        gateway.name,
        output.display(),
        rfc3339(expires_at)
    ))
}
