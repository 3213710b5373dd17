//! The sent-log's states, claims, hand-overs and memory bound.

use super::*;

#[test]
fn states_follow_the_records() {
    let log = SentLog::new("t", Arc::from("t.sent"), 100);
    assert_eq!(log.check("m1", 0), Seen::New);
    assert_eq!(log.check("m1", 0), Seen::InFlight);
    log.record("m1", Entry::sending("+1"));
    assert_eq!(log.check("m1", 0), Seen::InFlight);
    let sent = Entry {
        state: State::Sent,
        provider_id: Some("SM1".into()),
        ..Entry::sending("+1")
    };
    let record = log.record("m1", sent.clone());
    // Stamped with the writer.
    let sent = Entry {
        by: Some(log.token.to_string()),
        ..sent
    };
    assert_eq!(log.check("m1", 0), Seen::Recorded(sent.clone()));
    let found = log
        .by_provider_id("SM1")
        .map(|(id, e)| (id, e.map(|e| e.identity)));
    assert_eq!(found, Some(("m1".into(), Some("+1".into()))));

    // A restart reads the topic back: a bare `sending` is now unknown.
    let after = SentLog::new("t", Arc::from("t.sent"), 100);
    after.followed(b"m1", &record.payload);
    let sending = log.record("m2", Entry::sending("+2"));
    after.followed(b"m2", &sending.payload);
    after.followed(b"m3", b"1700000000000");
    assert_eq!(after.check("m1", 0), Seen::Recorded(sent));
    assert!(matches!(
        after.check("m2", 0),
        Seen::Recorded(Entry {
            state: State::Sending,
            ..
        })
    ));
    assert!(matches!(
        after.check("m3", 0),
        Seen::Recorded(Entry {
            state: State::Sent,
            ..
        })
    ));
    assert_eq!(after.check("m4", 0), Seen::New);
    after.release("m4");
    assert_eq!(after.check("m4", 0), Seen::New);

    // Left to retry (shutdown during back-off): sent again, once.
    let retry = log.record(
        "m5",
        Entry {
            state: State::Retry,
            ..Entry::sending("+5")
        },
    );
    assert_eq!(log.check("m5", 0), Seen::New);
    assert_eq!(log.check("m5", 0), Seen::InFlight);
    after.followed(b"m5", &retry.payload);
    assert_eq!(after.check("m5", 0), Seen::New);
    assert_eq!(after.check("m5", 0), Seen::InFlight);
}

#[test]
fn a_revoked_partition_hands_over_what_was_not_claimed() {
    let log = SentLog::new("t", Arc::from("t.sent"), 100);
    assert_eq!(log.check("a", 1), Seen::New);
    assert_eq!(log.check("b", 1), Seen::New);
    assert_eq!(log.check("c", 2), Seen::New);
    assert!(log.claim("a"));
    log.settle(1);
    log.revoke(&[("t".into(), 1)]);
    // Claimed before the revocation: this process finishes it.
    assert_eq!(log.check("a", 1), Seen::InFlight);
    // Not claimed: given up here, and the task holding it may not start it.
    assert!(!log.claim("b"));
    assert_eq!(log.check("b", 1), Seen::New);
    assert!(log.claim("b"), "handed out again under the new epoch");
    log.settle(1);
    // Another partition is untouched.
    assert!(log.claim("c"));
    log.settle(1);
}

#[test]
fn another_replicas_records_are_followed_but_never_override_this_ones() {
    let log = SentLog::new("t", Arc::from("t.sent"), 100);
    let sent = Entry {
        state: State::Sent,
        ..Entry::sending("+1")
    };
    let sent_json = serde_json::to_vec(&sent).unwrap();
    let sending_json = serde_json::to_vec(&Entry::sending("+1")).unwrap();
    // Another replica sent "x": this one does not send it again.
    log.followed(b"x", &sending_json);
    log.followed(b"x", &sent_json);
    assert_eq!(log.check("x", 0), Seen::Recorded(sent.clone()));
    // Its own `sending`, read back after its outcome, is stale.
    log.followed(b"x", &sending_json);
    assert_eq!(log.check("x", 0), Seen::Recorded(sent));
    // In flight here: the records are this process's own, not news.
    assert_eq!(log.check("y", 0), Seen::New);
    log.followed(b"y", &sending_json);
    assert_eq!(log.check("y", 0), Seen::InFlight);
}

#[test]
fn memory_keeps_the_newest_ids() {
    let log = SentLog::new("mem", Arc::from("t.sent"), 3);
    for id in ["1", "2", "3", "4"] {
        log.record(
            id,
            Entry {
                state: State::Sent,
                ..Entry::sending("+1")
            },
        );
    }
    assert_eq!(log.check("1", 0), Seen::New, "the oldest went first");
    assert!(matches!(log.check("4", 0), Seen::Recorded(_)));
    let gauge = metrics().sent_log_entries.with_label_values(&["mem"]).get();
    assert_eq!(gauge, 3);
}

#[test]
fn of_two_claims_the_first_the_log_holds_wins() {
    let a = SentLog::new("t", Arc::from("t.sent"), 100);
    let b = SentLog::new("t", Arc::from("t.sent"), 100);
    // Both replicas hold "x" in flight (a partition owned twice).
    assert_eq!(a.check("x", 0), Seen::New);
    assert_eq!(b.check("x", 0), Seen::New);
    let from_a = a.record("x", Entry::sending("+1"));
    let from_b = b.record("x", Entry::sending("+1"));
    // The log holds a's claim first; each replica reads both, in order.
    for log in [&a, &b] {
        log.followed(b"x", &from_a.payload);
        log.followed(b"x", &from_b.payload);
    }
    let first = |log: &SentLog| match log.inner().ids.get("x") {
        Some(Slot::InFlight { first, .. }) => first.clone(),
        _ => None,
    };
    assert_eq!(first(&a).as_deref(), Some(&*a.token));
    assert_eq!(
        first(&b).as_deref(),
        Some(&*a.token),
        "b sees a's claim first"
    );
    // b gives it up: a later copy is known as sent by another.
    b.lost_claim("x", "+1");
    assert!(matches!(
        b.check("x", 0),
        Seen::Recorded(Entry {
            state: State::Sending,
            ..
        })
    ));
}

