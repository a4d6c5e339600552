//! GateKey gateway agent: holds the stream to the core, drives a stock OpenVPN
//! server through its management interface, and enforces per-identity rules with
//! nftables. The same agent runs mesh hubs (a gateway in hub role) and provisions
//! mesh spokes.

pub mod config;
pub mod error;
pub mod forwarding;
pub mod gateway;
pub mod gateway_state;
pub mod hook;
pub mod link;
pub mod management;
pub mod material;
pub mod nft;
pub mod openvpn;
pub mod resolver;
pub mod spoke;
pub mod spoke_routes;
