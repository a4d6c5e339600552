//! `gatekey-core`: the GateKey control plane.

use clap::Parser;
use gatekey_core::config::{Cli, Command};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            gatekey::telemetry::init_logging(args.log_json);
            match gatekey_core::server::serve(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "gatekey-core stopped");
                    eprintln!("gatekey-core: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
