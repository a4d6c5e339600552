//! The gateway's OpenVPN material: fetched from the core (`Provision`) and written
//! atomically into the state directory, with an `openvpn.conf` that uses it and
//! hands every connecting client to this agent through the management interface.

use crate::config::AgentSettings;
use gatekey::v1::ProvisionResponse;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// File names inside the state directory.
pub mod files {
    /// CA certificate.
    pub const CA: &str = "ca.pem";
    /// Server certificate.
    pub const CERTIFICATE: &str = "server.pem";
    /// Server private key (mode 0600).
    pub const KEY: &str = "server.key";
    /// tls-crypt key (mode 0600).
    pub const TLS_CRYPT: &str = "tls-crypt.key";
    /// The CRL OpenVPN checks on every handshake.
    pub const CRL: &str = "crl.pem";
    /// The OpenVPN server configuration.
    pub const OPENVPN_CONF: &str = "openvpn.conf";
    /// Settings for `gatekey-agent hook` (mode 0600: it holds the token).
    pub const HOOK_SETTINGS: &str = "hook.toml";
}

/// Writes `contents` to `dir/name` through a temporary file and a rename, so OpenVPN
/// never reads half a file; `private` files are readable by their owner only.
pub fn write_atomically(dir: &Path, name: &str, contents: &str, private: bool) -> std::io::Result<PathBuf> {
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    let mut file = options.open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &target)?;
    Ok(target)
}

/// `10.8.0.0/24` as the network and netmask OpenVPN's `server` directive wants.
pub fn network_and_mask(cidr: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let (address, prefix) = cidr.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    Some((Ipv4Addr::from(u32::from(address) & mask), Ipv4Addr::from(mask)))
}

/// A connecting client's OpenVPN config lines (`client-auth` block or client-connect
/// file): `push "route …"` for its routes, `iroute …` for the networks behind it (a
/// mesh spoke). IPv4 only (IPv6 needs `route-ipv6`/`iroute-ipv6` and an IPv6 pool).
pub fn client_config_lines(push_routes: &[String], iroutes: &[String]) -> Vec<String> {
    let pushed = push_routes
        .iter()
        .filter_map(|cidr| network_and_mask(cidr))
        .map(|(network, mask)| format!("push \"route {network} {mask}\""));
    let routed = iroutes
        .iter()
        .filter_map(|cidr| network_and_mask(cidr))
        .map(|(network, mask)| format!("iroute {network} {mask}"));
    pushed.chain(routed).collect()
}

/// `role` of a mesh hub's material.
pub const HUB_ROLE: &str = "hub";

/// The OpenVPN server configuration for this material.
pub fn openvpn_conf(material: &ProvisionResponse, settings: &AgentSettings) -> Result<String, String> {
    let (network, mask) =
        network_and_mask(&material.vpn_subnet).ok_or_else(|| format!("bad VPN subnet `{}`", material.vpn_subnet))?;

    let dir = settings.state_dir.display();
    let proto = if material.protocol == "tcp" { "tcp-server" } else { "udp" };
    let mut conf = format!(
        "# Written by gatekey-agent for gateway {gateway}; rewritten on every provisioning.\n\
         port {port}\nproto {proto}\ndev {tun}\ndev-type tun\ntopology subnet\nserver {network} {mask}\n\
         ca {dir}/{ca}\ncert {dir}/{cert}\nkey {dir}/{key}\ntls-crypt {dir}/{tls}\ncrl-verify {dir}/{crl}\n\
         dh none\ntls-version-min 1.2\nremote-cert-tls client\ndata-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\n\
         keepalive 10 60\npersist-key\npersist-tun\nverb 3\n",
        gateway = material.gateway_id,
        port = material.port,
        tun = settings.tun,
        ca = files::CA,
        cert = files::CERTIFICATE,
        key = files::KEY,
        tls = files::TLS_CRYPT,
        crl = files::CRL,
    );
    if proto == "udp" {
        // A multi-homed host must answer each peer from the address the peer used, or the
        // peer drops the answer ("packet rejected from ... expected peer address").
        conf.push_str("multihome\n");
    }
    if material.role == HUB_ROLE {
        // With data channel offload OpenVPN routes spokes' networks itself (via each
        // spoke's tunnel address); the agent's routes into the tunnel need it off.
        conf.push_str("disable-dco\n");
    }
    if settings.hooks {
        let agent = std::env::current_exe().map_err(|e| format!("cannot locate gatekey-agent: {e}"))?;
        let hook = format!("{} --config {dir}/{} hook", agent.display(), files::HOOK_SETTINGS);
        conf.push_str(&format!(
            "script-security 2\ntls-verify \"{hook} tls-verify\"\nclient-connect \"{hook} client-connect\"\n\
             client-disconnect \"{hook} client-disconnect\"\n"
        ));
    } else {
        // A Unix socket in the agent's private state directory, unless a TCP address is given.
        let management = match settings.management.parse::<std::net::SocketAddr>() {
            Ok(address) => format!("{} {}", address.ip(), address.port()),
            Err(_) => format!("{} unix", settings.management),
        };
        conf.push_str(&format!("management {management}\nmanagement-client-auth\nauth-user-pass-optional\n"));
    }
    for line in &settings.openvpn_extra {
        conf.push_str(line);
        conf.push('\n');
    }
    Ok(conf)
}

