//! GateKey core: the gRPC services behind every GateKey interface, with identity,
//! storage and (in later capabilities) PKI, policy and the agent hub.

pub mod agent_hub;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod context;
pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod fleet;
pub mod geofence;
pub mod ids;
pub mod metrics;
pub mod ovpn;
pub mod pki;
pub mod policy;
pub mod providers_file;
pub mod ratelimit;
pub mod sealing;
pub mod secrets;
pub mod server;
pub mod services;
pub mod snapshot_batch;
pub mod sso;
pub mod store;
pub mod validate;
pub mod verdict_inputs;
