//! The `Store` contract: what any implementation must do, as one suite that each runs unchanged
//! (`tests/store.rs` runs it against SQLite; a second database runs it too). Each check takes a
//! fresh, empty store from `fresh`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;

use chrono::{Duration, TimeZone, Utc};
use factorwatch::store::{Batch, ContextEvent, NewChange, Polled, Reject, SourceKind, Store};

fn t(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + s, 0).unwrap()
}

pub fn change(id: &str, user: &str, destinations: &[&str]) -> NewChange {
    let record = serde_json::json!({
        "id": id, "source": "system_log", "published": "2026-11-25T10:00:00.000Z",
        "event_type": "user.mfa.factor.activate", "legacy_event_type": null, "action": "enrolled",
        "outcome": "SUCCESS", "factor": { "type": "sms", "provider": "OKTA", "name": "SMS",
        "okta_authoritative": true, "phone_last4": null },
        "user": { "id": user, "login": format!("{user}@example.com"), "display_name": null },
        "actor": null, "initiator": "self", "client": { "ip": null, "user_agent": null,
        "browser": null, "os": null, "city": null, "state": null, "country": null },
        "reason": null, "message": null, "session_id": null
    });
    NewChange {
        event_id: id.into(),
        event_type: "user.mfa.factor.activate".into(),
        action: "enrolled".into(),
        published: Some(t(0)),
        user_id: Some(user.into()),
        record: record.to_string(),
        raw: format!("{{\"uuid\":\"{id}\"}}"),
        destinations: destinations.iter().map(|d| (*d).into()).collect(),
    }
}

fn seen(org: &str, user_id: &str, email: &str) -> factorwatch::store::SeenAddress {
    factorwatch::store::SeenAddress {
        org: org.into(),
        user_id: user_id.into(),
        email: email.into(),
    }
}

pub fn batch(changes: Vec<NewChange>, cursor: Option<&str>) -> Batch {
    Batch {
        source: SourceKind::SystemLog,
        events_seen: changes.len() as u64,
        newest_published: Some(t(0)),
        changes,
        rejects: vec![],
        cursor: cursor.map(str::to_owned),
        context: vec![],
        signals: Vec::new(),
    }
}

/// Every check of the contract, each on a fresh store.
pub async fn run_all<S: Store, F: Future<Output = S>>(mut fresh: impl FnMut() -> F) {
    a_batch_is_stored_whole_with_its_cursor(fresh().await).await;
    several_orgs_batches_are_stored_at_once_each_as_alone(fresh().await).await;
    each_change_is_stored_once_per_org_whatever_the_repeats(fresh().await).await;
    due_rows_come_oldest_first_and_record_each_outcome(fresh().await).await;
    dead_letters_are_listed_redriven_and_dropped(fresh().await).await;
    a_user_s_pending_rows_context_and_addresses_are_found(fresh().await).await;
    stats_count_what_is_stored_and_owed(fresh().await).await;
    cursors_reset(fresh().await).await;
    an_idle_poll_moves_only_the_last_poll(fresh().await).await;
    the_journal_is_kept_once_in_order_and_pruned_of_old_sign_ins_only(fresh().await).await;
    the_journal_tells_which_orgs_it_grew_for_since_a_look(fresh().await).await;
    findings_are_stored_once_with_their_outbox_rows_and_the_cursor(fresh().await).await;
    a_setting_is_kept_by_its_first_writer(fresh().await).await;
    a_report_is_stored_once_with_its_finding_and_steps(fresh().await).await;
    a_lease_is_held_by_one_replica_and_fences_the_one_that_lost_it(fresh().await).await;
    the_hourly_cap_counts_each_user_s_notices_within_the_hour(fresh().await).await;
    a_row_owed_later_falls_due_then(fresh().await).await;
}

pub async fn a_row_owed_later_falls_due_then<S: Store>(s: S) {
    let mut c = change("e0", "u1", &["siem:a"]);
    c.destinations.push(factorwatch::store::Owed {
        destination: "email".into(),
        after: std::time::Duration::from_secs(120),
    });
    s.commit("acme", &batch(vec![c], None), t(0)).await.unwrap();
    assert_eq!(s.due("siem:a", 10, t(0), true).await.unwrap().len(), 1);
    assert!(s.due("email", 10, t(119), true).await.unwrap().is_empty());
    assert!(!s.any_due(&["email".into()], t(119)).await.unwrap());
    let due = s.due("email", 10, t(120), true).await.unwrap();
    assert_eq!(due.len(), 1, "due when its wait is over");
    assert_eq!(due[0].received_at, t(0), "received when committed");
}

