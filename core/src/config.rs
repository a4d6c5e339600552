//! Command-line and environment configuration of `gatekey-core`.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The GateKey core: gRPC API, REST facade, storage and PKI in one process.
#[derive(Debug, Parser)]
#[command(name = "gatekey-core", version, about, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `gatekey-core` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the core (and, unless disabled, the REST facade in-process).
    Serve(ServeArgs),
}

/// Settings of `gatekey-core serve`. The bootstrap admin's password comes from the
/// `GATEKEY_ADMIN_PASSWORD` environment variable only, never from the command line.
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Directory for the embedded database and other state; created if missing.
    #[arg(long, env = "GATEKEY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: `gatekey.db` in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address of the gRPC (and grpc-web) listener; port 0 picks a free one.
    #[arg(long, env = "GATEKEY_GRPC_LISTEN", default_value = "127.0.0.1:9090")]
    pub grpc_listen: SocketAddr,
    /// Address of the in-process REST facade; port 0 picks a free one.
    #[arg(long, env = "GATEKEY_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// PEM certificate (chain) for the gRPC listener; with `--tls-key`, gRPC is served
    /// over TLS (agents and remote facades then use `https://`).
    #[arg(long, env = "GATEKEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "GATEKEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Do not serve the REST facade in-process (run `gatekey-rest` separately).
    #[arg(long, env = "GATEKEY_NO_HTTP")]
    pub no_http: bool,
    /// Lifetime of a sign-in session, in seconds.
    #[arg(long, env = "GATEKEY_SESSION_TTL_SECONDS", default_value_t = 12 * 3600,
          value_parser = clap::value_parser!(i64).range(60..=30 * 24 * 3600))]
    pub session_ttl_seconds: i64,
    /// Seconds between gateway heartbeats; three missed ones mark a gateway offline.
    #[arg(long, env = "GATEKEY_HEARTBEAT_INTERVAL_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(1..=3600))]
    pub heartbeat_interval_seconds: i64,
    /// Lifetime of client certificates (and so of generated configs), in seconds.
    #[arg(long, env = "GATEKEY_CLIENT_CERT_TTL_SECONDS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(i64).range(60..=366 * 24 * 3600))]
    pub client_cert_ttl_seconds: i64,
    /// Lifetime of mesh spoke certificates, in seconds; spoke agents renew at two thirds.
    #[arg(long, env = "GATEKEY_SPOKE_CERT_TTL_SECONDS", default_value_t = 30 * 24 * 3600,
          value_parser = clap::value_parser!(i64).range(60..=366 * 24 * 3600))]
    pub spoke_cert_ttl_seconds: i64,
    /// Lifetime of gateway server certificates, in seconds.
    #[arg(long, env = "GATEKEY_SERVER_CERT_TTL_SECONDS", default_value_t = 90 * 24 * 3600,
          value_parser = clap::value_parser!(i64).range(3600..=5 * 366 * 24 * 3600))]
    pub server_cert_ttl_seconds: i64,
    /// Validity of a newly created CA, in days.
    #[arg(long, env = "GATEKEY_CA_VALIDITY_DAYS", default_value_t = 3650,
          value_parser = clap::value_parser!(i64).range(30..=36500))]
    pub ca_validity_days: i64,
    /// Seconds a generated config can be downloaded (once) before it is purged.
    #[arg(long, env = "GATEKEY_CONFIG_DOWNLOAD_WINDOW_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(i64).range(10..=7 * 24 * 3600))]
    pub config_download_window_seconds: i64,
    /// File holding the base64 at-rest encryption key; created if missing. Ignored
    /// when `GATEKEY_SECRET_KEY` holds the key. Default: `secret.key` in the data dir.
    #[arg(long, env = "GATEKEY_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// The URL browsers reach the REST facade at, used for SSO callbacks; default
    /// `http://<http-listen address>`.
    #[arg(long, env = "GATEKEY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// HTTP peers (CIDRs, comma-separated) whose `X-Forwarded-For` names the client to
    /// the in-process REST facade: your reverse proxies.
    #[arg(long, env = "GATEKEY_TRUSTED_PROXIES", value_delimiter = ',', default_value = "127.0.0.1/32,::1/128")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// gRPC peers (CIDRs, comma-separated) whose `x-forwarded-for` names the client: an
    /// L7 proxy in front of the gRPC port. None by default.
    #[arg(long, env = "GATEKEY_GRPC_TRUSTED_PROXIES", value_delimiter = ',')]
    pub grpc_trusted_proxies: Vec<ipnet::IpNet>,
    /// A file holding the key standalone `gatekey-rest` facades present so that the
    /// client addresses they resolve are believed (`GATEKEY_FACADE_KEY` wins).
    #[arg(long, env = "GATEKEY_FACADE_KEY_FILE")]
    pub facade_key_file: Option<PathBuf>,
    /// Sign-in attempts allowed per client address and minute (all methods together); 0 disables.
    #[arg(long, env = "GATEKEY_AUTH_RATE_LIMIT", default_value_t = 50)]
    pub auth_rate_limit_per_minute: u32,
    /// Unary and REST heartbeats allowed per gateway and minute; 0 disables.
    #[arg(long, env = "GATEKEY_HEARTBEAT_RATE_LIMIT", default_value_t = 120)]
    pub heartbeat_rate_limit_per_minute: u32,
    /// Config generations allowed per user and minute; 0 disables.
    #[arg(long, env = "GATEKEY_CONFIG_RATE_LIMIT", default_value_t = 30)]
    pub config_rate_limit_per_minute: u32,
    /// Admin operations allowed per user and minute; 0 disables.
    #[arg(long, env = "GATEKEY_ADMIN_RATE_LIMIT", default_value_t = 100)]
    pub admin_rate_limit_per_minute: u32,
    /// Turn every rate limit off (for benchmarks).
    #[arg(long, env = "GATEKEY_NO_RATE_LIMITS")]
    pub no_rate_limits: bool,
    /// A TOML file declaring identity providers (`[[oidc]]`, `[[saml]]`), applied at start.
    #[arg(long, env = "GATEKEY_PROVIDERS_FILE")]
    pub providers_file: Option<PathBuf>,
    /// Set the session cookie without `Secure`, for plain-HTTP deployments only.
    #[arg(long, env = "GATEKEY_PLAIN_HTTP_COOKIES")]
    pub plain_http_cookies: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "GATEKEY_LOG_JSON")]
    pub log_json: bool,
}

impl std::fmt::Debug for ServeArgs {
    // The database URL may carry a password: it is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("data_dir", &self.data_dir)
            .field("grpc_listen", &self.grpc_listen)
            .field("http_listen", &self.http_listen)
            .finish_non_exhaustive()
    }
}

impl ServeArgs {
    /// The configured rate limits (all off with `--no-rate-limits`).
    pub fn rate_limits(&self) -> crate::ratelimit::RateLimits {
        let limit =
            |per_minute: u32| crate::ratelimit::RateLimiter::new(if self.no_rate_limits { 0 } else { per_minute });
        crate::ratelimit::RateLimits {
            auth: limit(self.auth_rate_limit_per_minute),
            heartbeat: limit(self.heartbeat_rate_limit_per_minute),
            config: limit(self.config_rate_limit_per_minute),
            admin: limit(self.admin_rate_limit_per_minute),
        }
    }
    /// The key file path, defaulting to `secret.key` in the data directory.
    pub fn secret_key_file(&self) -> PathBuf {
        self.secret_key_file.clone().unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// The database URL, defaulting to SQLite inside the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("gatekey.db").display()))
    }
}
