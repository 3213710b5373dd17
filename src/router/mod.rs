//! The router: RapidSMS's incoming phases as a partitioned stage
//! ([`inbound::RouterIn`]) and its outgoing phase ([`outbound::RouterOut`]).

pub mod inbound;
mod index;
pub mod outbound;
pub mod routes;
pub mod rule;
mod shadow;

pub use inbound::RouterIn;
pub use outbound::RouterOut;
pub use routes::RouteTable;

/// The router's check of a pipeline ([`crate::config::Check`]): every
/// route compiles and names an app and a backend that exist.
pub fn check(p: &crate::config::Pipeline) -> Vec<(crate::config::Path, String)> {
    RouteTable::build(p).err().unwrap_or_default()
}
