//! A standalone facade in front of several core nodes: one gRPC channel balanced over
//! them (tonic's power-of-two-choices), from which a node that stops accepting
//! connections is left out within about a second and taken back when it answers
//! again. While no node answers, all stay in, so requests fail at once (503) instead
//! of waiting for one.

use std::time::Duration;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

/// How often each node is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A channel over the core nodes at `urls` (one or more); for `https://` URLs,
/// `ca_pem` is the only CA trusted when given. Must be called inside a Tokio runtime.
pub fn balanced_channel(urls: &[String], ca_pem: Option<&str>) -> Result<Channel, tonic::transport::Error> {
    let endpoints =
        urls.iter().map(|url| gatekey::connect::endpoint(url, ca_pem)).collect::<Result<Vec<Endpoint>, _>>()?;
    if let [only] = endpoints.as_slice() {
        return Ok(only.connect_lazy());
    }
    let (channel, changes) = Channel::balance_channel::<usize>(endpoints.len().max(1) * 2);
    tokio::spawn(async move {
        let mut included = vec![false; endpoints.len()];
        loop {
            let mut answering = Vec::with_capacity(endpoints.len());
            for endpoint in &endpoints {
                let probe = tokio::time::timeout(PROBE_TIMEOUT, endpoint.connect()).await;
                answering.push(matches!(probe, Ok(Ok(_))));
            }
            // With no node answering, keep them all: requests then fail fast.
            let wanted = if answering.contains(&true) { answering } else { vec![true; endpoints.len()] };
            for (index, endpoint) in endpoints.iter().enumerate() {
                if wanted[index] == included[index] {
                    continue;
                }
                let change = if wanted[index] {
                    tracing::info!(core = %endpoint.uri(), "core node in use");
                    Change::Insert(index, endpoint.clone())
                } else {
                    tracing::warn!(core = %endpoint.uri(), "core node not answering; left out");
                    Change::Remove(index)
                };
                if changes.send(change).await.is_err() {
                    return;
                }
                included[index] = wanted[index];
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    });
    Ok(channel)
}