#[test]
fn a_claim_read_while_in_flight_is_kept_when_the_partition_goes() {
    let a = SentLog::new("t", Arc::from("t.sent"), 100);
    let b = SentLog::new("t", Arc::from("t.sent"), 100);
    assert_eq!(b.check("x", 2), Seen::New);
    // Another replica's claim arrives while "x" waits here unclaimed.
    assert_eq!(a.check("x", 2), Seen::New);
    let from_a = a.record("x", Entry::sending("+1"));
    b.followed(b"x", &from_a.payload);
    b.revoke(&[("t".into(), 2)]);
    // Given the partition back, a later copy is not sent here.
    assert!(matches!(
        b.check("x", 2),
        Seen::Recorded(Entry {
            state: State::Sending,
            ..
        })
    ));
}

#[test]
fn a_claim_read_before_this_one_is_claimed_still_wins() {
    let a = SentLog::new("t", Arc::from("t.sent"), 100);
    let b = SentLog::new("t", Arc::from("t.sent"), 100);
    assert_eq!(a.check("x", 0), Seen::New);
    assert_eq!(b.check("x", 0), Seen::New);
    assert!(a.claim("x"));
    let from_a = a.record("x", Entry::sending("+1"));
    // b reads a's claim while its own job still waits to claim.
    b.followed(b"x", &from_a.payload);
    assert!(b.claim("x"), "b may still write its claim");
    let from_b = b.record("x", Entry::sending("+1"));
    b.followed(b"x", &from_b.payload);
    let first = match b.inner().ids.get("x") {
        Some(Slot::InFlight { first, .. }) => first.clone(),
        _ => None,
    };
    assert_eq!(first.as_deref(), Some(&*a.token), "a's claim came first");
}

/// The replica that claimed first, its outcome, and this replica, which
/// lost the claim: what this replica knows of the id once it gives it up.
fn lost_to(outcome: State, read_before_giving_up: bool) -> Slot {
    let a = SentLog::new("t", Arc::from("t.sent"), 100);
    let b = SentLog::new("t", Arc::from("t.sent"), 100);
    assert_eq!(a.check("x", 0), Seen::New);
    assert_eq!(b.check("x", 0), Seen::New);
    let from_a = a.record("x", Entry::sending("+1"));
    assert!(b.claim("x"));
    let from_b = b.record("x", Entry::sending("+1"));
    b.followed(b"x", &from_a.payload);
    b.followed(b"x", &from_b.payload);
    let outcome = a.record(
        "x",
        Entry {
            state: outcome,
            provider_id: Some("theirs-1".into()),
            ..Entry::sending("+1")
        },
    );
    if read_before_giving_up {
        b.followed(b"x", &outcome.payload);
        b.lost_claim("x", "+1");
    } else {
        b.lost_claim("x", "+1");
        b.followed(b"x", &outcome.payload);
    }
    let slot = b.inner().ids.get("x").cloned().unwrap();
    slot
}

/// Before: a replica that lost the claim finished the message at once,
/// trusting the first claimant to send it; that replica's outcome was not
/// followed. After: it is known here, read before or after giving up.
#[test]
fn the_first_claimants_outcome_is_followed_by_the_replica_that_lost() {
    for before in [true, false] {
        for state in [State::Sent, State::Failed, State::Retry] {
            match lost_to(state, before) {
                Slot::Known(e) => {
                    assert_eq!(
                        (e.state, e.provider_id.as_deref()),
                        (state, Some("theirs-1"))
                    )
                }
                other => panic!("{state:?}, read before: {before}: {other:?}"),
            }
        }
    }
}

/// A claimant that left the message to `retry` gives it back: taken again
/// here, it is this replica's to claim and send.
#[test]
fn a_message_left_to_retry_by_the_first_claimant_is_taken_again() {
    let b = SentLog::new("t", Arc::from("t.sent"), 100);
    b.inner().put("x", lost_to(State::Retry, false));
    b.retake("x", 0);
    assert!(b.claim("x"), "in flight again, under the current epoch");
    let mine = b.record("x", Entry::sending("+1"));
    b.followed(b"x", &mine.payload);
    let first = match b.inner().ids.get("x") {
        Some(Slot::InFlight { first, .. }) => first.clone(),
        _ => None,
    };
    assert_eq!(
        first.as_deref(),
        Some(&*b.token),
        "this claim is now the first"
    );
}

/// An outcome of another replica for an id this one holds but has not
/// claimed yet (its claim was never read here) is kept for when it gives up.
#[test]
fn an_outcome_read_without_its_claim_is_kept() {
    let a = SentLog::new("t", Arc::from("t.sent"), 100);
    let b = SentLog::new("t", Arc::from("t.sent"), 100);
    assert_eq!(b.check("x", 0), Seen::New);
    let sent = a.record(
        "x",
        Entry {
            state: State::Sent,
            ..Entry::sending("+1")
        },
    );
    b.followed(b"x", &sent.payload);
    b.lost_claim("x", "+1");
    assert!(matches!(
        b.check("x", 0),
        Seen::Recorded(Entry {
            state: State::Sent,
            ..
        })
    ));
}
