//! GateKey gateway agent: holds the stream to the core, drives a stock OpenVPN
//! server through its management interface, and enforces per-identity rules with
//! nftables.

pub mod config;
pub mod gateway;
pub mod hook;
pub mod link;
pub mod management;
pub mod material;
pub mod nft;
