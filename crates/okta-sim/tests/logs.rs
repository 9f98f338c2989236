//! `/api/v1/logs` semantics, pinned to Okta's documentation (API-NOTES §1).

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use okta_sim::logs::{LogQuery, LogStore};
use serde_json::{Value, json};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn event(uuid: &str, event_type: &str, published: &str) -> Value {
    json!({"uuid": uuid, "eventType": event_type, "published": published, "actor": {"id": "00u1", "type": "User"},
           "outcome": {"result": "SUCCESS"}, "target": [{"id": "00u2", "type": "User"}]})
}

fn uuids(page: &okta_sim::logs::Page<'_>) -> Vec<String> {
    page.events.iter().map(|e| e.uuid().unwrap()).collect()
}

fn q(pairs: &[(&str, &str)]) -> LogQuery {
    let mut q = LogQuery::default();
    for (k, v) in pairs {
        let v = Some((*v).to_owned());
        match *k {
            "since" => q.since = v,
            "until" => q.until = v,
            "after" => q.after = v,
            "filter" => q.filter = v,
            "q" => q.q = v,
            "limit" => q.limit = v,
            "sortOrder" => q.sort_order = v,
            _ => panic!("{k}"),
        }
    }
    q
}

/// The `after` of a next link's query.
fn after(next: &str) -> String {
    form_urlencoded::parse(next.as_bytes())
        .find(|(k, _)| k == "after")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

const NOW: &str = "2026-11-25T12:00:00Z";

#[test]
fn polling_follows_persistence_order_and_always_links_next() {
    let now = t(NOW);
    let mut log = LogStore::default();
    log.persist(
        event("a", "user.session.start", NOW),
        now - Duration::minutes(10),
        false,
    )
    .unwrap();
    log.persist(
        event("b", "user.mfa.factor.activate", NOW),
        now - Duration::minutes(9),
        false,
    )
    .unwrap();
    // Persisted after b, but published an hour earlier: a late event.
    log.persist(
        event("late", "user.mfa.factor.activate", "2026-11-25T10:50:00Z"),
        now - Duration::minutes(8),
        true,
    )
    .unwrap();

    let since = "2026-11-25T11:00:00Z";
    let page = log
        .query(&q(&[("since", since), ("limit", "2")]), now)
        .unwrap();
    assert_eq!(uuids(&page), ["a", "b"]);
    let next = page.next.expect("polling pages always link next");
    assert!(
        !next.contains("since="),
        "since may not accompany after: {next}"
    );

    // The late event, published before `since`, is still delivered: polling is by persistence.
    let page = log
        .query(&q(&[("after", &after(&next)), ("limit", "2")]), now)
        .unwrap();
    assert_eq!(uuids(&page), ["late"]);
    let next = page.next.expect("next");

    // Caught up: an empty page, still with next; a new event then appears behind it.
    let page = log.query(&q(&[("after", &after(&next))]), now).unwrap();
    assert!(page.events.is_empty());
    let next = page.next.expect("an empty polling page links next too");
    log.persist(event("c", "user.mfa.factor.deactivate", NOW), now, false)
        .unwrap();
    let page = log.query(&q(&[("after", &after(&next))]), now).unwrap();
    assert_eq!(uuids(&page), ["c"]);
}

#[test]
fn bounded_requests_order_by_published_and_end_without_next() {
    let now = t(NOW);
    let mut log = LogStore::default();
    for (uuid, published) in [
        ("x3", "2026-11-25T11:03:00Z"),
        ("x1", "2026-11-25T11:01:00Z"),
        ("x2", "2026-11-25T11:02:00Z"),
    ] {
        log.persist(event(uuid, "user.session.start", published), now, true)
            .unwrap();
    }
    let bounds = [
        ("since", "2026-11-25T11:00:00Z"),
        ("until", "2026-11-25T11:30:00Z"),
        ("limit", "2"),
    ];
    let page = log.query(&q(&bounds), now).unwrap();
    assert_eq!(uuids(&page), ["x1", "x2"]);
    let cursor = after(page.next.as_deref().expect("more to come"));
    let page = log
        .query(
            &q(&[
                ("until", "2026-11-25T11:30:00Z"),
                ("limit", "2"),
                ("after", &cursor),
            ]),
            now,
        )
        .unwrap();
    assert_eq!(uuids(&page), ["x3"]);
    assert!(page.next.is_none(), "the last bounded page has no next");

    let desc = log
        .query(
            &q(&[
                ("since", "2026-11-25T11:00:00Z"),
                ("until", "2026-11-25T11:30:00Z"),
                ("sortOrder", "DESCENDING"),
            ]),
            now,
        )
        .unwrap();
    assert_eq!(uuids(&desc), ["x3", "x2", "x1"]);
}

#[test]
fn a_bounded_query_keeps_its_since_on_every_page() {
    // `since` may not accompany `after`: the next page must still start where the query did, not
    // at the default of 7 days before `until` (a 90-day backfill read only its last week).
    let now = t(NOW);
    let mut log = LogStore::default();
    for day in 0..30 {
        let published = okta_sim::logs::okta_time(now - Duration::days(30 - day));
        log.persist(
            event(&format!("d{day:02}"), "user.session.start", &published),
            now,
            true,
        )
        .unwrap();
    }
    let since = okta_sim::logs::okta_time(now - Duration::days(31));
    let until = okta_sim::logs::okta_time(now);
    let mut page = log
        .query(
            &q(&[("since", &since), ("until", &until), ("limit", "4")]),
            now,
        )
        .unwrap();
    let mut seen = uuids(&page);
    while let Some(next) = page.next.clone() {
        let cursor = after(&next);
        page = log
            .query(
                &q(&[("until", &until), ("limit", "4"), ("after", &cursor)]),
                now,
            )
            .unwrap();
        seen.extend(uuids(&page));
    }
    let expected: Vec<String> = (0..30).map(|d| format!("d{d:02}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn filters_and_keywords_select_events() {
    let now = t(NOW);
    let mut log = LogStore::default();
    log.persist(event("a", "user.session.start", NOW), now, false)
        .unwrap();
    log.persist(event("b", "user.mfa.factor.activate", NOW), now, false)
        .unwrap();
    log.persist(event("c", "user.mfa.factor.reset_all", NOW), now, false)
        .unwrap();
    let since = ("since", "2026-11-25T11:00:00Z");
    let page = log
        .query(
            &q(&[since, ("filter", r#"eventType sw "user.mfa.factor""#)]),
            now,
        )
        .unwrap();
    assert_eq!(uuids(&page), ["b", "c"]);
    let page = log
        .query(&q(&[since, ("filter", r#"eventType eq "user.session.start" or (target.id eq "00u2" and eventType ew "reset_all")"#)]), now)
        .unwrap();
    assert_eq!(uuids(&page), ["a", "c"]);
    let page = log.query(&q(&[since, ("q", "RESET_ALL")]), now).unwrap();
    assert_eq!(uuids(&page), ["c"]);
}

#[test]
fn retention_is_90_days() {
    let now = t(NOW);
    let mut log = LogStore::default();
    log.persist(
        event("old", "user.session.start", "2026-08-01T00:00:00Z"),
        now,
        true,
    )
    .unwrap();
    log.persist(event("new", "user.session.start", NOW), now, false)
        .unwrap();
    let page = log
        .query(&q(&[("since", "2026-11-25T00:00:00Z")]), now)
        .unwrap();
    assert_eq!(uuids(&page), ["new"]);
}

#[test]
fn invalid_requests_get_okta_s_errors() {
    let now = t(NOW);
    let log = LogStore::default();
    let err = |pairs: &[(&str, &str)]| log.query(&q(pairs), now).expect_err("an error");

    let e = err(&[("since", "2026-01-01T00:00:00Z")]);
    assert_eq!((e.status, e.error_code), (400, "E0000053"));
    assert_eq!(
        e.error_summary,
        "Invalid parameter: The since parameter is over 180 days prior to the current day."
    );

    let e = err(&[("filter", r#"display_message eqq "Create okta user""#)]);
    assert_eq!((e.status, e.error_code), (400, "E0000053"));
    assert!(
        e.error_summary
            .contains("Unrecognized attribute operator 'eqq' at position 16"),
        "{}",
        e.error_summary
    );

    let e = err(&[("filter", r#"debugContext.debugData.url co "x""#)]);
    assert_eq!(e.error_code, "E0000031");

    for bad in [
        vec![("limit", "1001")],
        vec![("limit", "-1")],
        vec![("until", "yesterday")],
        vec![("sortOrder", "UP")],
        vec![("since", "2026-11-25T11:00:00Z"), ("after", "1_1")],
        vec![("after", "not-a-cursor")],
        vec![(
            "q",
            "this-keyword-is-far-longer-than-forty-characters-okta-allows",
        )],
    ] {
        let e = err(&bad);
        assert_eq!((e.status, e.error_code), (400, "E0000001"), "{bad:?}");
        assert_eq!(e.error_link, "E0000001");
        assert!(!e.error_causes.is_empty(), "{bad:?}");
    }
    assert!(log.query(&q(&[("limit", "0")]), now).is_ok());
}
