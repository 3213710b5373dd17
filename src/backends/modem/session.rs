//! A connected modem's work: hand messages over, take stored messages in
//! (store on the bus, then delete), turn status reports into events, and
//! sweep the storage now and then.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use crate::backends::provider::Attempt;
use crate::backends::sent::{Entry, Seen, SentLog, State as Sent};
use crate::backends::{Report, Reports, Source, SourceError};
use crate::bus::Producer;
use crate::config::ModemBackend as Config;
use crate::config::Receiving;
use crate::message::{DeliveryStatus, OutboundMessage};
use crate::metrics::metrics;
use crate::modem::at::{AtError, Urc};
use crate::modem::device::{Modem, Status};
use crate::modem::errors::{cms_verdict, Verdict};
use crate::modem::inbox::{Inbox, Whole};
use crate::modem::pdu::{self, Pdu, StatusReport};
use crate::modem::reports::{provider_id, Outstanding};

/// A message for the port's task, and where its attempt goes.
pub(super) struct Job {
    pub(super) msg: OutboundMessage,
    pub(super) reply: oneshot::Sender<Attempt>,
}

/// What the port's task needs.
pub struct Parts {
    /// Writes inbound messages to `sms.inbound`.
    pub source: Source,
    /// Turns status reports into delivery events.
    pub reports: Reports,
    /// The sink's sent-log, where stored inbound messages are noted too
    /// (so that one read again after a restart is not stored twice).
    pub log: SentLog,
    pub producer: Producer,
}

/// The command named by the error of a registration lost between two inits.
const LOST_NETWORK: &str = "AT+CREG?";

/// The storage index given to a message the modem routed (`+CMT`) rather
/// than stored: nothing to delete.
const ROUTED: u32 = u32::MAX;

/// What outlives a connection: parts of long messages, sent messages
/// waiting for their reports.
pub(super) struct State {
    name: String,
    parts: Parts,
    inbox: Inbox,
    outstanding: Outstanding,
    reports: bool,
    sweep: Duration,
    multipart_timeout: Duration,
    send_timeout: Duration,
}

impl State {
    pub(super) fn new(cfg: &Config, parts: Parts) -> Self {
        let receiving = Receiving {
            country: cfg.country.clone(),
            ..Receiving::default()
        };
        let source = parts.source.with_receiving(&receiving);
        State {
            name: cfg.name.clone(),
            parts: Parts { source, ..parts },
            inbox: Inbox::default(),
            outstanding: Outstanding::new(cfg.report_window),
            reports: cfg.reports,
            sweep: cfg.sweep,
            multipart_timeout: cfg.multipart_timeout,
            send_timeout: cfg.send.timeout,
        }
    }

    pub(super) fn error(&self, kind: &str) {
        metrics()
            .modem_errors
            .with_label_values(&[&self.name, kind])
            .inc();
    }

    pub(super) fn status(&self, s: &Status) {
        let m = metrics();
        m.modem_signal
            .with_label_values(&[&self.name])
            .set(i64::from(s.signal));
        m.modem_registration
            .with_label_values(&[&self.name])
            .set(i64::from(s.registration));
    }

