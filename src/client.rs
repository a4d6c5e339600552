//! `gatekey::Client`: a typed async client over the gRPC contract, authenticated
//! with an API key (`gk_…`) or a session token.
//!
//! ```no_run
//! # async fn tour() -> Result<(), gatekey::Error> {
//! use gatekey::Client;
//!
//! // Connect with an API key (create one with POST /api/v1/api-keys).
//! let client = Client::connect("https://gatekey.example.com:9090", "gk_…").await?;
//!
//! // List the gateways the key's owner may use.
//! for gateway in client.gateways().await? {
//!     println!("{} {}:{} {}", gateway.name, gateway.hostname, gateway.port, gateway.id);
//! }
//!
//! // Generate a config for the first one and download it (once).
//! let gateway = client.gateways().await?.into_iter().next().expect("a gateway");
//! let generated = client.generate_config(&gateway.id).await?;
//! let file = client.download_config(&generated.config_id).await?;
//! std::fs::write(&file.file_name, &file.content).expect("write the profile");
//!
//! // Manage access rules (admins).
//! let rule = client
//!     .create_access_rule(gatekey::v1::AccessRule {
//!         name: "web".into(),
//!         network_id: "net-…".into(),
//!         groups: vec!["staff".into()],
//!         destination_type: "ip".into(),
//!         destination: "10.20.0.5".into(),
//!         protocol: "tcp".into(),
//!         port_from: 443,
//!         ..Default::default()
//!     })
//!     .await?;
//! client.delete_access_rule(&rule.id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Any generated client works too: `client.authorize(message)` adds the credential to
//! a request, and `client.channel()` is the connection.

use crate::v1;
use crate::v1::admin_access_rule_service_client::AdminAccessRuleServiceClient;
use crate::v1::auth_service_client::AuthServiceClient;
use crate::v1::config_service_client::ConfigServiceClient;
use crate::v1::gateway_service_client::GatewayServiceClient;
use crate::v1::mesh_service_client::MeshServiceClient;
use crate::v1::pki_service_client::PkiServiceClient;
use crate::v1::vpn_session_service_client::VpnSessionServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// Why a client call failed.
#[derive(Debug)]
pub enum Error {
    /// The URL or TLS settings were unusable.
    Transport(tonic::transport::Error),
    /// The core answered with an error (its `x-gatekey-error-code` metadata names it).
    Status(tonic::Status),
    /// The credential cannot be sent as metadata.
    InvalidCredential,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Transport(error) => write!(f, "cannot reach the core: {error}"),
            Error::Status(status) => write!(f, "{}: {}", status.code(), status.message()),
            Error::InvalidCredential => f.write_str("the credential is not valid header text"),
        }
    }
}

impl std::error::Error for Error {}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status(status)
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(error: tonic::transport::Error) -> Self {
        Error::Transport(error)
    }
}

/// A connection to a GateKey core and the credential to use on it.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    authorization: MetadataValue<Ascii>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client(..)")
    }
}

/// Items per page when a method walks a whole list.
const PAGE_SIZE: u32 = 100;

impl Client {
    /// A client for the core at `url` (`http://` or `https://` with the web PKI roots)
    /// using `credential`, an API key or a session token.
    pub async fn connect(url: &str, credential: &str) -> Result<Client, Error> {
        Client::with_channel(crate::connect::channel(url, None)?, credential)
    }

    /// A client over an existing channel (e.g. from [`crate::connect::channel`] with a CA).
    pub fn with_channel(channel: Channel, credential: &str) -> Result<Client, Error> {
        let authorization = format!("Bearer {credential}").parse().map_err(|_| Error::InvalidCredential)?;
        Ok(Client { channel, authorization })
    }

    /// Signs in a local account and returns a client using the new session.
    pub async fn login(url: &str, username: &str, password: &str) -> Result<Client, Error> {
        let channel = crate::connect::channel(url, None)?;
        Ok(Client::login_over(channel, username, password).await?.0)
    }

    /// Signs in a local account over `channel`; answers a client using the new session
    /// and the sign-in (with the session token, to keep for later runs).
    pub async fn login_over(
        channel: Channel,
        username: &str,
        password: &str,
    ) -> Result<(Client, v1::LoginResponse), Error> {
        let request = v1::LocalLoginRequest { username: username.into(), password: password.into() };
        let login = AuthServiceClient::new(channel.clone()).local_login(request).await?.into_inner();
        Ok((Client::with_channel(channel, &login.session_token)?, login))
    }

