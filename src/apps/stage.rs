//! An app stage: `sms.app.<name>` → [`App::handle`] → `sms.outbound`.

use std::sync::Arc;

use super::{App, AppError};
use crate::bus::{Produce, Record};
use crate::message::derived_id;
use crate::schema;
use crate::stage::{decode, encode, HandleError, Handler};

pub struct AppStage {
    app: Arc<dyn App>,
    outbound: Arc<str>,
}

impl AppStage {
    pub fn new(app: Arc<dyn App>, outbound: Arc<str>) -> Self {
        Self { app, outbound }
    }
}

impl Handler for AppStage {
    async fn handle(&mut self, record: &Record, out: &mut Vec<Produce>) -> Result<(), HandleError> {
        let msg = decode(schema::routed(), record)?;
        if msg.message.connection.identity.trim().is_empty() {
            return Err(HandleError::input(
                "invalid",
                "empty identity in connection",
            ));
        }
        let replies = self.app.handle(&msg).map_err(|e| HandleError::Failed {
            kind: match e {
                AppError::Input(_) => "app_input",
                AppError::Failed(_) => "app",
            },
            message: e.to_string(),
        })?;
        for (n, mut reply) in replies.into_iter().enumerate() {
            // Same input, same ids: a redelivered message does not become a
            // second, different reply.
            reply.id = derived_id(&msg.message.id, &msg.app, n);
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
