//! Your own app in Rust: a number-guessing game with its own keyword and its
//! own state, run in the same process as the rest of the pipeline.
//!
//! ```text
//! cargo run --example guess -- examples/guess.yaml
//! ```
//!
//! then send `guess` from the message tester (http://127.0.0.1:8081/tester/).
//!
//! What it shows:
//!
//! - [`App::handle`] gets a [`Context`]: the routed message (`rest` is the
//!   text after the keyword), the sender's contact, and ways to answer.
//! - Every text goes through [`Context::text`], so a pipeline can translate
//!   it under `languages.texts` (`guess.start`, `guess.higher`, ...) and each
//!   contact gets it in their language.
//! - The app keeps state of its own, per phone. Messages from one phone
//!   always reach the same app instance in order (they share a Kafka key and
//!   so a partition), so a lock per call is all the coordination needed. The
//!   state here lives in memory; an app whose state must survive restarts
//!   writes it as records with [`Context::store`] to a compacted topic and
//!   reads it back with `smsflow::state::table::follow`, as the built-in poll app does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use smsflow::apps::{App, AppError, Context};
use smsflow::topology::Topology;

/// One phone's game.
struct Game {
    secret: u32,
    tries: u32,
}

/// The app: `guess` starts a game, `guess <n>` plays.
pub struct Guess {
    pick: Box<dyn Fn() -> u32 + Send + Sync>,
    games: Mutex<HashMap<String, Game>>,
}

impl Guess {
    /// A game whose secret numbers come from `pick` (random in `main`,
    /// fixed in the tests).
    pub fn new(pick: impl Fn() -> u32 + Send + Sync + 'static) -> Self {
        Self {
            pick: Box::new(pick),
            games: Mutex::default(),
        }
    }
}

impl App for Guess {
    fn handle(&self, cx: &mut Context<'_>) -> Result<(), AppError> {
        let phone = cx.message().message.connection.key();
        let mut games = self
            .games
            .lock()
            .map_err(|_| AppError::Failed("game state lock poisoned".into()))?;
        let Some(given) = cx.message().rest.as_deref().map(str::trim) else {
            // A bare keyword (RapidSMS's help): a new game.
            games.insert(
                phone,
                Game {
                    secret: (self.pick)(),
                    tries: 0,
                },
            );
            let text = cx.text(
                "start",
                "I'm thinking of a number from 1 to 100. Send GUESS <number>.",
                &[],
            );
            cx.respond(text);
            return Ok(());
        };
        let Ok(n) = given.parse::<u32>() else {
            // RapidSMS's KeywordHandler answered a bad int with this text.
            let text = cx.text(
                "not_a_number",
                "Not a valid number: {given}",
                &[("given", given)],
            );
            cx.respond_error(text);
            return Ok(());
        };
        let Some(game) = games.get_mut(&phone) else {
            let text = cx.text("no_game", "Send GUESS to start a game.", &[]);
            cx.respond_error(text);
            return Ok(());
        };
        game.tries += 1;
        let text = if n < game.secret {
            cx.text("higher", "Higher.", &[])
        } else if n > game.secret {
            cx.text("lower", "Lower.", &[])
        } else {
            let tries = game.tries.to_string();
            games.remove(&phone);
            let name = cx
                .contact()
                .map(|c| c.name)
                .unwrap_or_else(|| "you".to_owned());
            cx.text(
                "won",
                "Yes, {name}! {n} in {tries} tries. Send GUESS to play again.",
                &[("name", &name), ("n", given), ("tries", &tries)],
            )
        };
        cx.respond(text);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let file = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("examples/guess.yaml"));
    let pipeline = smsflow::topology::load_file(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = Topology::new(pipeline)?
        .with_app("guess", Arc::new(Guess::new(|| fastrand::u32(1..=100))))
        .start(None, true)
        .await?;
    if let Some(addr) = running.admin_addr() {
        println!("send `guess` at http://{addr}/tester/ · Ctrl-C stops");
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown().await
}