    /// The connection, for generated clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A request carrying `message` and the credential.
    pub fn authorize<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", self.authorization.clone());
        request
    }

    /// Who the credential belongs to.
    pub async fn session(&self) -> Result<v1::SessionInfo, Error> {
        Ok(AuthServiceClient::new(self.channel())
            .get_session(self.authorize(v1::GetSessionRequest {}))
            .await?
            .into_inner())
    }

    /// Every gateway the caller may use.
    pub async fn gateways(&self) -> Result<Vec<v1::Gateway>, Error> {
        let mut gateways = Vec::new();
        for page in 1.. {
            let request = v1::ListGatewaysRequest { page: Some(v1::PageRequest { page, per_page: PAGE_SIZE }) };
            let listing =
                GatewayServiceClient::new(self.channel()).list_gateways(self.authorize(request)).await?.into_inner();
            let done = listing.gateways.len() < PAGE_SIZE as usize;
            gateways.extend(listing.gateways);
            if done {
                break;
            }
        }
        Ok(gateways)
    }

    /// Issues a certificate and renders an OpenVPN config for a gateway.
    pub async fn generate_config(&self, gateway_id: &str) -> Result<v1::GenerateConfigResponse, Error> {
        let request = v1::GenerateConfigRequest { gateway_id: gateway_id.into(), protocol: "openvpn".into() };
        Ok(ConfigServiceClient::new(self.channel()).generate_config(self.authorize(request)).await?.into_inner())
    }

    /// Downloads a generated config; it can be downloaded once.
    pub async fn download_config(&self, config_id: &str) -> Result<v1::DownloadConfigResponse, Error> {
        let request = v1::DownloadConfigRequest { config_id: config_id.into() };
        Ok(ConfigServiceClient::new(self.channel()).download_config(self.authorize(request)).await?.into_inner())
    }

    /// Every mesh hub the caller may use, with the spoke networks its rules reach.
    pub async fn hubs(&self) -> Result<Vec<v1::MeshHub>, Error> {
        let request = v1::ListHubsRequest { page: Some(v1::PageRequest { page: 1, per_page: PAGE_SIZE }) };
        Ok(MeshServiceClient::new(self.channel()).list_hubs(self.authorize(request)).await?.into_inner().hubs)
    }

    /// Whether the certificate with `serial` (hex) is revoked, and why.
    pub async fn certificate_status(&self, serial: &str) -> Result<v1::CheckSerialResponse, Error> {
        let request = v1::CheckSerialRequest { serial: serial.into() };
        Ok(PkiServiceClient::new(self.channel()).check_serial(request).await?.into_inner())
    }

    /// The caller's open VPN sessions.
    pub async fn my_sessions(&self) -> Result<Vec<v1::VpnSession>, Error> {
        let request = v1::ListVpnSessionsRequest { page: Some(v1::PageRequest { page: 1, per_page: PAGE_SIZE }) };
        Ok(VpnSessionServiceClient::new(self.channel())
            .list_my_sessions(self.authorize(request))
            .await?
            .into_inner()
            .sessions)
    }

    /// Ends the session this client uses (an API key is revoked elsewhere).
    pub async fn logout(&self) -> Result<(), Error> {
        AuthServiceClient::new(self.channel()).logout(self.authorize(v1::LogoutRequest {})).await?;
        Ok(())
    }

    /// Every access rule (admins).
    pub async fn access_rules(&self) -> Result<Vec<v1::AccessRule>, Error> {
        let mut rules = Vec::new();
        for page in 1.. {
            let request = v1::ListAccessRulesRequest { page: Some(v1::PageRequest { page, per_page: PAGE_SIZE }) };
            let listing = AdminAccessRuleServiceClient::new(self.channel())
                .list_access_rules(self.authorize(request))
                .await?
                .into_inner();
            let done = listing.access_rules.len() < PAGE_SIZE as usize;
            rules.extend(listing.access_rules);
            if done {
                break;
            }
        }
        Ok(rules)
    }

    /// Creates an access rule (admins).
    pub async fn create_access_rule(&self, rule: v1::AccessRule) -> Result<v1::AccessRule, Error> {
        Ok(AdminAccessRuleServiceClient::new(self.channel())
            .create_access_rule(self.authorize(rule))
            .await?
            .into_inner())
    }

    /// Deletes an access rule (admins).
    pub async fn delete_access_rule(&self, id: &str) -> Result<(), Error> {
        let request = v1::DeleteAccessRuleRequest { id: id.into() };
        AdminAccessRuleServiceClient::new(self.channel()).delete_access_rule(self.authorize(request)).await?;
        Ok(())
    }
}
