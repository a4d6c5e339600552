//! Opaque, prefixed resource ids such as `gw-3f9a0c2b7d1e4a56`.

use crate::secrets::random_bytes;

/// The kinds of resource that get ids, each with its prefix.
#[derive(Debug, Clone, Copy)]
pub enum IdKind {
    /// `usr-`
    User,
    /// `ses-`
    Session,
    /// `key-`
    ApiKey,
    /// `gw-`
    Gateway,
    /// `net-`
    Network,
    /// `cfg-`
    Config,
    /// `rule-`
    AccessRule,
    /// `idp-`
    AuthProvider,
    /// `login-`
    LoginEvent,
    /// `geo-`
    GeoFenceRule,
    /// `hub-`
    MeshHub,
    /// `spoke-`
    MeshSpoke,
    /// A core node (a new one at each start).
    Node,
}

impl IdKind {
    fn prefix(self) -> &'static str {
        match self {
            IdKind::User => "usr",
            IdKind::Session => "ses",
            IdKind::ApiKey => "key",
            IdKind::Gateway => "gw",
            IdKind::Network => "net",
            IdKind::Config => "cfg",
            IdKind::AccessRule => "rule",
            IdKind::AuthProvider => "idp",
            IdKind::LoginEvent => "login",
            IdKind::GeoFenceRule => "geo",
            IdKind::MeshHub => "hub",
            IdKind::MeshSpoke => "spoke",
            IdKind::Node => "node",
        }
    }
}

/// A fresh id of the given kind: the prefix and 64 random bits in hex.
pub fn new_id(kind: IdKind) -> String {
    format!("{}-{}", kind.prefix(), hex::encode(random_bytes::<8>()))
}