pub async fn the_hourly_cap_counts_each_user_s_notices_within_the_hour<S: Store>(s: S) {
    let hour = Duration::hours(1);
    assert!(s.count_notice("acme", "jane", 2, hour, t(0)).await.unwrap());
    assert!(
        s.count_notice("acme", "jane", 2, hour, t(10))
            .await
            .unwrap()
    );
    assert!(
        !s.count_notice("acme", "jane", 2, hour, t(20))
            .await
            .unwrap(),
        "cap reached"
    );
    assert!(
        !s.count_notice("acme", "jane", 2, hour, t(30))
            .await
            .unwrap(),
        "a refusal is not counted, and does not free a place"
    );
    assert!(
        s.count_notice("acme", "john", 2, hour, t(20))
            .await
            .unwrap(),
        "another user"
    );
    assert!(
        s.count_notice("globex", "jane", 2, hour, t(20))
            .await
            .unwrap(),
        "another org"
    );
    assert!(
        s.count_notice("acme", "jane", 2, hour, t(3601))
            .await
            .unwrap(),
        "the first aged out"
    );
    assert!(
        !s.count_notice("acme", "jane", 2, hour, t(3605))
            .await
            .unwrap()
    );
}

pub async fn a_lease_is_held_by_one_replica_and_fences_the_one_that_lost_it<S: Store>(s: S) {
    use factorwatch::store::{Fence, StoreError};
    let ttl = Duration::seconds(10);
    assert_eq!(s.heartbeat("r1", t(0), ttl).await.unwrap(), ["r1"]);
    assert_eq!(s.heartbeat("r2", t(1), ttl).await.unwrap(), ["r1", "r2"]);
    assert_eq!(
        s.heartbeat("r2", t(12), ttl).await.unwrap(),
        ["r2"],
        "r1 went quiet"
    );
    let a = s
        .acquire_lease("acme", "r1", t(0), ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.acquire_lease("acme", "r2", t(1), ttl).await.unwrap(),
        None,
        "held"
    );
    assert_eq!(
        s.acquire_lease("acme", "r1", t(5), ttl).await.unwrap(),
        Some(a),
        "renewed: same token"
    );
    let old = Fence {
        replica: "r1".into(),
        token: a,
    };
    s.commit_fenced(
        "acme",
        &batch(vec![change("e1", "u1", &["siem"])], Some("c1")),
        t(6),
        &old,
    )
    .await
    .unwrap();
    // r1 is paused past its lease (t(15)); r2 takes the org over.
    let b = s
        .acquire_lease("acme", "r2", t(16), ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(b > a);
    let late = s
        .commit_fenced(
            "acme",
            &batch(vec![change("late", "u1", &["siem"])], Some("c-late")),
            t(17),
            &old,
        )
        .await;
    assert!(matches!(late, Err(StoreError::Fenced { .. })), "{late:?}");
    assert!(
        s.change("acme", "late").await.unwrap().is_none(),
        "nothing stored"
    );
    assert_eq!(
        s.cursor("acme", SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("c1"),
        "the cursor did not move"
    );
    let new = Fence {
        replica: "r2".into(),
        token: b,
    };
    s.commit_fenced(
        "acme",
        &batch(vec![change("e2", "u1", &["siem"])], Some("c2")),
        t(17),
        &new,
    )
    .await
    .unwrap();
    // An expired lease fences its own owner too.
    assert!(matches!(
        s.commit_fenced("acme", &batch(vec![], Some("c3")), t(40), &new)
            .await,
        Err(StoreError::Fenced { .. })
    ));
    // Released: taken at once, with a greater token.
    s.acquire_lease("acme", "r2", t(41), ttl)
        .await
        .unwrap()
        .unwrap();
    s.release_lease("acme", "r2").await.unwrap();
    let c = s
        .acquire_lease("acme", "r1", t(42), ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(c > b);
    let (leases, replicas) = s.cluster().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].owner.as_str(), leases[0].token), ("r1", c));
    assert_eq!(replicas.len(), 2);
}

