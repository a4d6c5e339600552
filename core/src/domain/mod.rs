//! The domain layer: what GateKey does, one function per operation, between the gRPC
//! services (which authenticate, decode and encode) and the store (which speaks SQL).
//! Each operation that writes runs in one [`UnitOfWork`]: every store function it calls
//! takes that transaction, and the events the fleet must hear commit with the change.

pub mod access_rules;
pub mod agents;
pub mod configs;
pub mod gateways;
pub mod mesh;
pub mod networks;
pub mod revocation;
mod unit_of_work;
pub mod users;
pub mod watched;
mod words;

pub use unit_of_work::UnitOfWork;
pub use words::*;
