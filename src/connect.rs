//! Channels to a GateKey core for the agent, the standalone facade and SDK users:
//! plain `http://`, or `https://` verified against the system's web PKI roots or a
//! given CA certificate.

use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Error};

/// A lazily connecting channel to `url`; for `https://` URLs, `ca_pem` (if given) is
/// the only CA trusted, otherwise the web PKI roots are.
pub fn channel(url: &str, ca_pem: Option<&str>) -> Result<Channel, Error> {
    Ok(endpoint(url, ca_pem)?.connect_lazy())
}

/// The endpoint [`channel`] connects to, for callers that balance several.
pub fn endpoint(url: &str, ca_pem: Option<&str>) -> Result<Endpoint, Error> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        // Nagle's algorithm would hold small gRPC frames back for the peer's delayed ACK.
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    if url.starts_with("https://") {
        let tls = match ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint)
}

/// The key a standalone REST facade presents to the core so that the client addresses
/// it resolves are believed: `GATEKEY_FACADE_KEY`, or the contents of `file`; none if
/// neither is set. A key shorter than 32 characters is refused.
pub fn facade_key(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    let key = match (std::env::var("GATEKEY_FACADE_KEY").ok().filter(|key| !key.is_empty()), file) {
        (Some(key), _) => key,
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the facade key {}: {e}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    let key = key.trim().to_owned();
    if key.len() < 32 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the facade key must be at least 32 printable characters".into());
    }
    Ok(Some(key))
}
