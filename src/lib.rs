pub mod message;
pub mod schema;
