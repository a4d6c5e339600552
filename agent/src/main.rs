//! `gatekey-agent`: runs beside an OpenVPN server on each gateway. This build
//! carries the connectivity check; the stream, OpenVPN and nftables drivers come
//! with the gateway-agent capability.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The GateKey gateway agent.
#[derive(Debug, Parser)]
#[command(name = "gatekey-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks that the core answers its gRPC health check.
    Check {
        /// gRPC URL of the core.
        #[arg(long, env = "GATEKEY_CORE_URL", default_value = "http://127.0.0.1:9090")]
        core: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { core } => match check(&core).await {
            Ok(ServingStatus::Serving) => {
                println!("core at {core} is serving");
                ExitCode::SUCCESS
            }
            Ok(status) => {
                eprintln!("core at {core} answered {}", status.as_str_name());
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("cannot reach the core at {core}: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn check(core: &str) -> Result<ServingStatus, Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(core.to_owned())?.connect().await?;
    let mut client = HealthClient::new(channel);
    let answer = client.check(HealthCheckRequest { service: String::new() }).await?.into_inner();
    Ok(answer.status())
}