pub async fn a_report_is_stored_once_with_its_finding_and_steps<S: Store>(s: S) {
    use factorwatch::record::Item;
    use factorwatch::report::{Report, Step, StepState};
    use factorwatch::store::{ItemKind, NewFinding};
    s.commit(
        "acme",
        &batch(vec![change("e1", "u1", &["email"])], None),
        t(0),
    )
    .await
    .unwrap();
    let c = s.change("acme", "e1").await.unwrap().unwrap();
    assert_eq!(c.id.to_wire(), "e1");
    assert!(s.change("acme", "nope").await.unwrap().is_none());
    assert!(s.change("other", "e1").await.unwrap().is_none());
    let steps = [Step::ClearSessions, Step::Suspend];
    let f = factorwatch::report::finding("acme", &c, t(10), None, &steps);
    let report = Report {
        org: "acme".into(),
        change_id: "e1".into(),
        user_id: "u1".into(),
        finding_id: f.id.clone(),
        reported_at: t(10),
        steps: steps.iter().map(|s| (*s, StepState::Pending)).collect(),
    };
    let owed = NewFinding {
        finding: f.clone(),
        destinations: vec!["siem".into(), "okta:response".into()],
    };
    assert!(s.commit_report(&report, &owed, t(10)).await.unwrap());
    assert!(
        !s.commit_report(&report, &owed, t(11)).await.unwrap(),
        "once"
    );
    assert_eq!(
        s.report("acme", "e1", "u1").await.unwrap(),
        Some(report.clone())
    );
    assert!(s.report("acme", "e1", "u2").await.unwrap().is_none());
    let due = s.due("okta:response", 10, t(20), true).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(matches!(&due[0].item, Ok(Item::Finding(x)) if x.id == f.id));
    assert_eq!(s.due("siem", 10, t(20), true).await.unwrap().len(), 1);
    let mut done = report.steps.clone();
    done[0].1 = StepState::Done;
    done[1].1 = StepState::Failed("403".into());
    s.save_report_steps("acme", &f.id, &done).await.unwrap();
    assert_eq!(
        s.report_for_finding("acme", &f.id)
            .await
            .unwrap()
            .unwrap()
            .steps,
        done
    );
    assert_eq!(s.reports(10).await.unwrap().len(), 1);
    s.delivered(&[due[0].id], t(30)).await.unwrap();
    let findings = s.recent(ItemKind::Finding, 10).await.unwrap();
    assert_eq!(findings.len(), 1);
    assert!(
        findings[0]
            .deliveries
            .iter()
            .any(|d| d.destination == "okta:response" && d.state == "delivered")
    );
    let changes = s.recent(ItemKind::Change, 10).await.unwrap();
    assert_eq!(changes[0].id, "e1");
    assert_eq!(changes[0].deliveries.len(), 1);
    assert_eq!(
        s.delivered_since(t(25)).await.unwrap(),
        vec![("okta:response".to_owned(), 1)]
    );
    assert!(s.delivered_since(t(31)).await.unwrap().is_empty());
}

fn signal(uuid: &str, kind: &'static str, at: i64) -> factorwatch::store::NewSignal {
    factorwatch::store::NewSignal {
        uuid: uuid.into(),
        kind,
        published: t(at),
        body: format!("{{\"id\":\"{uuid}\"}}"),
    }
}

