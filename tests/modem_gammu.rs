//! The simulated modem's realism, checked by a real client: Debian's gammu
//! 1.42 opens the sim's pty by path (connection `at`, as it would open
//! `/dev/ttyUSB0`), runs its whole init dialogue, identifies the modem,
//! sends GSM-7, UCS-2 and concatenated texts (with a status report asked),
//! and reads what phones sent. A failure shows gammu's own debug log and
//! the sim's transcript.

use std::path::PathBuf;
use std::time::Duration;

use smsflow::modem::sim::{PtyHandle, SentSms, SimConfig, SimModem};

mod common;

/// The sim on a pty in a temporary directory, and a gammu configured for it.
struct Rig {
    dir: tempfile::TempDir,
    sim: SimModem,
    _pty: PtyHandle,
    gammu: PathBuf,
}

/// What a gammu run gave.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Rig {
    async fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyModem");
        let sim = SimModem::new(SimConfig::default());
        let pty = sim.on_pty(&link).await.unwrap();
        // model = at: without it gammu runs its init twice (auto-detection).
        let config = format!(
            "[gammu]\ndevice = {}\nconnection = at\nmodel = at\nlogfile = {}\nlogformat = textall\n",
            link.display(),
            dir.path().join("gammu.log").display()
        );
        std::fs::write(dir.path().join("gammurc"), config).unwrap();
        let gammu = common::Tool::Gammu.path();
        Rig {
            dir,
            sim,
            _pty: pty,
            gammu,
        }
    }

    /// `gammu -c <config> <args>`, at most 60 s.
    async fn gammu(&self, args: &[&str]) -> Run {
        let mut command = tokio::process::Command::new(&self.gammu);
        command
            .arg("-c")
            .arg(self.dir.path().join("gammurc"))
            .args(args)
            .kill_on_drop(true);
        let run = tokio::time::timeout(Duration::from_secs(60), command.output()).await;
        let Ok(output) = run else {
            panic!("gammu {args:?} still running after 60 s{}", self.context());
        };
        let output = output.unwrap();
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs gammu and fails the test, with the logs, unless it exits 0.
    async fn gammu_ok(&self, args: &[&str]) -> String {
        let run = self.gammu(args).await;
        assert!(
            run.ok,
            "gammu {args:?} failed\nstdout:\n{}\nstderr:\n{}{}",
            run.stdout,
            run.stderr,
            self.context()
        );
        run.stdout
    }

    /// gammu's debug log and the end of the sim's transcript.
    fn context(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("gammu.log")).unwrap_or_default();
        let transcript = self.sim.transcript();
        let tail = transcript.len().saturating_sub(80);
        format!(
            "\n--- gammu log ---\n{log}\n--- sim transcript (last 80 lines) ---\n{}",
            transcript[tail..].join("\n")
        )
    }
}

#[tokio::test]
async fn gammu_identifies_the_sim() {
    require_tools!(common::Tool::Gammu);
    let rig = Rig::new().await;
    let out = rig.gammu_ok(&["identify"]).await;
    let context = || format!("{out}{}", rig.context());
    assert!(
        out.contains("Smsflow"),
        "no manufacturer in:\n{}",
        context()
    );
    assert!(
        out.contains("356938035643809"),
        "no IMEI in:\n{}",
        context()
    );
}

#[tokio::test]
async fn gammu_sends_gsm7_unicode_and_long_texts_through_the_sim() {
    require_tools!(common::Tool::Gammu);
    let rig = Rig::new().await;
    let to = "+256772123456";
    rig.gammu_ok(&["sendsms", "TEXT", to, "-text", "Hello [€]"])
        .await;
    rig.gammu_ok(&["sendsms", "TEXT", to, "-unicode", "-text", "Hi 😀"])
        .await;
    let digits = "0123456789".repeat(20);
    let long = ["sendsms", "TEXT", to, "-autolen", "200", "-report", "-text"];
    let long: Vec<&str> = long.into_iter().chain([digits.as_str()]).collect();
    rig.gammu_ok(&long).await;

    let sent = rig.sim.sent();
    let summary = |s: &SentSms| (s.to.clone(), s.text.clone(), s.status_report);
    let all: Vec<_> = sent.iter().map(summary).collect();
    assert_eq!(sent.len(), 4, "{all:?}{}", rig.context());
    assert_eq!(all[0], (to.to_owned(), "Hello [€]".to_owned(), false));
    assert_eq!(all[1], (to.to_owned(), "Hi 😀".to_owned(), false));
    let parts = &sent[2..];
    let concat: Vec<_> = parts.iter().map(|p| p.concat.unwrap()).collect();
    assert_eq!((concat[0].total, concat[0].seq, concat[1].seq), (2, 1, 2));
    assert_eq!(concat[0].reference, concat[1].reference);
    assert!(parts.iter().all(|p| p.status_report && p.to == to));
    let joined: String = parts.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(joined, digits);
    // Each send was answered with the next message reference.
    let refs: Vec<u8> = sent.iter().map(|s| s.mr).collect();
    assert_eq!(refs, [0, 1, 2, 3]);
}

#[tokio::test]
async fn gammu_reads_what_phones_sent_to_the_sim() {
    require_tools!(common::Tool::Gammu);
    let rig = Rig::new().await;
    assert_eq!(rig.sim.deliver("+15551234", "Hi from a phone"), [1]);
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(5);
    let long = long.trim_end();
    assert_eq!(rig.sim.deliver("+15559876", long), [2, 3]);
    let out = rig.gammu_ok(&["getallsms"]).await;
    let context = || format!("{out}{}", rig.context());
    assert!(out.contains("Hi from a phone"), "{}", context());
    assert!(out.contains("+15551234"), "{}", context());
    assert!(out.contains("+15559876"), "{}", context());
    // Shown joined, or part by part: either way both ends of the text.
    assert!(out.contains(&long[..60]), "{}", context());
    assert!(out.contains(&long[long.len() - 40..]), "{}", context());
}
