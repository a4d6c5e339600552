//! The closed sets of words that records hold (a gateway's transport, a
//! rule's destination type, a certificate's kind…). Each is an enum, stored and shown
//! as its word; a request's word is checked into one with an error naming the field,
//! and a stored word that is none of them is an internal error.

use crate::error::{CoreError, CoreResult};

/// Declares a domain enum and its words: `as_str`, `parse_field` (a request's word),
/// `from_stored` (a column's word) and `Display`.
macro_rules! domain_words {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word it is stored and shown as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value a request names in `field`; another word is an invalid argument.
            pub fn parse_field(field: &str, word: &str) -> CoreResult<$name> {
                Self::ALL.iter().copied().find(|value| value.as_str() == word).ok_or_else(|| {
                    let words: Vec<&str> = Self::ALL.iter().map(|value| value.as_str()).collect();
                    CoreError::InvalidArgument(format!(
                        "{field}: must be one of {}, not `{}`",
                        words.join(", "),
                        word.escape_debug()
                    ))
                })
            }

            /// The value a stored column holds; another word means the database was
            /// changed behind GateKey's back.
            pub fn from_stored(word: &str) -> CoreResult<$name> {
                Self::ALL.iter().copied().find(|value| value.as_str() == word).ok_or_else(|| {
                    CoreError::Internal(format!("stored {} `{word}` is unknown", stringify!($name)))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

domain_words! {
    /// How OpenVPN carries a gateway's tunnels.
    pub enum Transport {
        /// OpenVPN over UDP (the default).
        Udp = "udp",
        /// OpenVPN over TCP.
        Tcp = "tcp",
    }
}

domain_words! {
    /// The VPN a config is for.
    pub enum VpnProtocol {
        /// An OpenVPN profile.
        OpenVpn = "openvpn",
    }
}

domain_words! {
    /// What an access rule's destination is.
    pub enum DestinationType {
        /// One IP address.
        Ip = "ip",
        /// A CIDR block.
        Cidr = "cidr",
        /// A host name, resolved by the agent.
        Hostname = "hostname",
    }
}

domain_words! {
    /// Which traffic an access rule allows.
    pub enum RuleProtocol {
        /// TCP, to a port range (or every port).
        Tcp = "tcp",
        /// UDP, to a port range (or every port).
        Udp = "udp",
        /// ICMP.
        Icmp = "icmp",
        /// Everything.
        Any = "any",
    }
}

domain_words! {
    /// Whom a certificate in the ledger was issued to.
    pub enum CertificateKind {
        /// A user's VPN client.
        Client = "client",
        /// A gateway's (or hub's) OpenVPN server.
        Server = "server",
        /// A mesh spoke's tunnel to its hub.
        Spoke = "spoke",
    }
}

domain_words! {
    /// The protocol of an identity provider.
    #[derive(Default)]
    pub enum ProviderKind {
        /// OpenID Connect.
        #[default]
        Oidc = "oidc",
        /// SAML 2.0.
        Saml = "saml",
    }
}

domain_words! {
    /// What a geo-fence rule does to the countries it names.
    pub enum GeoFenceAction {
        /// Admits them.
        Allow = "allow",
        /// Refuses them.
        Deny = "deny",
    }
}

domain_words! {
    /// Whom a geo-fence rule applies to.
    pub enum GeoFenceScope {
        /// Everyone.
        Global = "global",
        /// The members of a group.
        Group = "group",
        /// One user.
        User = "user",
    }
}

domain_words! {
    /// Whether the geo-fence refuses, or only records what it would refuse.
    pub enum GeoFenceMode {
        /// Refuses.
        Enforce = "enforce",
        /// Records only.
        Audit = "audit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_strangers_are_refused_by_field() {
        for transport in Transport::ALL {
            assert_eq!(Transport::from_stored(transport.as_str()).ok(), Some(*transport));
        }
        assert_eq!(RuleProtocol::parse_field("protocol", "icmp").ok(), Some(RuleProtocol::Icmp));
        let refused = RuleProtocol::parse_field("protocol", "gre\n").unwrap_err();
        assert!(matches!(refused, CoreError::InvalidArgument(_)));
        assert!(refused.to_string().contains("protocol: must be one of tcp, udp, icmp, any"), "{refused}");
        assert!(refused.to_string().contains(r"`gre\n`"), "control characters are escaped: {refused}");
        assert!(matches!(CertificateKind::from_stored("root"), Err(CoreError::Internal(_))));
        assert_eq!(GeoFenceMode::Audit.to_string(), "audit");
    }
}
