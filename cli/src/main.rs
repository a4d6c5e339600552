//! `gatekey`: the GateKey client. Sign in (single sign-on in the browser, or a
//! password), list the gateways you may use, connect with the system's OpenVPN and
//! stay connected across certificate renewals, see the connection, disconnect.

mod connection;
mod control;
mod credentials;
mod failure;
mod listing;
mod login;
mod openvpn;

use clap::{CommandFactory, Parser, Subcommand};
use credentials::Owner;
use failure::{EXIT_CODES, Failure};
use gatekey::Client;
use std::path::PathBuf;
use std::process::ExitCode;

/// The GateKey client: sign in, connect to a gateway, stay connected.
#[derive(Debug, Parser)]
#[command(name = "gatekey", version, after_help = EXIT_CODES)]
struct Cli {
    /// The GateKey server (its gRPC URL, e.g. https://vpn.example.com:9090); remembered
    /// from `gatekey login`.
    #[arg(long, global = true, env = "GATEKEY_SERVER")]
    server: Option<String>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in: single sign-on in the system browser by default, or with a password.
    /// The session is kept in ~/.config/gatekey/session.json (0600) and never printed.
    Login {
        /// The identity provider to use, when there are several.
        #[arg(long)]
        provider: Option<String>,
        /// Sign in with a local account's password instead (read without echo, or from
        /// standard input when it is not a terminal).
        #[arg(long)]
        password: bool,
        /// The local account's username (with --password).
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// End the session on the server and forget it here.
    Logout,
    /// List the gateways you may use, with their status.
    Gateways {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the mesh hubs you may use, with their status.
    Hubs {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a gateway (or hub) with the system's OpenVPN (as root) and stay
    /// connected: the certificate is renewed at 80% of its life. Ctrl-C or SIGTERM
    /// disconnects.
    Connect {
        /// The gateway: its name, a unique prefix of it, or nothing when only one is yours.
        gateway: Option<String>,
        /// Run in the background; `gatekey status` and `gatekey disconnect` reach it.
        #[arg(long)]
        background: bool,
        /// The OpenVPN program.
        #[arg(long, default_value = "openvpn")]
        openvpn: PathBuf,
        /// An extra OpenVPN option (repeatable), e.g. `--openvpn-option=--disable-dco`.
        #[arg(long = "openvpn-option", allow_hyphen_values = true)]
        openvpn_options: Vec<String>,
        /// Print progress as JSON lines.
        #[arg(long)]
        json: bool,
        /// Internal: the process `--background` starts.
        #[arg(long, hide = true)]
        detached: bool,
    },
    /// Show the running connection: gateway, since when, tunnel address, routes, bytes,
    /// the certificate's expiry.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End the running connection.
    Disconnect,
    /// Write a profile for another OpenVPN client (e.g. a NetworkManager import).
    Config {
        /// The gateway: its name, a unique prefix of it, or nothing when only one is yours.
        gateway: Option<String>,
        /// Where to write it (0600).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    Man,
}

/// A client for the stored (or given) server and session.
fn signed_in_client(owner: &Owner, server: Option<&str>) -> Result<(String, Client), Failure> {
    let (server, token) = owner.session(server)?;
    let client = Client::with_channel(login::channel(&server)?, &token)
        .map_err(|error| Failure::from_sdk("using the stored session", error))?;
    Ok((server, client))
}

async fn run(cli: Cli) -> Result<String, Failure> {
    let owner = Owner::current();
    let server = cli.server.as_deref();
    match cli.command {
        Command::Login { provider, password, username, no_browser } => {
            let stored = owner.load()?.map(|stored| stored.server);
            let server = server.map(str::to_owned).or(stored).ok_or_else(|| {
                Failure::SignedOut("which server? run `gatekey login --server https://vpn.example.com:9090`".into())
            })?;
            if password {
                let username = match username {
                    Some(username) => username,
                    None => return Err(Failure::Local("--password needs --username NAME".into())),
                };
                login::with_password(&owner, &server, &username).await
            } else {
                login::with_browser(&owner, &server, provider.as_deref().unwrap_or_default(), !no_browser).await
            }
        }
        Command::Logout => login::logout(&owner).await,
        Command::Gateways { json } => listing::gateways(&signed_in_client(&owner, server)?.1, json).await,
        Command::Hubs { json } => listing::hubs(&signed_in_client(&owner, server)?.1, json).await,
        Command::Config { gateway, output } => {
            listing::write_profile(&signed_in_client(&owner, server)?.1, gateway.as_deref(), &output).await
        }
        Command::Connect { gateway, background, openvpn, openvpn_options, json, detached } => {
            let (server, client) = signed_in_client(&owner, server)?;
            if background && !detached {
                let mut arguments = vec!["--server".to_owned(), server, "connect".to_owned()];
                arguments.extend(gateway);
                arguments.extend(["--openvpn".to_owned(), openvpn.display().to_string(), "--detached".to_owned()]);
                arguments.extend(openvpn_options.into_iter().map(|option| format!("--openvpn-option={option}")));
                return connection::background(&owner, arguments).await;
            }
            let options = connection::ConnectOptions { gateway, openvpn, openvpn_options, renew_at: 0.8, json };
            connection::connect(&owner, &client, &options).await
        }
        Command::Status { json } => {
            let status = control::status(owner.uid).await?;
            Ok(if json { serde_json::to_string_pretty(&status).unwrap_or_default() } else { status.describe() })
        }
        Command::Disconnect => {
            control::ask(owner.uid, "disconnect").await?;
            for _ in 0..100 {
                if control::status(owner.uid).await.is_err() {
                    return Ok("Disconnected.".into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(Failure::Connection("the connection did not end within 10 s".into()))
        }
        Command::Completions { shell } => {
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gatekey", &mut buffer);
            Ok(String::from_utf8_lossy(&buffer).trim_end().to_owned())
        }
        Command::Man => {
            let mut buffer = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buffer)
                .map_err(|e| Failure::Local(format!("cannot render the manual: {e}")))?;
            Ok(String::from_utf8_lossy(&buffer).trim_end().to_owned())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(said) => {
            if !said.is_empty() {
                println!("{said}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("gatekey: {failure}");
            failure.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
