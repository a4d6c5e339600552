//! Rendering of OpenVPN client profiles (`.ovpn`) with everything inline. A profile
//! carries no routes: the gateway pushes them when the tunnel comes up, from the
//! rules in force then, so there is one source and it is current.

use crate::domain::Transport;

/// What goes into a client profile.
pub struct ClientProfile<'a> {
    /// The gateway's public host name, also the server certificate's CN.
    pub hostname: &'a str,
    /// Public port.
    pub port: u16,
    /// `udp` or `tcp`.
    pub protocol: Transport,
    /// CA certificate, PEM.
    pub ca_certificate_pem: &'a str,
    /// Client certificate, PEM.
    pub client_certificate_pem: &'a str,
    /// Client private key, PEM.
    pub client_private_key_pem: &'a str,
    /// The gateway's tls-crypt key.
    pub tls_crypt_key: &'a str,
}

/// The profile text. Only AEAD data ciphers, TLS 1.2 or newer, the server's
/// certificate must carry serverAuth and name the gateway's host.
pub fn render_client_profile(profile: &ClientProfile<'_>) -> String {
    let proto = match profile.protocol {
        Transport::Tcp => "tcp-client",
        Transport::Udp => "udp",
    };
    let mut text = format!(
        "# GateKey VPN profile for {hostname}. Contains a private key: keep it secret.\n\
         client\n\
         dev tun\n\
         proto {proto}\n\
         remote {hostname} {port}\n\
         resolv-retry infinite\n\
         nobind\n\
         persist-key\n\
         persist-tun\n\
         remote-cert-tls server\n\
         verify-x509-name {hostname} name\n\
         tls-version-min 1.2\n\
         data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\n\
         auth-nocache\n\
         verb 3\n",
        hostname = profile.hostname,
        port = profile.port,
    );
    for (tag, body) in [
        ("ca", profile.ca_certificate_pem),
        ("cert", profile.client_certificate_pem),
        ("key", profile.client_private_key_pem),
        ("tls-crypt", profile.tls_crypt_key),
    ] {
        text.push_str(&format!("<{tag}>\n{}\n</{tag}>\n", body.trim_end()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_inline_their_material_and_leave_routes_to_the_server() {
        let text = render_client_profile(&ClientProfile {
            hostname: "vpn.example.com",
            port: 443,
            protocol: Transport::Tcp,
            ca_certificate_pem: "CA",
            client_certificate_pem: "CERT",
            client_private_key_pem: "KEY",
            tls_crypt_key: "TLS",
        });
        assert!(text.contains("proto tcp-client\n"));
        assert!(text.contains("remote vpn.example.com 443\n"));
        assert!(text.contains("verify-x509-name vpn.example.com name\n"));
        assert!(!text.contains("\nroute"), "routes come from the server's push: {text}");
        assert!(text.contains("<key>\nKEY\n</key>\n") && text.contains("<tls-crypt>\nTLS\n</tls-crypt>\n"));
    }
}
