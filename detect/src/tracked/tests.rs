//! The token and principal tables: each detector's part of an entry expires, is
//! counted, checkpointed and dropped on its own, as a table of its own would be.

use authtrail_model::Kind;

use super::TokenTable;
use crate::detectors::testkit::{authn, authz, event, feed, only, table, text};
use crate::{DetectConfig, Detectors};

/// A bit of everything the token detectors keep: an issue, client presentations from
/// three addresses, a revoke and a use after it.
fn tokens_in_use() -> Vec<authtrail_model::Event<'static>> {
    let mut issue = event("iss", 0.0, Kind::TokenIssue, "user:bob");
    issue.token_id = text("jti-7");
    let mut events = vec![issue];
    for (i, ip) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        let mut present = authz(&format!("p{i}"), 1.0 + i as f64, "user:bob", "web", true);
        present.token_id = text("jti-7");
        present.source_ip = Some(ip.parse().unwrap());
        events.push(present);
    }
    let mut revoke = event("rev", 10.0, Kind::TokenRevoke, "user:bob");
    revoke.token_id = text("jti-7");
    events.push(revoke);
    events
}

#[test]
fn parts_of_a_token_expire_and_are_counted_on_their_own() {
    let mut issue = event("i", 0.0, Kind::TokenIssue, "user:bob");
    issue.token_id = text("jti-1");
    let mut present = authz("p", 1.0, "user:bob", "web", true);
    present.token_id = text("jti-1");
    present.source_ip = Some("203.0.113.1".parse().unwrap());
    let mut revoke = event("r", 2.0, Kind::TokenRevoke, "user:bob");
    revoke.token_id = text("jti-1");
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    feed(&mut detectors, &[issue, present, revoke]);
    let live = |d: &Detectors, name| table(d, name).live_keys;
    assert_eq!(live(&detectors, "tokens"), 1);
    assert_eq!(live(&detectors, "token_replay"), 1);
    assert_eq!(live(&detectors, "revocations"), 1);
    // 20 minutes on, the sightings (10 min window) are gone, the rest stays.
    let tick = |seconds| authn("x", seconds, "user:other", true, "password");
    feed(&mut detectors, &[tick(1_200.0)]);
    assert_eq!(live(&detectors, "token_replay"), 0);
    assert_eq!(table(&detectors, "token_replay").expired, 1);
    assert_eq!(live(&detectors, "tokens"), 1);
    assert_eq!(live(&detectors, "revocations"), 1);
    // Past the token's TTL (an hour after its last use) only the revoke (24 h) is left,
    // and it still stops the token.
    feed(&mut detectors, &[tick(4_000.0)]);
    assert_eq!(live(&detectors, "tokens"), 0);
    assert_eq!(table(&detectors, "tokens").expired, 1);
    assert_eq!(live(&detectors, "revocations"), 1);
    let mut reuse = authz("again", 4_001.0, "user:bob", "web", true);
    reuse.token_id = text("jti-1");
    // Both readers of the revocations see it: the caller's use, and the service's allow.
    let alerts = feed(&mut detectors, &[reuse]);
    let raised: Vec<_> = alerts
        .iter()
        .map(|a| (a.detector.as_str(), &a.evidence_ids))
        .collect();
    let evidence = vec!["r".to_owned(), "again".to_owned()];
    assert_eq!(
        raised,
        [
            ("revoked_token_use", &evidence),
            ("validation_gap", &evidence)
        ]
    );
    // A day later nothing is left of the token.
    feed(&mut detectors, &[tick(100_000.0)]);
    assert_eq!(live(&detectors, "revocations"), 0);
    assert_eq!(detectors.token_table().unwrap().counts().facts.live, 0);
}

#[test]
fn restore_without_token_replay_drops_its_part_of_the_token_table() {
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    feed(&mut detectors, &tokens_in_use());
    assert!(table(&detectors, "token_replay").live_keys > 0);
    let mut config = DetectConfig::default();
    config.token_replay.enabled = false;
    let restored = Detectors::restore(&config, &detectors.checkpoint()).unwrap();
    let counts = *restored.token_table().unwrap().counts();
    assert_eq!(counts.replay.live, 0);
    assert_eq!(
        counts.facts.live,
        table(&detectors, "tokens").live_keys,
        "the token facts stay"
    );
    assert!(table(&restored, "revocations").live_keys > 0);
}

