//! The router: RapidSMS's incoming phases as a partitioned stage
//! ([`inbound::RouterIn`]) and its outgoing phase ([`outbound::RouterOut`]).

pub mod inbound;
mod index;
pub mod outbound;
pub mod table;

pub use inbound::RouterIn;
pub use outbound::RouterOut;
pub use table::RouteTable;
