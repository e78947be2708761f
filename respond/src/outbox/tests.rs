use std::io::Write;

use authtrail_model::{Alert, Severity};

use super::requests::{self, Operation, Outcome, Request};
use super::*;

pub(crate) fn alert(id: &str) -> Alert {
    Alert {
        id: id.into(),
        detector: "token_replay".into(),
        severity: Severity::High,
        time: 1_795_456_800_000_000,
        principal: "svc:a".into(),
        token_id: Some(format!("jti-{id}")),
        source_ip: None,
        target_service: None,
        key: id.into(),
        summary: "replayed".into(),
        evidence_ids: vec!["e-1".into()],
        attack_technique: "T1550.001".into(),
        suppressed_count: 0,
    }
}

fn key(id: &str) -> Key {
    (id.into(), "idp".into())
}

#[test]
fn state_survives_reopening_and_duplicates_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
        assert!(outbox.insert("idp", &alert("a1")).unwrap());
        assert!(outbox.insert("idp", &alert("a2")).unwrap());
        assert!(outbox.insert("siem", &alert("a1")).unwrap());
        assert!(!outbox.insert("idp", &alert("a1")).unwrap());
        outbox
            .transition(&key("a1"), State::Delivered, 1, None, false, false)
            .unwrap();
        outbox
            .transition(
                &key("a2"),
                State::Dead,
                3,
                Some("HTTP 404".into()),
                false,
                false,
            )
            .unwrap();
    }
    let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
    assert!(
        !outbox.insert("idp", &alert("a1")).unwrap(),
        "delivered is remembered"
    );
    let a1 = outbox.get(&key("a1")).unwrap();
    assert_eq!(
        (a1.state, a1.attempts, a1.alert.is_none()),
        (State::Delivered, 1, true)
    );
    let a2 = outbox.get(&key("a2")).unwrap();
    assert_eq!(
        (a2.state, a2.last_error.as_deref()),
        (State::Dead, Some("HTTP 404"))
    );
    assert_eq!(
        outbox.get(&("a1".into(), "siem".into())).unwrap().state,
        State::Pending
    );
}

#[test]
fn a_torn_last_line_is_dropped_and_appends_continue_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
        outbox.insert("idp", &alert("a1")).unwrap();
    }
    let log = dir.path().join(LOG);
    let whole = std::fs::read(&log).unwrap();
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&whole[..whole.len() / 2]).unwrap();
    drop(file);
    assert_eq!(Outbox::read_entries(dir.path()).unwrap().len(), 1);
    {
        let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
        outbox.insert("idp", &alert("a2")).unwrap();
    }
    let outbox = Outbox::open(dir.path()).unwrap().unwrap();
    assert_eq!(outbox.entries().count(), 2);
}

#[test]
fn a_damaged_line_in_the_middle_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
        outbox.insert("idp", &alert("a1")).unwrap();
        outbox.insert("idp", &alert("a2")).unwrap();
    }
    let log = dir.path().join(LOG);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[40] ^= 0x20;
    std::fs::write(&log, bytes).unwrap();
    let error = Outbox::open(dir.path()).err().unwrap();
    assert!(error.to_string().contains("line 1"), "{error}");
}

#[test]
fn only_one_writer_holds_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let first = Outbox::open(dir.path()).unwrap();
    assert!(first.is_some());
    assert!(Outbox::open(dir.path()).unwrap().is_none());
    drop(first);
    assert!(Outbox::open(dir.path()).unwrap().is_some());
}

#[test]
fn compaction_keeps_every_live_entry_and_forgets_old_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
    for i in 0..50 {
        let id = format!("a{i}");
        outbox.insert("idp", &alert(&id)).unwrap();
        for attempt in 1..5 {
            let error = Some(format!("HTTP 503 #{attempt}"));
            outbox
                .transition(&key(&id), State::Retrying, attempt, error, false, false)
                .unwrap();
        }
    }
    outbox
        .transition(&key("a0"), State::Delivered, 5, None, false, false)
        .unwrap();
    let before = outbox.appended();
    assert!(outbox.maybe_compact(0, i64::MAX).unwrap());
    assert!(outbox.appended() < before / 2);
    outbox.insert("idp", &alert("late")).unwrap();
    drop(outbox);
    let outbox = Outbox::open(dir.path()).unwrap().unwrap();
    assert_eq!(outbox.entries().count(), 51);
    let a7 = outbox.get(&key("a7")).unwrap();
    assert_eq!((a7.state, a7.attempts), (State::Retrying, 4));
    assert!(a7.alert.is_some());
    drop(outbox);
    let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
    for attempt in 5..10 {
        outbox
            .transition(&key("a7"), State::Retrying, attempt, None, false, false)
            .unwrap();
    }
    assert!(outbox.maybe_compact(0, 0).unwrap());
    assert!(
        outbox.get(&key("a0")).is_none(),
        "delivered past keep_delivered"
    );
}

#[test]
fn retry_applies_directly_without_a_running_writer_and_queues_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
    outbox.insert("idp", &alert("a1")).unwrap();
    outbox
        .transition(
            &key("a1"),
            State::Dead,
            1,
            Some("HTTP 404".into()),
            false,
            false,
        )
        .unwrap();
    drop(outbox);
    let retry = Request {
        operation: Operation::Retry,
        alert_id: Some("a1".into()),
    };
    let wait = std::time::Duration::from_millis(100);
    assert_eq!(
        requests::submit(dir.path(), &retry, wait).unwrap(),
        Outcome::Applied(1)
    );
    let entries = Outbox::read_entries(dir.path()).unwrap();
    assert_eq!(entries[0].state, State::Pending);

    let mut outbox = Outbox::open(dir.path()).unwrap().unwrap();
    outbox
        .transition(&key("a1"), State::Held, 0, None, false, false)
        .unwrap();
    let release = Request {
        operation: Operation::Release,
        alert_id: None,
    };
    let outcome = requests::submit(dir.path(), &release, wait).unwrap();
    assert!(matches!(outcome, Outcome::Queued(_)), "{outcome:?}");
    assert_eq!(
        requests::apply_waiting(&mut outbox).unwrap(),
        vec![key("a1")]
    );
    let entry = outbox.get(&key("a1")).unwrap();
    assert_eq!((entry.state, entry.released), (State::Pending, true));
    assert!(requests::waiting(dir.path()).unwrap().is_empty());
}

#[test]
fn retry_of_an_unknown_id_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let retry = Request {
        operation: Operation::Retry,
        alert_id: Some("nope".into()),
    };
    let error = requests::submit(dir.path(), &retry, Default::default()).unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
}