pub async fn the_journal_is_kept_once_in_order_and_pruned_of_old_sign_ins_only<S: Store>(s: S) {
    let mut b = batch(vec![], None);
    b.signals = vec![
        signal("s1", "sign_in", 0),
        signal("c1", "event", 1),
        signal("s2", "sign_in", 100),
    ];
    s.commit("acme", &b, t(1)).await.unwrap();
    // The same events again (a hook and the poller), and another org's.
    s.commit("acme", &b, t(2)).await.unwrap();
    s.commit("other", &b, t(2)).await.unwrap();
    let all = s.signals_after("acme", 0, 100).await.unwrap();
    let bodies: Vec<&str> = all.iter().map(|e| e.body.as_str()).collect();
    assert_eq!(
        bodies,
        [r#"{"id":"s1"}"#, r#"{"id":"c1"}"#, r#"{"id":"s2"}"#]
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let after_first = s.signals_after("acme", all[0].position, 100).await.unwrap();
    assert_eq!(after_first.len(), 2);
    let since = s.signals_since("acme", t(50), 0, 100).await.unwrap();
    assert_eq!(since.len(), 1);
    // Nothing is pruned beyond where the detections stand.
    assert_eq!(s.prune_signals("acme", t(1000)).await.unwrap(), 0);
    s.commit_findings("acme", &[], &[], all[2].position, t(3))
        .await
        .unwrap();
    assert_eq!(s.prune_signals("acme", t(50)).await.unwrap(), 1, "only s1");
    let left: Vec<String> = s
        .signals_after("acme", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body)
        .collect();
    assert_eq!(left, [r#"{"id":"c1"}"#, r#"{"id":"s2"}"#]);
    assert_eq!(s.signals_after("other", 0, 100).await.unwrap().len(), 3);
}

pub async fn the_journal_tells_which_orgs_it_grew_for_since_a_look<S: Store>(s: S) {
    let empty = s.journal_head().await.unwrap();
    assert!(s.journal_orgs(empty, empty).await.unwrap().is_empty());
    let mut b = batch(vec![], None);
    b.signals = vec![signal("s1", "sign_in", 0), signal("c1", "event", 1)];
    s.commit("acme", &b, t(1)).await.unwrap();
    let head = s.journal_head().await.unwrap();
    assert!(head > empty);
    assert_eq!(
        s.journal_head().await.unwrap(),
        head,
        "nothing new since the look"
    );
    assert!(s.journal_orgs(head, head).await.unwrap().is_empty());
    b.signals = vec![signal("s2", "sign_in", 2)];
    s.commit("other", &b, t(2)).await.unwrap();
    s.commit("third", &b, t(2)).await.unwrap();
    let next = s.journal_head().await.unwrap();
    assert!(next > head);
    let mut grown = s.journal_orgs(head, next).await.unwrap();
    grown.sort();
    assert_eq!(
        grown,
        ["other", "third"],
        "acme's entries were before the look"
    );
    assert_eq!(s.journal_orgs(empty, next).await.unwrap().len(), 3);
    assert!(
        s.journal_orgs(empty, head).await.unwrap() == ["acme"],
        "nothing past the look's end"
    );
}

fn finding(id_seed: &str, events: &[&str]) -> factorwatch::detect::Finding {
    use factorwatch::detect::finding::Draft;
    use factorwatch::detect::{RuleId, Severity};
    Draft {
        rule: RuleId::BypassBurst,
        severity: Severity::High,
        key: id_seed.into(),
        user: None,
        actor: None,
        events: events
            .iter()
            .enumerate()
            .map(|(i, e)| (t(i as i64), (*e).to_owned()))
            .collect(),
        summary: "three attempts".into(),
        details: Default::default(),
    }
    .finish()
}

pub async fn findings_are_stored_once_with_their_outbox_rows_and_the_cursor<S: Store>(s: S) {
    use factorwatch::store::NewFinding;
    let mut b = batch(vec![change("e1", "u1", &["siem:a"])], None);
    b.signals = vec![signal("e1", "event", 0), signal("e2", "event", 1)];
    s.commit("acme", &b, t(1)).await.unwrap();
    let journal = s.signals_after("acme", 0, 10).await.unwrap();
    assert_eq!(s.detection_cursor("acme").await.unwrap(), 0);
    assert!(s.detection_pending("acme", "e1").await.unwrap());
    assert!(!s.detection_pending("acme", "unknown").await.unwrap());

    let f = finding("u1", &["e1", "e2"]);
    let owed = vec![NewFinding {
        finding: f.clone(),
        destinations: vec!["siem:a".into(), "security:email".into()],
    }];
    assert_eq!(
        s.commit_findings("acme", &owed, &[], journal[1].position, t(2))
            .await
            .unwrap(),
        1
    );
    // Found again (a restart read the journal again): not stored or owed twice.
    assert_eq!(
        s.commit_findings("acme", &owed, &[], journal[1].position, t(3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.detection_cursor("acme").await.unwrap(),
        journal[1].position
    );
    assert!(!s.detection_pending("acme", "e1").await.unwrap());
    // A batch's events: the finding once for each event it names, none for the others.
    let mut by_event: Vec<(String, String)> = s
        .findings_by_event("acme", &["e1".into(), "e2".into(), "e9".into()])
        .await
        .unwrap()
        .into_iter()
        .map(|(e, found)| (e, found.id))
        .collect();
    by_event.sort();
    assert_eq!(
        by_event,
        [
            ("e1".to_owned(), f.id.clone()),
            ("e2".to_owned(), f.id.clone())
        ]
    );
    assert!(
        s.findings_by_event("beta", &["e1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    // The cursor never moves back.
    s.commit_findings("acme", &[], &[], 0, t(4)).await.unwrap();
    assert_eq!(
        s.detection_cursor("acme").await.unwrap(),
        journal[1].position
    );

    // Entries read and of no further use are forgotten with the commit, this org's only.
    s.commit_findings(
        "acme",
        &[],
        &[journal[0].position],
        journal[1].position,
        t(4),
    )
    .await
    .unwrap();
    assert_eq!(s.signals_after("acme", 0, 10).await.unwrap(), journal[1..]);
    let due = s.due("security:email", 10, t(5), true).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].event_id, f.id);
    match &due[0].item {
        Ok(factorwatch::record::Item::Finding(got)) => assert_eq!(got, &f),
        other => panic!("{other:?}"),
    }
    // The change's row and the finding's row for the same sink are both owed.
    assert_eq!(s.due("siem:a", 10, t(5), true).await.unwrap().len(), 2);
    let about = s
        .findings_for_events("acme", &["e2".into(), "nothing".into()])
        .await
        .unwrap();
    assert_eq!(about, vec![f.clone()]);
    assert!(
        s.findings_for_events("other", &["e2".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.stats().await.unwrap().findings, 1);
}

pub async fn a_setting_is_kept_by_its_first_writer<S: Store>(s: S) {
    assert_eq!(s.setting_or_insert("k", "first").await.unwrap(), "first");
    assert_eq!(s.setting_or_insert("k", "second").await.unwrap(), "first");
    assert_eq!(s.setting_or_insert("j", "other").await.unwrap(), "other");
}

pub async fn a_batch_is_stored_whole_with_its_cursor<S: Store>(s: S) {
    assert_eq!(s.cursor("acme", SourceKind::SystemLog).await.unwrap(), None);
    let mut b = batch(
        vec![change("e1", "u1", &["siem:a", "email"])],
        Some("https://o/next1"),
    );
    b.rejects.push(Reject {
        error: "not an event".into(),
        raw: "{}".into(),
    });
    let c = s.commit("acme", &b, t(1)).await.unwrap();
    assert_eq!((c.new, c.duplicates), (1, 0));
    assert_eq!(
        s.cursor("acme", SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("https://o/next1")
    );
    // A batch without a cursor (a hook delivery) leaves the position where it was.
    s.commit("acme", &batch(vec![], None), t(2)).await.unwrap();
    assert_eq!(
        s.cursor("acme", SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("https://o/next1")
    );
    assert_eq!(
        s.cursor("other", SourceKind::SystemLog).await.unwrap(),
        None
    );
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.changes, stats.rejects), (1, 1));
}

pub async fn several_orgs_batches_are_stored_at_once_each_as_alone<S: Store>(s: S) {
    let acme = batch(vec![change("e1", "u1", &["siem:a"])], Some("https://o/a1"));
    let beta = batch(
        vec![
            change("e1", "u1", &["siem:a"]),
            change("e2", "u2", &["siem:a"]),
        ],
        Some("https://o/b1"),
    );
    // acme's e1 again, after its first in the same call: a duplicate, as if committed later.
    let mut again = batch(vec![change("e1", "u1", &["siem:a"])], None);
    // Journal entries in each batch, and a later event in the second of acme's.
    let (mut acme, mut beta) = (acme, beta);
    acme.signals = vec![signal("a1", "sign_in", 0), signal("a2", "event", 1)];
    beta.signals = vec![signal("b1", "sign_in", 0)];
    again.signals = vec![signal("a3", "sign_in", 5)];
    again.newest_published = Some(t(5));
    let c = s
        .commit_many(&[("acme", &acme), ("beta", &beta), ("acme", &again)], t(1))
        .await
        .unwrap();
    let counts: Vec<(usize, usize)> = c.iter().map(|c| (c.new, c.duplicates)).collect();
    assert_eq!(counts, [(1, 0), (2, 0), (0, 1)]);
    for (org, next) in [("acme", "https://o/a1"), ("beta", "https://o/b1")] {
        assert_eq!(
            s.cursor(org, SourceKind::SystemLog)
                .await
                .unwrap()
                .as_deref(),
            Some(next)
        );
    }
    assert_eq!(s.stats().await.unwrap().changes, 3);
    assert_eq!(s.due("siem:a", 10, t(10), true).await.unwrap().len(), 3);
    // Every batch's journal entries are kept, each org's in the order of its batches.
    for (org, want) in [
        (
            "acme",
            vec![r#"{"id":"a1"}"#, r#"{"id":"a2"}"#, r#"{"id":"a3"}"#],
        ),
        ("beta", vec![r#"{"id":"b1"}"#]),
    ] {
        let journal = s.signals_after(org, 0, 100).await.unwrap();
        let bodies: Vec<&str> = journal.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(bodies, want, "{org}'s journal");
    }
    // Each source's position, as if its batches were committed one after the other: events
    // counted from both of acme's, its newest event the later batch's, its cursor the first's
    // (the second has none).
    let sources = s.stats().await.unwrap().sources;
    let acme = sources.iter().find(|x| x.org == "acme").unwrap();
    assert_eq!(
        (
            acme.events_seen,
            acme.newest_published,
            acme.position.as_deref()
        ),
        (2, Some(t(5)), Some("https://o/a1"))
    );
    let beta = sources.iter().find(|x| x.org == "beta").unwrap();
    assert_eq!((beta.events_seen, beta.newest_published), (2, Some(t(0))));
}

pub async fn each_change_is_stored_once_per_org_whatever_the_repeats<S: Store>(s: S) {
    let twice = batch(
        vec![
            change("e1", "u1", &["siem:a"]),
            change("e1", "u1", &["siem:a"]),
        ],
        None,
    );
    let c = s.commit("acme", &twice, t(1)).await.unwrap();
    assert_eq!((c.new, c.duplicates), (1, 1), "twice in one batch");
    let c = s
        .commit(
            "acme",
            &batch(vec![change("e1", "u1", &["siem:a"])], None),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!((c.new, c.duplicates), (0, 1), "again later");
    let c = s
        .commit(
            "beta",
            &batch(vec![change("e1", "u1", &["siem:a"])], None),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(c.new, 1, "the same id in another org is another change");
    assert_eq!(s.due("siem:a", 10, t(10), true).await.unwrap().len(), 2);
}

pub async fn due_rows_come_oldest_first_and_record_each_outcome<S: Store>(s: S) {
    let changes = (0..5)
        .map(|i| change(&format!("e{i}"), "u1", &["siem:a"]))
        .collect();
    s.commit("acme", &batch(changes, None), t(0)).await.unwrap();
    assert!(s.any_due(&["siem:a".into()], t(1)).await.unwrap());
    assert!(!s.any_due(&["siem:b".into()], t(1)).await.unwrap());
    // Read without the Okta events (a destination that does not read them).
    let due = s.due("siem:a", 3, t(1), false).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, ["e0", "e1", "e2"]);
    let change = due[0].change().unwrap();
    assert_eq!(change.id.to_wire(), "e0", "the record comes back typed");
    assert!(
        due.iter().all(|d| d.raw.is_empty()),
        "no Okta event unless asked for"
    );
    assert_eq!(due[0].attempts, 0);
    s.delivered(&[due[0].id], t(2)).await.unwrap();
    s.retry(due[1].id, "try later", t(100)).await.unwrap();
    s.postpone(due[2].id, t(50)).await.unwrap();
    let now: Vec<String> = s
        .due("siem:a", 10, t(3), true)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(
        now,
        ["e3", "e4"],
        "delivered gone, retried and postponed not yet due"
    );
    let later = s.due("siem:a", 10, t(200), true).await.unwrap();
    let e1 = later.iter().find(|d| d.event_id == "e1").unwrap();
    assert_eq!(e1.attempts, 1, "a retry counts an attempt");
    assert_eq!(e1.raw, r#"{"uuid":"e1"}"#, "the Okta event when asked for");
    let e2 = later.iter().find(|d| d.event_id == "e2").unwrap();
    assert_eq!(e2.attempts, 0, "a postponement does not");
}

pub async fn dead_letters_are_listed_redriven_and_dropped<S: Store>(s: S) {
    let changes = (0..3)
        .map(|i| change(&format!("e{i}"), "u1", &["siem:a", "siem:b"]))
        .collect();
    s.commit("acme", &batch(changes, None), t(0)).await.unwrap();
    let due = s.due("siem:a", 10, t(1), true).await.unwrap();
    for d in &due {
        s.dead(d.id, "refused").await.unwrap();
    }
    assert!(!s.any_due(&["siem:a".into()], t(1)).await.unwrap());
    let dead = s.dead_letters(Some("siem:a")).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("refused"));
    assert!(s.dead_letters(Some("siem:b")).await.unwrap().is_empty());
    assert_eq!(s.redrive(&[dead[0].id], t(2)).await.unwrap(), 1);
    assert_eq!(s.due("siem:a", 10, t(3), true).await.unwrap().len(), 1);
    assert_eq!(
        s.drop_dead(&[dead[1].id, dead[0].id]).await.unwrap(),
        1,
        "only dead rows drop"
    );
    assert_eq!(s.dead_letters(None).await.unwrap().len(), 1);
}

pub async fn a_user_s_pending_rows_context_and_addresses_are_found<S: Store>(s: S) {
    let mut b = batch(
        vec![
            change("e1", "u1", &["email"]),
            change("e2", "u2", &["email"]),
            change("e3", "u1", &["email"]),
        ],
        None,
    );
    b.context.push(ContextEvent {
        uuid: "c1".into(),
        event_type: "user.account.update_primary_email".into(),
        user_id: "u1".into(),
        published: t(10),
    });
    s.commit("acme", &b, t(0)).await.unwrap();
    let mine: Vec<String> = s
        .pending_for_user("email", "acme", "u1")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(mine, ["e1", "e3"]);
    assert!(
        s.pending_for_user("email", "beta", "u1")
            .await
            .unwrap()
            .is_empty()
    );
    // The same for a batch of users at once: each user's rows in the same order, one with none
    // absent, another org's none.
    let users = ["u1".to_owned(), "u2".to_owned(), "u9".to_owned()];
    let batch_rows = s.pending_for_users("email", "acme", &users).await.unwrap();
    let ids = |u: &str| -> Vec<String> {
        batch_rows
            .get(u)
            .map(|rows| rows.iter().map(|d| d.event_id.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids("u1"), ["e1", "e3"]);
    assert_eq!(ids("u2"), ["e2"]);
    assert!(!batch_rows.contains_key("u9"));
    assert!(
        s.pending_for_users("email", "beta", &users)
            .await
            .unwrap()
            .is_empty()
    );
    let changed = |from, to| {
        s.users_with_context(
            "acme",
            &users,
            "user.account.update_primary_email",
            t(from),
            t(to),
        )
    };
    assert_eq!(
        changed(0, 20).await.unwrap(),
        std::collections::HashSet::from(["u1".to_owned()])
    );
    assert!(changed(11, 20).await.unwrap().is_empty());
    let ctx = |from, to| {
        s.context_exists(
            "acme",
            "u1",
            "user.account.update_primary_email",
            t(from),
            t(to),
        )
    };
    assert!(ctx(0, 20).await.unwrap());
    assert!(!ctx(11, 20).await.unwrap());
    s.remember_addresses(&[seen("acme", "u1", "old@example.com")], t(1))
        .await
        .unwrap();
    s.remember_addresses(&[seen("acme", "u1", "new@example.com")], t(5))
        .await
        .unwrap();
    s.remember_addresses(&[seen("acme", "u1", "OLD@example.com")], t(6))
        .await
        .unwrap();
    assert_eq!(
        s.previous_addresses("acme", "u1", "new@example.com")
            .await
            .unwrap(),
        ["old@example.com"],
        "addresses are case-insensitive; the current one is not previous"
    );
    // A round's addresses at once, the same one twice among them.
    s.remember_addresses(
        &[
            seen("acme", "u2", "a@example.com"),
            seen("acme", "u3", "c@example.com"),
            seen("acme", "u2", "b@example.com"),
            seen("acme", "u2", "A@example.com"),
        ],
        t(7),
    )
    .await
    .unwrap();
    assert_eq!(
        s.previous_addresses("acme", "u2", "b@example.com")
            .await
            .unwrap(),
        ["a@example.com"]
    );
    assert_eq!(
        s.previous_addresses("acme", "u3", "x@example.com")
            .await
            .unwrap(),
        ["c@example.com"]
    );
}

pub async fn stats_count_what_is_stored_and_owed<S: Store>(s: S) {
    let changes = (0..4)
        .map(|i| change(&format!("e{i}"), "u1", &["siem:a"]))
        .collect();
    s.commit("acme", &batch(changes, Some("https://o/n")), t(0))
        .await
        .unwrap();
    let due = s.due("siem:a", 10, t(1), true).await.unwrap();
    s.delivered(&[due[0].id, due[1].id], t(2)).await.unwrap();
    s.dead(due[2].id, "x").await.unwrap();
    let stats = s.stats().await.unwrap();
    assert_eq!(stats.changes, 4);
    assert_eq!(stats.outbox, [("siem:a".to_owned(), 2, 1, 1)]);
    assert!(stats.oldest_pending.is_some());
    assert_eq!(stats.sources.len(), 1);
    assert_eq!(stats.sources[0].events_seen, 4);
    assert_eq!(stats.sources[0].newest_published, Some(t(0)));
    let _ = Duration::zero();
}

pub async fn cursors_reset<S: Store>(s: S) {
    s.commit("acme", &batch(vec![], Some("https://o/n")), t(0))
        .await
        .unwrap();
    assert!(s.reset_cursor("acme", SourceKind::SystemLog).await.unwrap());
    assert_eq!(s.cursor("acme", SourceKind::SystemLog).await.unwrap(), None);
    assert!(!s.reset_cursor("acme", SourceKind::SystemLog).await.unwrap());
}

pub async fn an_idle_poll_moves_only_the_last_poll<S: Store>(s: S) {
    let polled = |org: &str, position: &str, at| Polled {
        org: org.into(),
        source: SourceKind::SystemLog,
        position: position.into(),
        at,
    };
    let source = |stats: &factorwatch::store::Stats, org: &str| {
        stats
            .sources
            .iter()
            .find(|x| x.org == org)
            .cloned()
            .unwrap()
    };
    s.record_polls(&[]).await.unwrap();
    // A source with no row yet gets one, at the position it polled.
    s.record_polls(&[polled("new", "https://o/start", t(5))])
        .await
        .unwrap();
    assert_eq!(
        s.cursor("new", SourceKind::SystemLog)
            .await
            .unwrap()
            .as_deref(),
        Some("https://o/start")
    );
    // A row already there: only its last poll moves, and only forward; a record taken before
    // a later commit does not take its cursor or counters back.
    s.commit(
        "acme",
        &batch(
            vec![change("e1", "u1", &["siem:a"])],
            Some("https://o/next2"),
        ),
        t(10),
    )
    .await
    .unwrap();
    s.record_polls(&[
        polled("acme", "https://o/before", t(20)),
        polled("new", "https://o/start", t(3)),
    ])
    .await
    .unwrap();
    let stats = s.stats().await.unwrap();
    let acme = source(&stats, "acme");
    assert_eq!(acme.position.as_deref(), Some("https://o/next2"));
    assert_eq!(acme.events_seen, 1);
    assert_eq!(acme.updated_at, Some(t(20)));
    assert_eq!(source(&stats, "new").updated_at, Some(t(5)));
    // A cursor reset stays reset.
    assert!(s.reset_cursor("acme", SourceKind::SystemLog).await.unwrap());
    s.record_polls(&[polled("acme", "https://o/next2", t(30))])
        .await
        .unwrap();
    assert_eq!(s.cursor("acme", SourceKind::SystemLog).await.unwrap(), None);
}
