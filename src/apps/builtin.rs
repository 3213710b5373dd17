//! The built-in apps, with RapidSMS's exact strings.

use super::{respond, respond_error, template, App, AppError};
use crate::message::{OutboundMessage, RoutedMessage};

/// RapidSMS `EchoHandler`: `echo <text>` → `<text>`, a bare `echo` → help.
pub struct Echo;

impl Echo {
    pub const HELP: &'static str = "To echo some text, send: ECHO <ANYTHING>";
}

impl App for Echo {
    fn handle(&self, msg: &RoutedMessage) -> Result<Vec<OutboundMessage>, AppError> {
        Ok(vec![match &msg.rest {
            Some(rest) => respond(msg, rest.clone()),
            None => respond(msg, Self::HELP),
        }])
    }
}

/// RapidSMS `PingHandler`: exactly `ping` → `pong` (its route does the matching).
pub struct Ping;

impl App for Ping {
    fn handle(&self, msg: &RoutedMessage) -> Result<Vec<OutboundMessage>, AppError> {
        Ok(vec![respond(msg, "pong")])
    }
}

/// RapidSMS's `default` app: an error reply to what nothing understood.
pub struct DefaultApp {
    response: Option<String>,
}

impl DefaultApp {
    pub fn new(response: Option<&str>, project: &str) -> Self {
        let response =
            response.map(|r| template::render(r, |n| (n == "project").then(|| project.to_owned())));
        Self { response }
    }
}

impl App for DefaultApp {
    fn handle(&self, msg: &RoutedMessage) -> Result<Vec<OutboundMessage>, AppError> {
        Ok(self
            .response
            .iter()
            .map(|text| respond_error(msg, text.clone()))
            .collect())
    }
}

/// A reply template for a keyword or pattern, declared in YAML.
pub struct Autoresponder {
    reply: String,
    help: Option<String>,
    project: String,
}

impl Autoresponder {
    pub fn new(reply: &str, help: Option<&str>, project: &str) -> Self {
        Self {
            reply: reply.to_owned(),
            help: help.map(str::to_owned),
            project: project.to_owned(),
        }
    }
}

impl App for Autoresponder {
    fn handle(&self, msg: &RoutedMessage) -> Result<Vec<OutboundMessage>, AppError> {
        let template = match (&msg.rest, &self.help) {
            (None, Some(help)) if msg.captures.is_empty() => help,
            _ => &self.reply,
        };
        let text = template::render(template, |name| match name {
            "rest" => Some(msg.rest.clone().unwrap_or_default().trim().to_owned()),
            "project" => Some(self.project.clone()),
            other => msg.captures.get(other).cloned(),
        });
        Ok(vec![respond(msg, text)])
    }
}
