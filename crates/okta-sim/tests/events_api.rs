//! The legacy Events API (API-NOTES §4): legacy shape, paging by `after`, an always-present
//! `next`, the documented filters and their limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{Value, json};

fn activation(uuid: &str, legacy: Option<&str>) -> Value {
    json!({
        "uuid": uuid, "eventType": "user.mfa.factor.activate", "legacyEventType": legacy,
        "displayMessage": "Activate factor for user",
        "actor": { "id": "00u3ssydqqKOfez5C0h7", "type": "User", "alternateId": "mfa@example.com", "displayName": "MFA Test" },
        "client": { "ipAddress": "67.223.10.7", "userAgent": { "rawUserAgent": "Mozilla/5.0 (Macintosh)", "browser": "CHROME" } },
        "target": [{ "id": "00u3ssydqqKOfez5C0h7", "type": "User", "alternateId": "mfa@example.com", "displayName": "MFA Test" }],
        "authenticationContext": { "externalSessionId": "s03khgvyS6nRr61bjallafGHQ" },
        "transaction": { "type": "WEB", "id": "VTFPDoXpXQ9fcy12eMvbwgAAA6o" },
        "debugContext": { "debugData": { "requestUri": "/user/settings/factors/soft_token/phone_verify" } },
        "outcome": { "result": "SUCCESS" }
    })
}

fn links(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn serves_legacy_events_in_the_legacy_shape() {
    let sim = common::start().await;
    let events = json!([
        activation("u1", Some("core.user.factor.activate")),
        activation("u2", None)
    ]);
    sim.control("/sim/events", &events).await;

    let r = sim.get("/api/v1/events").await;
    assert_eq!(r.status(), 200);
    assert_eq!(links(&r).len(), 2);
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(
        page.len(),
        1,
        "only events with a legacy type exist in the Events API"
    );
    let e = &page[0];
    let id = e["eventId"].as_str().unwrap();
    assert!(id.starts_with("tev") && id.len() == 38, "{id}");
    assert_eq!(e["action"]["objectType"], "core.user.factor.activate");
    assert_eq!(e["action"]["message"], "Activate factor for user");
    assert_eq!(
        e["action"]["requestUri"],
        "/user/settings/factors/soft_token/phone_verify"
    );
    assert_eq!(
        e["actors"][0],
        json!({"id": "00u3ssydqqKOfez5C0h7", "displayName": "MFA Test", "login": "mfa@example.com", "objectType": "User"})
    );
    assert_eq!(
        e["actors"][1],
        json!({"id": "Mozilla/5.0 (Macintosh)", "displayName": "CHROME", "ipAddress": "67.223.10.7", "objectType": "Client"})
    );
    assert_eq!(e["targets"][0]["login"], "mfa@example.com");
    assert_eq!(e["sessionId"], "s03khgvyS6nRr61bjallafGHQ");
    assert_eq!(e["requestId"], "VTFPDoXpXQ9fcy12eMvbwgAAA6o");
    assert!(e.get("uuid").is_none());
}

#[tokio::test]
async fn pages_follow_after_and_next_always_exists() {
    let sim = common::start().await;
    let events: Vec<Value> = (0..5)
        .map(|i| activation(&format!("u{i}"), Some("core.user.factor.activate")))
        .collect();
    sim.control("/sim/events", &json!(events)).await;

    let r = sim.get("/api/v1/events?limit=2").await;
    let mut path = common::next_link(&r).unwrap();
    let mut seen: Vec<Value> = r.json().await.unwrap();
    assert_eq!(seen.len(), 2);
    loop {
        let r = sim.get(&path).await;
        assert_eq!(r.status(), 200);
        path = common::next_link(&r).unwrap();
        let page: Vec<Value> = r.json().await.unwrap();
        if page.is_empty() {
            break; // caught up; the next link is still there
        }
        seen.extend(page);
    }
    assert_eq!(seen.len(), 5);
    // Later events appear on the same next link.
    sim.control(
        "/sim/events",
        &json!([activation("u5", Some("core.user.factor.update"))]),
    )
    .await;
    let page: Vec<Value> = sim.get(&path).await.json().await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["action"]["objectType"], "core.user.factor.update");
}

#[tokio::test]
async fn filters_and_parameters_are_checked_as_documented() {
    let sim = common::start().await;
    sim.control(
        "/sim/events",
        &json!([
            activation("a", Some("core.user.factor.activate")),
            activation("b", Some("core.user_auth.login_success"))
        ]),
    )
    .await;
    let filter =
        form_urlencoded::byte_serialize(br#"action.objectType eq "core.user.factor.activate""#)
            .collect::<String>();
    let page: Vec<Value> = sim
        .get(&format!("/api/v1/events?filter={filter}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["action"]["objectType"], "core.user.factor.activate");

    let start = form_urlencoded::byte_serialize(b"2026-01-01T00:00:00.000Z").collect::<String>();
    for (query, code) in [
        (format!("?startDate={start}&filter={filter}"), "E0000001"),
        (
            format!("?startDate={start}&after=tev00000000001"),
            "E0000001",
        ),
        ("?limit=1001".to_owned(), "E0000001"),
        ("?after=garbage".to_owned(), "E0000001"),
        (
            format!(
                "?filter={}",
                form_urlencoded::byte_serialize(br#"actor.id eq "x""#).collect::<String>()
            ),
            "E0000053",
        ),
        ("?startDate=2020-01-01T00:00:00.000Z".to_owned(), "E0000053"),
    ] {
        let r = sim.get(&format!("/api/v1/events{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["errorCode"],
            code,
            "{query}"
        );
    }
}
