//! Messages two replicas both claimed (a partition owned twice for a
//! while): the one whose `sending` the sent-log holds first sends; the
//! other finishes its copy with that replica's outcome, or reports it
//! unknown when none comes in time.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{Delivery, Job, Lane};
use crate::backends::sent::{Entry, State};
use crate::config::Sending;

/// How long a replica that claimed a message first may take to record its
/// outcome: every try with its timeout and back-off, and 10 s to write.
fn outcome_grace(s: &Sending) -> Duration {
    let mut total = s.timeout * s.attempts.max(1) + Duration::from_secs(10);
    let mut wait = s.backoff;
    for _ in 1..s.attempts {
        total += wait.min(s.max_backoff);
        wait = wait.saturating_mul(2);
    }
    total
}

impl Delivery {
    /// The jobs whose claim the sent-log holds first; the others were
    /// claimed first by another replica, which sends them: finished here
    /// with nothing sent. A claim not read back in time leaves its job
    /// unfinished (the stage stops; a restart reads the claim and reports
    /// the outcome unknown).
    pub(super) async fn first_claims(self: &Arc<Self>, jobs: Vec<Job>, lane: Lane) -> Vec<Job> {
        let log = self.log(lane);
        let mut mine = Vec::with_capacity(jobs.len());
        let mut theirs = Vec::new();
        for job in jobs {
            match log.first_claim(&job.msg.id).await {
                Ok(true) => mine.push(job),
                Ok(false) => {
                    tracing::warn!(backend = %self.name, id = %job.msg.id, "claimed first by another replica: not sent here");
                    log.lost_claim(&job.msg.id, &job.msg.connection.identity);
                    theirs.push(job);
                }
                Err(e) => {
                    tracing::error!(backend = %self.name, id = %job.msg.id, error = %e, "cannot tell whether this replica claimed the message first: not sent");
                    job.later.abandon(&e.to_string(), Vec::new()).await;
                }
            }
        }
        if !theirs.is_empty() {
            tokio::spawn(self.clone().await_theirs(theirs, lane));
        }
        mine
    }

    /// Finish `jobs`, claimed first by other replicas, with those replicas'
    /// outcomes as the log records them. A replica that records none within
    /// [`outcome_grace`] may have died between its claim and its request:
    /// the message is reported failed "outcome unknown", as a restart
    /// reports its own claims. One that left it to `retry` (it stopped
    /// during a back-off) leaves it to this replica, which sends it.
    ///
    /// Boxed: it sends through [`Delivery::deliver`], which spawns it.
    fn await_theirs(self: Arc<Self>, jobs: Vec<Job>, lane: Lane) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.finish_theirs(jobs, lane).await })
    }

    async fn finish_theirs(self: Arc<Self>, jobs: Vec<Job>, lane: Lane) {
        let log = self.log(lane);
        let deadline = tokio::time::Instant::now() + outcome_grace(&self.settings);
        let mut retry = Vec::new();
        for job in jobs {
            let msg = &job.msg;
            let outcome = tokio::select! {
                biased;
                outcome = log.their_outcome(&msg.id, deadline) => outcome,
                _ = job.later.stopping() => {
                    // Read again after a restart: known then as their claim.
                    job.later.abandon("shutdown while another replica's outcome was awaited", Vec::new()).await;
                    continue;
                }
            };
            let (entry, records) = match outcome {
                Some(e) if e.state == State::Retry => {
                    log.retake(&msg.id, job.later.partition());
                    retry.push(job);
                    continue;
                }
                // Theirs: say so again (their event may not be stored).
                Some(e) => (e, Vec::new()),
                None => {
                    tracing::warn!(backend = %self.name, id = %msg.id, "the replica that claimed it first recorded no outcome: reported unknown");
                    let entry = Entry::sending(&msg.connection.identity).unknown(
                        "the replica that claimed it first recorded none in time (it may have stopped while sending it)",
                    );
                    (entry.clone(), vec![log.record(&msg.id, entry)])
                }
            };
            self.finish_with_event(job, &entry, records).await;
        }
        if !retry.is_empty() {
            self.deliver(retry, lane).await;
        }
    }
}
