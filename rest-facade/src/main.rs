//! `gatekey-rest`: the REST facade as its own process, in front of a remote core.

use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Serves `/api/v1` by calling a GateKey core over gRPC.
#[derive(Debug, Parser)]
#[command(name = "gatekey-rest", version, about)]
struct Args {
    /// gRPC URL of the core; several core nodes comma-separated (requests are balanced
    /// over the nodes that answer).
    #[arg(long, env = "GATEKEY_CORE_URL", default_value = "http://127.0.0.1:9090")]
    core: String,
    /// CA certificate (PEM) to trust for an `https://` core; default: the web PKI roots.
    #[arg(long, env = "GATEKEY_CORE_CA")]
    core_ca: Option<std::path::PathBuf>,
    /// Address to serve HTTP on.
    #[arg(long, env = "GATEKEY_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The URL browsers reach this facade at; changes made with the session cookie must
    /// come from its origin. Default: the request's own `Host`.
    #[arg(long, env = "GATEKEY_PUBLIC_URL")]
    public_url: Option<String>,
    /// Peers (CIDRs, comma-separated) whose `X-Forwarded-For` names the client: your
    /// reverse proxies.
    #[arg(long, env = "GATEKEY_TRUSTED_PROXIES", value_delimiter = ',', default_value = "127.0.0.1/32,::1/128")]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// A file holding the key the core knows (its `--facade-key-file`), so that the core
    /// believes the client addresses this facade resolves (`GATEKEY_FACADE_KEY` wins).
    /// Without it the core sees every request as coming from this facade's address.
    #[arg(long, env = "GATEKEY_FACADE_KEY_FILE")]
    facade_key_file: Option<std::path::PathBuf>,
    /// Set the session cookie without `Secure`, for plain-HTTP deployments only.
    #[arg(long, env = "GATEKEY_PLAIN_HTTP_COOKIES")]
    plain_http_cookies: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "GATEKEY_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    gatekey::telemetry::init_logging(args.log_json);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gatekey-rest: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let ca = args.core_ca.as_ref().map(std::fs::read_to_string).transpose()?;
    let urls: Vec<String> = args.core.split(',').map(|url| url.trim().to_owned()).collect();
    if urls.iter().any(String::is_empty) {
        return Err(format!("an empty core URL in `{}`", args.core).into());
    }
    let channel = gatekey_rest::core_nodes::balanced_channel(&urls, ca.as_deref())?;
    let options = gatekey_rest::FacadeOptions {
        trusted_proxies: args.trusted_proxies.clone(),
        facade_key: gatekey::connect::facade_key(args.facade_key_file.as_deref())?,
        ..gatekey_rest::FacadeOptions::new(!args.plain_http_cookies, args.public_url.as_deref())
    };
    let app = gatekey_rest::router(channel, options);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("gatekey-rest ready http={} core={}", listener.local_addr()?, args.core);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