#[test]
fn parts_of_a_principal_expire_and_are_counted_on_their_own() {
    let events = [
        // brute_force and mfa_fatigue keep the failure 10 min.
        authn("f", 0.0, "user:alice", false, "mfa_push"),
        // authz_probing keeps the deny 5 min, service_fan_out the reach 10 min.
        authz("d", 1.0, "user:alice", "web", false),
    ];
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    feed(&mut detectors, &events);
    let live = |d: &Detectors, name| table(d, name).live_keys;
    for name in [
        "brute_force",
        "mfa_fatigue",
        "authz_probing",
        "service_fan_out",
    ] {
        assert_eq!(live(&detectors, name), 1, "{name}");
    }
    let tick = |seconds| authn("x", seconds, "user:other", true, "password");
    feed(&mut detectors, &[tick(400.0)]);
    assert_eq!(live(&detectors, "authz_probing"), 0);
    assert_eq!(table(&detectors, "authz_probing").expired, 1);
    for name in ["brute_force", "mfa_fatigue", "service_fan_out"] {
        assert_eq!(live(&detectors, name), 1, "{name}");
    }
    feed(&mut detectors, &[tick(700.0)]);
    for name in ["brute_force", "mfa_fatigue", "service_fan_out"] {
        assert_eq!(table(&detectors, name).live_keys, 0, "{name}");
        assert_eq!(table(&detectors, name).expired, 1, "{name}");
    }
    // The principal that only logged in successfully left nothing behind.
    assert_eq!(detectors.principal_table().unwrap().len(), 0);
}

#[test]
fn restore_without_brute_force_drops_its_part_of_the_principal_table() {
    let failures: Vec<_> = (0..3)
        .map(|i| authn(&format!("f{i}"), i as f64, "user:alice", false, "mfa_push"))
        .collect();
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    feed(&mut detectors, &failures);
    let mut config = DetectConfig::default();
    config.brute_force.enabled = false;
    let restored = Detectors::restore(&config, &detectors.checkpoint()).unwrap();
    let counts = *restored.principal_table().unwrap().counts();
    assert_eq!(counts.brute_force.live, 0);
    assert_eq!(table(&restored, "mfa_fatigue").live_keys, 1);
    // Enabled again, brute_force starts from nothing: seven more failures (ten in
    // all) are not a brute force.
    let mut again = Detectors::restore(&DetectConfig::default(), &restored.checkpoint()).unwrap();
    let more: Vec<_> = (3..10)
        .map(|i| authn(&format!("f{i}"), i as f64, "user:alice", false, "password"))
        .collect();
    let alerts = feed(&mut again, &more);
    assert!(
        alerts.iter().all(|a| a.detector != "brute_force"),
        "{alerts:?}"
    );
}

/// A token issued at `seconds` to its own principal, for the audience `audience`.
fn issue_for(n: usize, seconds: f64, audience: &[&str]) -> authtrail_model::Event<'static> {
    let mut issue = event(&format!("i{n}"), seconds, Kind::TokenIssue, "user:bob");
    issue.token_id = text(&format!("jti-{n}"));
    issue.token_audience = Some(audience.iter().map(|a| a.to_string().into()).collect());
    issue
}

#[test]
fn interned_audiences_survive_a_checkpoint_and_unused_ones_are_collected() {
    let mut detectors = Detectors::new(&only("audience_mismatch")).unwrap();
    // 100 tokens, 99 distinct audiences (two tokens share one).
    let mut issues: Vec<_> = (0..99)
        .map(|n| issue_for(n, 0.0, &[&format!("svc-{n}"), "web"]))
        .collect();
    issues.push(issue_for(99, 0.0, &["svc-0", "web"]));
    feed(&mut detectors, &issues);
    assert_eq!(detectors.token_table().unwrap().audiences(), 99);
    let mut restored =
        Detectors::restore(&only("audience_mismatch"), &detectors.checkpoint()).unwrap();
    assert_eq!(restored.token_table().unwrap().audiences(), 99);
    // Read back from the checkpoint: the shared audience covers svc-0, not svc-7.
    let present = |id: &str, seconds, target| {
        let mut event = authz(id, seconds, "user:bob", target, true);
        event.token_id = text("jti-99");
        event
    };
    assert!(feed(&mut restored, &[present("ok", 1.0, "svc-0")]).is_empty());
    let alerts = feed(&mut restored, &[present("bad", 2.0, "svc-7")]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].detector, "audience_mismatch");
    // Two hours on every token is gone, and so are the sets at the next sweep.
    let tick = |seconds| authn("x", seconds, "user:other", true, "password");
    feed(&mut restored, &[tick(7_200.0), tick(7_210.0)]);
    let tokens = restored.token_table().unwrap();
    assert_eq!(tokens.counts().facts.live, 0);
    assert_eq!(tokens.audiences(), 0);
}

