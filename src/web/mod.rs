//! RapidSMS's web interface and a JSON API over the same tables: the
//! message log, contacts (RapidSMS's registration pages: list, add, edit,
//! delete, bulk CSV upload), messaging (send a message), polls and message
//! status.
//!
//! [`server`] assembles the two HTTP servers (the public one for webhooks
//! and probes, the admin one for everything below). `api` answers JSON
//! under `/api/` (`campaigns`: the campaigns' part of it); `pages` renders HTML on the server (no script but the CSV
//! file picker's). Both go through [`actions`].

pub mod actions;
mod api;
pub mod campaigns;
mod html;
mod pages;
mod registry;
pub mod server;
pub mod stats;
