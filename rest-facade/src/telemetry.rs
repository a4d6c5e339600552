//! Logging set-up shared by the GateKey binaries.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: `RUST_LOG` filtering (default `info`), text or JSON
/// lines on stderr. Calling it twice keeps the first subscriber.
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = if json { builder.json().try_init() } else { builder.try_init() };
    if installed.is_err() {
        tracing::debug!("a logging subscriber was already installed");
    }
}
