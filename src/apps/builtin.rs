//! The built-in apps, with RapidSMS's exact strings (in English; every text
//! can be translated under `languages.texts` with the key shown).

use super::app::{App, AppError, Context};

/// RapidSMS `EchoHandler`: `echo <text>` → `<text>`, a bare `echo` → help (`echo.help`).
pub struct Echo;

impl Echo {
    pub const HELP: &'static str = "To echo some text, send: ECHO <ANYTHING>";
}

impl App for Echo {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let text = match &cx.message().rest {
            Some(rest) => rest.clone(),
            None => cx.text("help", Self::HELP, &[]),
        };
        cx.respond(text);
        Ok(())
    }
}

/// RapidSMS `PingHandler`: exactly `ping` → `pong` (`ping.pong`; its route does the matching).
pub struct Ping;

impl App for Ping {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let text = cx.text("pong", "pong", &[]);
        cx.respond(text);
        Ok(())
    }
}

/// RapidSMS's `default` app: an error reply to what nothing understood (`default.response`).
pub struct DefaultApp {
    response: Option<String>,
}

impl DefaultApp {
    /// `response` may use `{project}`; `None` answers nothing.
    pub fn new(response: Option<&str>) -> Self {
        Self {
            response: response.map(str::to_owned),
        }
    }
}

impl App for DefaultApp {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        if let Some(response) = &self.response {
            let text = cx.text("response", response, &[]);
            cx.respond_error(text);
        }
        Ok(())
    }
}

/// A reply template for a keyword or pattern, declared in YAML
/// (`<name>.reply`, `<name>.help`).
pub struct Autoresponder {
    reply: String,
    help: Option<String>,
}

impl Autoresponder {
    pub fn new(reply: &str, help: Option<&str>) -> Self {
        Self {
            reply: reply.to_owned(),
            help: help.map(str::to_owned),
        }
    }
}

impl App for Autoresponder {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let msg = cx.message();
        let (key, template) = match (&msg.rest, &self.help) {
            (None, Some(help)) if msg.captures.is_empty() => ("help", help),
            _ => ("reply", &self.reply),
        };
        let rest = msg.rest.as_deref().unwrap_or_default().trim();
        let mut vars: Vec<(&str, &str)> = vec![("rest", rest)];
        vars.extend(msg.captures.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let text = cx.text(key, template, &vars);
        cx.respond(text);
        Ok(())
    }
}
