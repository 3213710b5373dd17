//! An app stage: `sms.app.<name>` → [`App::handle`] → `sms.outbound`.

use std::sync::Arc;

use super::app::{App, AppError, Context, Services};
use crate::bus::{Produce, Record};
use crate::message::{derived_id, OutboundMessage, RoutedMessage};
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler, Output};

pub struct AppStage {
    app: Arc<dyn App>,
    services: Services,
    outbound: Arc<str>,
}

impl AppStage {
    pub fn new(app: Arc<dyn App>, services: Services, outbound: Arc<str>) -> Self {
        Self {
            app,
            services,
            outbound,
        }
    }
}

/// What an app made of one message: the messages to send, and its other
/// records (contacts, state).
pub struct Handled {
    pub replies: Vec<OutboundMessage>,
    pub records: Vec<Produce>,
}

/// Run `app` on `msg`. Reply ids are derived from the message: the same
/// input gives the same ids, so a redelivered message does not become a
/// second, different reply. (App stages and the chained router both call this.)
pub fn replies(
    app: &dyn App,
    msg: &RoutedMessage,
    services: &Services,
) -> Result<Handled, HandleError> {
    let mut cx = Context::new(msg, services);
    app.handle(&mut cx).map_err(|e| HandleError::Failed {
        kind: match e {
            AppError::Input(_) => "app_input",
            AppError::Failed(_) => "app",
        },
        message: e.to_string(),
    })?;
    let (mut replies, records) = cx.finish();
    for (n, reply) in replies.iter_mut().enumerate() {
        reply.id = derived_id(&msg.message.id, &msg.app, n);
    }
    Ok(Handled { replies, records })
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
        let handled = replies(self.app.as_ref(), &msg, &self.services)?;
        out.extend(handled.records);
        for reply in handled.replies {
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
