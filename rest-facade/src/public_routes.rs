//! The facade's URLs that others are told about: identity providers (where to send a
//! browser back), browsers (where to sign in) and API clients (where to download a
//! config). The core builds the SSO requests that carry them, so it asks this module
//! instead of knowing the facade's paths.

/// The API's prefix under the facade's origin.
const API: &str = "/api/v1";

/// The path of the SAML assertion consumer services, followed by the provider's name.
pub const SAML_ACS_PATH: &str = "/api/v1/auth/saml/acs/";

/// The path of the config downloads, followed by the config's id.
pub const CONFIG_DOWNLOAD_PATH: &str = "/api/v1/configs/download/";

/// The path of the console's page on which a user approves a native client's sign-in.
pub const CLIENT_CONSENT_PATH: &str = "/client-login";

/// The public endpoints of a facade reached at one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoutes {
    /// Scheme, host and port browsers use, no trailing `/`; empty when not configured.
    origin: String,
}

impl PublicRoutes {
    /// The endpoints under `origin` (e.g. `https://vpn.example.com`).
    pub fn new(origin: &str) -> PublicRoutes {
        PublicRoutes { origin: origin.trim_end_matches('/').to_owned() }
    }

    /// The OIDC redirect URI registered with providers.
    pub fn oidc_callback(&self) -> String {
        format!("{}{API}/auth/oidc/callback", self.origin)
    }

    /// The SAML SP metadata URL of provider `name` (also its default SP entity id).
    pub fn saml_metadata(&self, name: &str) -> String {
        format!("{}{API}/auth/saml/metadata/{name}", self.origin)
    }

    /// The SAML assertion consumer service URL of provider `name`.
    pub fn saml_acs(&self, name: &str) -> String {
        format!("{}{SAML_ACS_PATH}{name}", self.origin)
    }

    /// Where a browser starts signing in with a provider of `kind` (`oidc`, `saml`).
    pub fn sso_login(&self, kind: &str) -> String {
        format!("{}{API}/auth/{kind}/login", self.origin)
    }
}

/// The path (under the origin) that downloads config `config_id` once.
pub fn config_download_path(config_id: &str) -> String {
    format!("{CONFIG_DOWNLOAD_PATH}{config_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_sit_under_the_origin_whatever_its_trailing_slash() {
        let routes = PublicRoutes::new("https://vpn.example.com/");
        assert_eq!(routes.oidc_callback(), "https://vpn.example.com/api/v1/auth/oidc/callback");
        assert_eq!(routes.saml_acs("corp"), "https://vpn.example.com/api/v1/auth/saml/acs/corp");
        assert_eq!(routes.saml_metadata("corp"), "https://vpn.example.com/api/v1/auth/saml/metadata/corp");
        assert_eq!(routes.sso_login("saml"), "https://vpn.example.com/api/v1/auth/saml/login");
        assert_eq!(config_download_path("cfg-1"), "/api/v1/configs/download/cfg-1");
    }
}
