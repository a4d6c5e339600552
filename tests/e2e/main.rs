//! End-to-end tests: the real `gatekey-core`, `gatekey-rest` and `gatekey-agent`
//! binaries over real sockets, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod kit;
mod netns;
mod observability;
mod oidc;
mod openapi;

mod activity;
mod agents;
mod browser;
mod client_cli;
mod client_login;
mod cluster;
mod console;
mod deploy;
mod gateway_e2e;
mod geo_fence;
mod grpc;
mod mesh;
mod pki;
mod ratelimits;
mod rest_admin;
mod rest_auth;
mod review;
mod saml;
mod sdk;
mod storage;
