//! `smsflow modem-sim`: the simulated GSM modem ([`crate::modem::sim`]) on
//! a pseudo-terminal, to try a modem client (smsflow's modem backend,
//! gammu, minicom) without hardware. Each stdin line `<phone> <text>` is a
//! phone sending the modem an SMS; each SMS the client sends through the
//! modem is printed as `to <phone> (mr <n>): <text>`.

use std::path::PathBuf;
use std::time::Duration;

use crate::modem::sim::{SimConfig, SimModem};
use crate::outln;

/// `smsflow modem-sim [--link PATH] [--pin PIN] [--storage N]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The path clients open: it becomes a symlink to the pty's device.
    #[arg(long, default_value = "/tmp/smsflow-modem")]
    pub link: PathBuf,
    /// The SIM's PIN (default: none needed).
    #[arg(long)]
    pub pin: Option<String>,
    /// SIM message slots.
    #[arg(long, default_value_t = 20)]
    pub storage: usize,
}

/// Runs the modem until Ctrl-C (or SIGTERM); the link is removed on the way out.
pub async fn run(args: Args) -> std::io::Result<()> {
    let config = SimConfig {
        pin: args.pin,
        storage: args.storage,
        ..SimConfig::default()
    };
    let sim = SimModem::new(config);
    let mut pty = sim.on_pty(&args.link).await?;
    let device = pty.device().map(|d| d.display().to_string());
    eprintln!(
        "modem-sim: a modem at {} ({}); type `<phone> <text>` to send it an SMS, Ctrl-C to stop",
        args.link.display(),
        device.unwrap_or_default()
    );
    // Made once, before the loop: a signal that came between two
    // `ctrl_c()` futures would be lost.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut interrupt, mut terminate) = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    );
    // A thread of its own rather than `tokio::io::stdin()`, whose blocking
    // read would hold up the runtime's shutdown until stdin closed.
    let (typed, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let sent = line.map(|line| typed.blocking_send(line));
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            line = lines.recv(), if stdin_open => match line {
                Some(line) => mo(&sim, &line),
                // The modem goes on without a keyboard.
                None => stdin_open = false,
            },
            _ = tick.tick() => {
                let sent = sim.sent();
                for sms in sent.iter().skip(printed) {
                    outln!("to {} (mr {}): {}", sms.to, sms.mr, sms.text);
                }
                printed = sent.len();
            }
        }
    }
    pty.vanish().await;
    Ok(())
}

/// `<phone> <text>`: that phone sends that text.
fn mo(sim: &SimModem, line: &str) {
    let line = line.trim();
    match line.split_once(char::is_whitespace) {
        Some((phone, text)) if !text.trim().is_empty() => {
            let stored = sim.deliver(phone, text.trim());
            eprintln!("modem-sim: from {phone}, stored at {stored:?}");
        }
        _ if line.is_empty() => {}
        _ => eprintln!("modem-sim: expected `<phone> <text>`, e.g. `+15551234 hello`"),
    }
}
