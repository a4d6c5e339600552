//! `gatekey-agent`: runs beside a stock OpenVPN server on each gateway.

use clap::{Parser, Subcommand};
use gatekey::v1::ProvisionRequest;
use gatekey_agent::config::{AgentArgs, AgentSettings};
use gatekey_agent::error::AgentError;
use gatekey_agent::forwarding::{IPV4_FORWARDING, ensure_forwarding};
use gatekey_agent::gateway::Gateway;
use gatekey_agent::hook::{HookKind, run_hook};
use gatekey_agent::link::{Backoff, with_token};
use gatekey_agent::material::{HUB_ROLE, write_material};
use gatekey_agent::nft::{Firewall, SystemRunner};
use gatekey_agent::openvpn::supervise;
use gatekey_agent::spoke::{SpokeArgs, provision_spoke, run_spoke};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The GateKey gateway agent.
#[derive(Debug, Parser)]
#[command(name = "gatekey-agent", version, about)]
struct Cli {
    /// A TOML file with the same keys as the flags (flags and env win).
    #[arg(long, global = true, env = "GATEKEY_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provision, then drive OpenVPN and nftables while holding the stream to the core.
    Run(AgentArgs),
    /// Fetch the server material, write it and `openvpn.conf`, and exit.
    Provision(AgentArgs),
    /// An OpenVPN script hook (tls-verify, client-connect, client-disconnect).
    Hook {
        #[command(flatten)]
        args: AgentArgs,
        #[command(subcommand)]
        kind: HookKind,
    },
    /// Join a mesh hub as a spoke: advertise the site's networks, fetch the spoke's
    /// certificate and OpenVPN configuration, and run OpenVPN with it, renewing the
    /// certificate in time (`--once`: write `spoke.ovpn` and exit).
    Spoke(SpokeArgs),
    /// Check that the core answers its gRPC health check (each node of a list).
    Check {
        /// gRPC URL of the core; several core nodes comma-separated.
        #[arg(long, env = "GATEKEY_CORE_URL", default_value = "http://127.0.0.1:9090")]
        core: String,
        /// CA certificate (PEM) to trust for an `https://` core.
        #[arg(long, env = "GATEKEY_CORE_CA")]
        core_ca: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run(args, cli.config).await,
        Command::Provision(args) => provision_once(args, cli.config).await,
        Command::Hook { args, kind } => hook(args, cli.config, kind).await,
        Command::Spoke(args) => {
            init_logging();
            match args.once {
                true => provision_spoke(&args).await.map(|done| println!("{}", done.path.display())),
                false => run_spoke(&args).await,
            }
        }
        Command::Check { core, core_ca } => check(&core, core_ca.as_deref()).await.map_err(AgentError::Setup),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "gatekey-agent stopped");
            eprintln!("gatekey-agent: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn init_logging() {
    gatekey::telemetry::init_logging(false);
}

/// Fetches and writes the material; returns whether this agent runs a mesh hub.
async fn provision(settings: &AgentSettings) -> Result<bool, AgentError> {
    let mut nodes = settings.core_nodes()?;
    let mut attempt = 0;
    let material = loop {
        attempt += 1;
        match nodes.client().provision(with_token(ProvisionRequest {}, &settings.token)).await {
            Ok(answer) => break answer.into_inner(),
            Err(status) => {
                let error = AgentError::from_status("provisioning", &status);
                // An unreachable node is passed over for the next one.
                if !error.is_transient() || attempt >= nodes.count() {
                    return Err(error);
                }
                tracing::warn!(%error, core = %nodes.url(), "trying the next core node");
                nodes.move_on();
            }
        }
    };
    write_material(&material, settings)?;
    tracing::info!(
        gateway = %material.gateway_id, role = %material.role, dir = %settings.state_dir.display(),
        "wrote OpenVPN material"
    );
    Ok(material.role == HUB_ROLE)
}

async fn provision_once(args: AgentArgs, config: Option<PathBuf>) -> Result<(), AgentError> {
    init_logging();
    provision(&AgentSettings::resolve(args, config.as_deref())?).await.map(|_| ())
}

async fn run(args: AgentArgs, config: Option<PathBuf>) -> Result<(), AgentError> {
    init_logging();
    let settings = AgentSettings::resolve(args, config.as_deref())?;
    if settings.hooks {
        return Err(AgentError::Setup(
            "`run` drives OpenVPN through its management interface; use `provision --hooks` for script hooks".into(),
        ));
    }
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let hub = loop {
        match provision(&settings).await {
            Ok(hub) => break hub,
            Err(error) if !error.is_transient() => return Err(error),
            Err(error) => {
                let wait = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "cannot provision yet");
                tokio::time::sleep(wait).await;
            }
        }
    };
    ensure_forwarding(settings.forwarding, Path::new(IPV4_FORWARDING))?;
    let firewall = if settings.firewall {
        let mut firewall = Firewall::new(SystemRunner, &settings.tun)
            .map_err(|e| e.to_string())?
            .confined_to_tunnel(hub)
            .masquerading(settings.nat);
        firewall.install().await.map_err(|e| format!("cannot install the nftables table: {e}"))?;
        Some(firewall)
    } else {
        None
    };
    // OpenVPN as the agent's child, if asked: started once its configuration exists
    // (just written), stopped when the agent stops.
    let (stop_openvpn, stop_receiver) = tokio::sync::watch::channel(false);
    let supervisor = settings.run_openvpn.clone().map(|program| {
        let config = settings.state_dir.join(gatekey_agent::material::files::OPENVPN_CONF);
        tokio::spawn(supervise(program, config, settings.state_dir.clone(), stop_receiver))
    });
    let cores = settings.core_nodes()?;
    let outcome = Gateway::new(settings, cores, firewall).run().await;
    let _ = stop_openvpn.send(true);
    if let Some(supervisor) = supervisor {
        let _ = supervisor.await;
    }
    outcome
}

async fn hook(args: AgentArgs, config: Option<PathBuf>, kind: HookKind) -> Result<(), AgentError> {
    let settings = AgentSettings::resolve(args, config.as_deref())?;
    if run_hook(&settings, kind, std::env::vars().collect()).await? {
        Ok(())
    } else {
        Err(AgentError::Setup("refused".into()))
    }
}

async fn check(cores: &str, core_ca: Option<&std::path::Path>) -> Result<(), String> {
    let ca = core_ca.map(std::fs::read_to_string).transpose().map_err(|e| format!("cannot read the CA: {e}"))?;
    for core in cores.split(',').map(str::trim) {
        check_one(core, ca.as_deref()).await?;
    }
    Ok(())
}

async fn check_one(core: &str, ca: Option<&str>) -> Result<(), String> {
    let channel = gatekey::connect::channel(core, ca).map_err(|e| format!("core URL `{core}`: {e}"))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map_err(|status| format!("cannot reach the core at {core}: {status}"))?
        .into_inner();
    match answer.status() {
        ServingStatus::Serving => {
            println!("core at {core} is serving");
            Ok(())
        }
        other => Err(format!("core at {core} answered {}", other.as_str_name())),
    }
}
