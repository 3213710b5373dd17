//! Apps: the [`App`] trait and the built-in apps (RapidSMS's contrib apps).
//!
//! An app stage consumes `sms.app.<name>`, calls [`App::handle`] for each
//! routed message and writes the replies to `sms.outbound`. The outgoing
//! router calls [`App::outgoing`] on every app, in reverse order.

mod app;
mod builtin;
pub mod messaging;
pub mod poll;
pub mod registration;
pub mod runner;

use std::sync::Arc;

use crate::config;
use crate::state::polls::PollBook;

pub use app::{respond, respond_error, App, AppError, Context, Outgoing, Services};
pub use builtin::{Autoresponder, DefaultApp, Echo, Ping};
pub use poll::Poll;
pub use registration::Registration;

/// Build the built-in app a config item declares. `External` apps have no
/// built-in: `None`.
pub fn build(app: &config::App, polls: &Arc<PollBook>) -> Option<Arc<dyn App>> {
    Some(match app {
        config::App::Echo { .. } => Arc::new(Echo),
        config::App::Ping { .. } => Arc::new(Ping),
        config::App::Default { response, .. } => Arc::new(DefaultApp::new(response.as_deref())),
        config::App::Autoresponder { reply, help, .. } => {
            Arc::new(Autoresponder::new(reply, help.as_deref()))
        }
        config::App::Registration { .. } => Arc::new(Registration::new()),
        config::App::Poll {
            name,
            question,
            choices,
            ..
        } => Arc::new(Poll::new(name, question, choices, polls.clone())),
        config::App::External { .. } => return None,
    })
}