/// Writes every file of the material and the OpenVPN configuration.
pub fn write_material(material: &ProvisionResponse, settings: &AgentSettings) -> Result<(), String> {
    let dir = &settings.state_dir;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let conf = openvpn_conf(material, settings)?;
    for (name, contents, private) in [
        (files::CA, material.ca_certificate_pem.as_str(), false),
        (files::CERTIFICATE, material.server_certificate_pem.as_str(), false),
        (files::KEY, material.server_private_key_pem.as_str(), true),
        (files::TLS_CRYPT, material.tls_crypt_key.as_str(), true),
        (files::CRL, material.crl_pem.as_str(), false),
        (files::OPENVPN_CONF, conf.as_str(), false),
    ] {
        write_atomically(dir, name, contents, private).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    if settings.hooks {
        let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
        let mut hook_settings =
            format!("core_url = {}\ntoken = {}\n", quote(&settings.core_urls.join(",")), quote(&settings.token));
        if let Some(ca) = &settings.core_ca {
            hook_settings.push_str(&format!("core_ca = {}\n", quote(&ca.to_string_lossy())));
        }
        write_atomically(dir, files::HOOK_SETTINGS, &hook_settings, true)
            .map_err(|e| format!("cannot write hook settings: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_become_push_lines_and_spoke_networks_iroutes() {
        let lines = client_config_lines(&["10.79.0.0/24".into(), "fd00::/64".into()], &["10.80.1.0/24".into()]);
        assert_eq!(lines, ["push \"route 10.79.0.0 255.255.255.0\"", "iroute 10.80.1.0 255.255.255.0"]);
    }

    #[test]
    fn subnets_become_openvpn_server_lines() {
        assert_eq!(
            network_and_mask("10.78.0.0/24"),
            Some(("10.78.0.0".parse().unwrap(), "255.255.255.0".parse().unwrap()))
        );
        assert_eq!(
            network_and_mask("10.8.3.9/16"),
            Some(("10.8.0.0".parse().unwrap(), "255.255.0.0".parse().unwrap()))
        );
        assert_eq!(network_and_mask("10.8.0.0"), None);
        assert_eq!(network_and_mask("10.8.0.0/33"), None);
    }

    #[test]
    fn material_is_written_with_private_keys_private() {
        let dir = std::env::temp_dir().join(format!("gatekey-agent-material-{}", std::process::id()));
        let settings = AgentSettings {
            core_urls: vec!["http://core".into()],
            token: "t".into(),
            state_dir: dir.clone(),
            management: "127.0.0.1:7505".into(),
            tun: "tun0".into(),
            openvpn_extra: vec!["disable-dco".into()],
            firewall: true,
            hooks: false,
            core_ca: None,
            forwarding: crate::forwarding::ForwardingPolicy::Enable,
            nat: false,
            run_openvpn: None,
            firewall_check_every: std::time::Duration::from_secs(10),
        };
        let material = ProvisionResponse {
            gateway_id: "gw-1".into(),
            vpn_subnet: "10.78.0.0/24".into(),
            port: 1194,
            protocol: "udp".into(),
            server_private_key_pem: "KEY".into(),
            ..Default::default()
        };
        write_material(&material, &settings).unwrap();
        let conf = std::fs::read_to_string(dir.join(files::OPENVPN_CONF)).unwrap();
        assert!(conf.contains("server 10.78.0.0 255.255.255.0\n"));
        assert!(conf.contains("\nmultihome\n"), "a UDP server answers from the address it was reached on");
        assert!(conf.contains("management 127.0.0.1 7505\nmanagement-client-auth\n"));
        assert!(conf.ends_with("disable-dco\n"));
        assert_eq!(conf.matches("disable-dco").count(), 1, "a gateway keeps DCO unless told otherwise");
        assert!(!dir.join(files::HOOK_SETTINGS).exists(), "the token is written only for hooks");
        let hub = ProvisionResponse { role: HUB_ROLE.into(), ..material.clone() };
        let hub_conf = openvpn_conf(&hub, &AgentSettings { openvpn_extra: vec![], ..settings.clone() }).unwrap();
        assert!(hub_conf.contains("\ndisable-dco\n"), "a hub routes spokes itself: {hub_conf}");

        let hooks = AgentSettings { hooks: true, token: "gkgw_\"quoted\"".into(), ..settings };
        write_material(&material, &hooks).unwrap();
        let conf = std::fs::read_to_string(dir.join(files::OPENVPN_CONF)).unwrap();
        assert!(conf.contains("script-security 2\ntls-verify \"") && !conf.contains("management"));
        let written = std::fs::read_to_string(dir.join(files::HOOK_SETTINGS)).unwrap();
        let parsed =
            AgentSettings::resolve(crate::config::AgentArgs::default(), Some(&dir.join(files::HOOK_SETTINGS))).unwrap();
        assert_eq!(parsed.token, "gkgw_\"quoted\"", "{written}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(files::KEY)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
