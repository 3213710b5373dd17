//! Apps: the [`App`] trait and the built-in apps (RapidSMS's contrib apps).
//!
//! An app stage consumes `sms.app.<name>`, calls [`App::handle`] for each
//! routed message and writes the replies to `sms.outbound`. The outgoing
//! router calls [`App::outgoing`] on every app, in reverse order.

mod builtin;
pub mod stage;
pub mod template;

use std::sync::Arc;

pub use builtin::{Autoresponder, DefaultApp, Echo, Ping};

use crate::config;
use crate::message::{OutboundMessage, RoutedMessage};

/// Why an app could not handle a message. The message gets no reply; the
/// failure is counted and logged, and the stage goes on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The message itself is the problem (for example a field the app needs is missing).
    #[error("bad input: {0}")]
    Input(String),
    /// The app failed (a bug or an unavailable dependency).
    #[error("app failed: {0}")]
    Failed(String),
}

/// What the outgoing phase decided for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    Send,
    /// Do not send it (RapidSMS: an app's `outgoing` returned `False`).
    Cancel,
}

/// A RapidSMS app: handles the messages routed to it, may alter or cancel outgoing ones.
pub trait App: Send + Sync {
    /// Handle one routed message and return the messages to send (usually
    /// replies, made with [`respond`]). Runs on the app's stage.
    fn handle(&self, msg: &RoutedMessage) -> Result<Vec<OutboundMessage>, AppError>;

    /// The outgoing phase: alter `msg` or cancel it. Runs on the outgoing router.
    fn outgoing(&self, _msg: &mut OutboundMessage) -> Outgoing {
        Outgoing::Send
    }
}

/// A reply to the routed message over the connection it came in on (RapidSMS `msg.respond`).
pub fn respond(msg: &RoutedMessage, text: impl Into<String>) -> OutboundMessage {
    let mut reply = OutboundMessage::reply_to(&msg.message, text);
    reply.app = Some(msg.app.clone());
    reply
}

/// An error reply (RapidSMS `msg.error`, an `ErrorMessage`).
pub fn respond_error(msg: &RoutedMessage, text: impl Into<String>) -> OutboundMessage {
    let mut reply = respond(msg, text);
    reply.is_error = true;
    reply
}

/// Build the built-in app a config item declares. `External` apps have no
/// built-in: `None`.
pub fn build(app: &config::App, project: &str) -> Option<Arc<dyn App>> {
    Some(match app {
        config::App::Echo { .. } => Arc::new(Echo),
        config::App::Ping { .. } => Arc::new(Ping),
        config::App::Default { response, .. } => {
            Arc::new(DefaultApp::new(response.as_deref(), project))
        }
        config::App::Autoresponder { reply, help, .. } => {
            Arc::new(Autoresponder::new(reply, help.as_deref(), project))
        }
        config::App::External { .. } => return None,
    })
}