    /// Serve until the link breaks (the error) or the sink is gone (none).
    pub(super) async fn serve<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        modem: &mut Modem<P>,
        jobs: &mut mpsc::Receiver<Job>,
    ) -> Option<AtError> {
        // Parts held from before a reset are read again from the storage.
        self.inbox.clear();
        if let Err(e) = self.sweep(modem).await {
            return Some(e);
        }
        let mut tick = tokio::time::interval(self.sweep);
        tick.tick().await;
        loop {
            let step = tokio::select! {
                biased;
                job = jobs.recv() => match job {
                    None => return None,
                    Some(job) => self.send(modem, job).await,
                },
                urc = modem.urc(Duration::from_secs(3600)) => match urc {
                    Ok(Some(urc)) => self.unsolicited(modem, urc).await,
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                },
                _ = tick.tick() => self.periodic(modem).await,
            };
            if let Err(e) = step {
                if e.is_link() || set_up_again(&e) {
                    return Some(e);
                }
                tracing::warn!(backend = %self.name, error = %e, "modem command failed");
            }
            // URCs read while a command ran.
            for urc in modem.link.take_urcs() {
                if let Err(e) = self.unsolicited(modem, urc).await {
                    if e.is_link() {
                        return Some(e);
                    }
                }
            }
        }
    }

    /// The sweep, the signal, and long messages given up on.
    async fn periodic<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        modem: &mut Modem<P>,
    ) -> Result<(), AtError> {
        self.sweep(modem).await?;
        let m = metrics();
        let signal = modem.signal().await?;
        m.modem_signal
            .with_label_values(&[&self.name])
            .set(i64::from(signal));
        let registration = modem.registration().await?;
        m.modem_registration
            .with_label_values(&[&self.name])
            .set(i64::from(registration));
        for whole in self.inbox.expired(self.multipart_timeout) {
            tracing::warn!(backend = %self.name, from = %whole.originator, came = ?whole.incomplete, "parts of a long message never came: delivered incomplete");
            self.store(modem, whole).await?;
        }
        if !matches!(registration, 1 | 5) {
            // Not ready until the init finds it registered again.
            return Err(AtError::Protocol {
                command: LOST_NETWORK.into(),
                message: format!(
                    "the network was lost ({registration}: {})",
                    crate::modem::device::registration(registration)
                ),
            });
        }
        Ok(())
    }

    /// Every stored message and report (`AT+CMGL=4`): at start-up, and
    /// regularly (a modem whose storage was full stored later ones without
    /// a `+CMTI`).
    async fn sweep<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        modem: &mut Modem<P>,
    ) -> Result<(), AtError> {
        let stored = modem.list().await?;
        if !stored.is_empty() {
            tracing::info!(backend = %self.name, messages = stored.len(), "stored messages found");
        }
        for (index, pdu) in stored {
            if !self.inbox.holds(index) {
                self.stored(modem, index, &pdu).await?;
            }
        }
        Ok(())
    }

    async fn unsolicited<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        modem: &mut Modem<P>,
        urc: Urc,
    ) -> Result<(), AtError> {
        match urc {
            Urc::Stored { index, .. } | Urc::ReportStored { index, .. } => {
                match modem.read(index).await? {
                    Some(pdu) => self.stored(modem, index, &pdu).await,
                    None => {
                        tracing::info!(backend = %self.name, index, "notified of a message no longer stored");
                        Ok(())
                    }
                }
            }
            Urc::Message { pdu } => {
                self.stored(modem, ROUTED, &pdu).await?;
                modem.acknowledge().await
            }
            Urc::Report { pdu } => {
                if let Ok(Pdu::StatusReport(r)) = pdu::decode(&pdu) {
                    self.report(r).await;
                } else {
                    self.error("pdu");
                    tracing::error!(backend = %self.name, %pdu, "a routed status report that does not decode; dropped");
                }
                modem.acknowledge().await
            }
            Urc::Other(line) => {
                tracing::debug!(backend = %self.name, %line, "unsolicited");
                Ok(())
            }
        }
    }

    /// A PDU the modem stored at `index` (or routed): a message part, a
    /// status report, or something to drop.
    async fn stored<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        modem: &mut Modem<P>,
        index: u32,
        hex: &str,
    ) -> Result<(), AtError> {
        match pdu::decode(hex) {
            Ok(Pdu::Deliver(d)) => match self.inbox.take(index, hex, d) {
                Some(whole) => self.store(modem, whole).await,
                None => Ok(()),
            },
            Ok(Pdu::StatusReport(r)) => {
                self.report(r).await;
                delete(modem, &[index]).await
            }
            // A draft or a sent message in the storage: not ours to delete.
            Ok(Pdu::Submit(_)) => Ok(()),
            Err(e) => {
                // Never accepted, so not lost: logged whole, then deleted
                // so that it does not block the storage.
                self.error("pdu");
                tracing::error!(backend = %self.name, index, pdu = %hex, error = %e, "a stored PDU that does not decode; deleted");
                delete(modem, &[index]).await
            }
        }
    }

    /// Store `whole` on `sms.inbound` (waiting for the bus's ack), note it
    /// in the sent-log, then delete its parts from the modem. Known from
    /// before (a restart between the store and the delete): only deleted.
    async fn store<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        modem: &mut Modem<P>,
        whole: Whole,
    ) -> Result<(), AtError> {
        let id = crate::message::inbound_id(&self.name, &whole.external_id);
        let log = &self.parts.log;
        if let Seen::Recorded(_) = log.check(&id, -1) {
            tracing::info!(backend = %self.name, %id, "stored before a restart; deleted now");
            return delete(modem, &whole.indexes).await;
        }
        let accepted = self
            .parts
            .source
            .accept(Some(&whole.originator), Some(&whole.text), |m| {
                m.external_id = Some(whole.external_id.clone());
                m.fields
                    .insert("smsc_timestamp".into(), whole.timestamp.clone());
                if let Some((came, total)) = whole.incomplete {
                    m.fields.insert("incomplete".into(), "true".into());
                    m.fields.insert("parts".into(), format!("{came}/{total}"));
                }
                if whole.binary {
                    m.fields.insert("binary".into(), "true".into());
                }
            })
            .await;
        match accepted {
            Ok(_) => {
                let entry = Entry {
                    state: Sent::Sent,
                    provider_status: Some("received".into()),
                    ..Entry::sending(&whole.originator)
                };
                let note = log.record(&id, entry);
                let wait = Duration::from_secs(10);
                if let Err(e) = crate::backends::store(&self.parts.producer, note, wait).await {
                    // Stored; only a restart before the delete would store it again.
                    tracing::warn!(backend = %self.name, %id, error = %e, "cannot note the stored message in the sent-log");
                }
                delete(modem, &whole.indexes).await
            }
            Err(SourceError::Unavailable(e)) => {
                // Kept on the modem: the next sweep tries again.
                log.release(&id);
                self.error("store");
                tracing::warn!(backend = %self.name, error = %e, "cannot store an inbound message now; kept on the modem");
                Ok(())
            }
            Err(e) => {
                log.release(&id);
                self.error("pdu");
                tracing::error!(backend = %self.name, from = %whole.originator, text = %whole.text, error = %e, "an inbound message smsflow cannot take; deleted from the modem");
                delete(modem, &whole.indexes).await
            }
        }
    }

    /// A status report: the delivery event of the message it completes.
    async fn report(&mut self, r: StatusReport) {
        let Some(outcome) =
            self.outstanding
                .report(r.message_reference, &r.recipient, r.status_octet)
        else {
            tracing::debug!(backend = %self.name, mr = r.message_reference, recipient = %r.recipient, "status report that completes no message (pending, a part, or unknown)");
            return;
        };
        let status = match (outcome.status, outcome.octet) {
            (pdu::Status::Delivered, _) => DeliveryStatus::Delivered,
            // Validity period expired.
            (_, 0x46) => DeliveryStatus::Expired,
            _ => DeliveryStatus::Failed,
        };
        let report = Report {
            message_id: Some(outcome.message_id),
            provider_id: Some(outcome.provider_id),
            identity: Some(outcome.identity),
            status: Some(status),
            provider_status: format!("TP-ST 0x{:02X}", outcome.octet),
            error: (status != DeliveryStatus::Delivered)
                .then(|| format!("the network reported TP-Status 0x{:02X}", outcome.octet)),
        };
        if let Err(e) = self.parts.reports.report(report).await {
            self.error("store");
            tracing::error!(backend = %self.name, error = %e, "cannot store a delivery event");
        }
    }

    /// Hand a message over, part by part.
    async fn send<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        modem: &mut Modem<P>,
        job: Job,
    ) -> Result<(), AtError> {
        let msg = &job.msg;
        let options = pdu::Options {
            status_report: self.reports,
            // The same reference on every try: a phone joins repeated parts.
            concat_ref: concat_ref(&msg.id),
        };
        let parts = match pdu::submit(&msg.connection.identity, &msg.text, options) {
            Ok(parts) => parts,
            Err(e) => {
                let _ = job.reply.send(Attempt::Rejected {
                    error: e.to_string(),
                    status: "invalid".into(),
                });
                return Ok(());
            }
        };
        let mut mrs = Vec::with_capacity(parts.len());
        for part in &parts {
            match modem
                .send(part.tpdu_len, &part.hex, self.send_timeout)
                .await
            {
                Ok(mr) => mrs.push(mr),
                Err(e) => {
                    let attempt = self.failed_send(&e, mrs.len(), parts.len());
                    let _ = job.reply.send(attempt);
                    return if e.is_link() || set_up_again(&e) {
                        Err(e)
                    } else {
                        Ok(())
                    };
                }
            }
        }
        if self.reports {
            self.outstanding
                .sent(&msg.id, &msg.connection.identity, &mrs);
        }
        let _ = job.reply.send(Attempt::Accepted {
            provider_id: Some(provider_id(&mrs)),
            status: "sent".into(),
        });
        Ok(())
    }

    /// What a failed `AT+CMGS` comes to for the message.
    fn failed_send(&self, e: &AtError, sent: usize, parts: usize) -> Attempt {
        let mut error = e.to_string();
        if sent > 0 {
            error = format!("{error} (after {sent} of {parts} parts)");
        }
        match e {
            AtError::Cms { code, .. } => {
                self.error("cms");
                match cms_verdict(*code) {
                    Verdict::Refused => Attempt::Rejected {
                        error,
                        status: format!("CMS {code}"),
                    },
                    Verdict::Transient | Verdict::Modem => Attempt::Retry { error, after: None },
                }
            }
            AtError::Timeout { .. } => {
                self.error("timeout");
                Attempt::Retry { error, after: None }
            }
            _ => Attempt::Retry { error, after: None },
        }
    }
}

/// An answer that says the modem is no longer as it was set up: it did
/// not answer (hung, or rebooting), it asks for its SIM's PIN again (it
/// was reset), or it lost the network. The port is opened again and the
/// init run again (which waits, not ready, until it is registered).
fn set_up_again(e: &AtError) -> bool {
    match e {
        AtError::Timeout { .. } => true,
        AtError::Protocol { command, .. } => command == LOST_NETWORK,
        AtError::Cms { code, .. } => cms_verdict(*code) == Verdict::Modem,
        AtError::Cme { code, .. } => (10..=18).contains(code),
        _ => false,
    }
}

/// A message's concatenation reference, from its id.
fn concat_ref(id: &str) -> u8 {
    id.bytes()
        .fold(0u8, |h, b| h.wrapping_mul(31).wrapping_add(b))
}

/// Delete the parts at `indexes` (a routed message has none).
async fn delete<P: AsyncRead + AsyncWrite + Unpin>(
    modem: &mut Modem<P>,
    indexes: &[u32],
) -> Result<(), AtError> {
    for &index in indexes.iter().filter(|i| **i != ROUTED) {
        modem.delete(index).await?;
    }
    Ok(())
}