#[test]
fn a_checkpoint_whose_token_names_an_unsaved_audience_is_refused() {
    let mut detectors = Detectors::new(&only("audience_mismatch")).unwrap();
    feed(&mut detectors, &[issue_for(1, 0.0, &["web"])]);
    let table = detectors.token_table().unwrap();
    let saved = postcard::to_allocvec(table).unwrap();
    let restored = postcard::from_bytes::<TokenTable>(&saved).unwrap();
    assert!(restored.check().is_ok());
    let corrupt = table.encoded_without_audiences();
    let restored = postcard::from_bytes::<TokenTable>(&corrupt).unwrap();
    let error = restored.check().unwrap_err().to_string();
    assert!(
        error.starts_with("checkpoint is corrupt: token audience ")
            && error.ends_with(" is not saved"),
        "{error}"
    );
    // The same encoding of a token issued with no audience is sound.
    let mut plain = Detectors::new(&only("audience_mismatch")).unwrap();
    feed(&mut plain, &[issue_for(1, 0.0, &[])]);
    let sound = plain.token_table().unwrap().encoded_without_audiences();
    let restored = postcard::from_bytes::<TokenTable>(&sound).unwrap();
    assert!(restored.check().is_ok());
}

#[test]
fn a_restore_names_the_unsaved_audience_of_a_corrupt_checkpoint() {
    let mut detectors = Detectors::new(&only("audience_mismatch")).unwrap();
    feed(&mut detectors, &[issue_for(1, 0.0, &["web"])]);
    let table = detectors.token_table().unwrap();
    let (sound, corrupt) = (
        postcard::to_allocvec(table).unwrap(),
        table.encoded_without_audiences(),
    );
    // The checkpoint with its token table swapped for the corrupt encoding.
    let checkpoint = detectors.checkpoint();
    let at = checkpoint
        .windows(sound.len())
        .position(|window| window == sound.as_slice())
        .expect("the token table is in the checkpoint");
    let mut damaged = checkpoint[..at].to_vec();
    damaged.extend_from_slice(&corrupt);
    damaged.extend_from_slice(&checkpoint[at + sound.len()..]);
    let Err(error) = Detectors::restore(&only("audience_mismatch"), &damaged) else {
        panic!("a checkpoint naming an unsaved audience restored");
    };
    let error = error.to_string();
    assert!(
        error.starts_with("checkpoint is corrupt: token audience "),
        "{error}"
    );
    assert!(Detectors::restore(&only("audience_mismatch"), &checkpoint).is_ok());
}

#[test]
fn an_entry_left_with_no_part_by_a_restore_goes_at_the_next_sweep() {
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    feed(
        &mut detectors,
        &[authn("f", 0.0, "user:alice", false, "password")],
    );
    assert_eq!(detectors.principal_table().unwrap().len(), 1);
    let mut config = DetectConfig::default();
    config.brute_force.enabled = false;
    config.mfa_fatigue.enabled = false;
    let mut restored = Detectors::restore(&config, &detectors.checkpoint()).unwrap();
    assert_eq!(restored.principal_table().unwrap().len(), 1);
    // Ten seconds on (past the 5 s sweep interval), with no part of it expiring yet.
    let tick = |seconds| authz("x", seconds, "svc:other", "web", true);
    feed(&mut restored, &[tick(10.0), tick(20.0)]);
    let principals = restored.principal_table().unwrap();
    assert_eq!(principals.len(), 1, "only svc:other's entry is left");
}
