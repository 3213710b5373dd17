//! An app stage: `sms.app.<name>` → [`App::handle`] → `sms.outbound`.

use std::sync::Arc;

use super::{App, AppError};
use crate::bus::Record;
use crate::message::{derived_id, OutboundMessage, RoutedMessage};
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler, Output};

pub struct AppStage {
    app: Arc<dyn App>,
    outbound: Arc<str>,
}

impl AppStage {
    pub fn new(app: Arc<dyn App>, outbound: Arc<str>) -> Self {
        Self { app, outbound }
    }
}

/// Run `app` on `msg` and return its replies, with ids derived from the
/// message: the same input gives the same ids, so a redelivered message does
/// not become a second, different reply. (App stages and the chained router
/// both call this.)
pub fn replies(app: &dyn App, msg: &RoutedMessage) -> Result<Vec<OutboundMessage>, HandleError> {
    let mut replies = app.handle(msg).map_err(|e| HandleError::Failed {
        kind: match e {
            AppError::Input(_) => "app_input",
            AppError::Failed(_) => "app",
        },
        message: e.to_string(),
    })?;
    for (n, reply) in replies.iter_mut().enumerate() {
        reply.id = derived_id(&msg.message.id, &msg.app, n);
    }
    Ok(replies)
}

impl Handler for AppStage {
    async fn handle(&mut self, record: &Record, out: &mut Output) -> Result<(), HandleError> {
        let msg = decode(schema::routed(), record)?;
        if msg.message.connection.identity.trim().is_empty() {
            return Err(HandleError::input(
                "invalid",
                "empty identity in connection",
            ));
        }
        for reply in replies(self.app.as_ref(), &msg)? {
            out.push(encode(
                schema::outbound(),
                &self.outbound,
                &reply.connection,
                &reply,
            )?);
        }
        Ok(())
    }
}
