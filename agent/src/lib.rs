//! GateKey gateway agent: holds the stream to the core, drives a stock OpenVPN
//! server through its management interface, and enforces per-identity rules with
//! nftables.

pub mod management;
pub mod nft;
