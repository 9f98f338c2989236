//! Users and Factors APIs (API-NOTES §3.2, §3.4), fed by `POST /sim/users`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{Value, json};

fn dade() -> Value {
    json!([{
        "id": "00u15s1KDETTQMQYABRL",
        "profile": { "login": "dade.murphy@example.com", "email": "dade@example.com",
                     "secondEmail": "zerocool@example.net", "firstName": "Dade", "lastName": "Murphy" },
        "factors": [
            { "id": "sms2gt8gzgEBPUWBIFHN", "factorType": "sms", "provider": "OKTA",
              "profile": { "phoneNumber": "+1-555-415-1337" } },
            { "id": "opf3hkfocI4JTLAju0g4", "factorType": "push", "provider": "OKTA",
              "profile": { "credentialId": "dade.murphy@example.com", "deviceType": "SmartPhone_IPhone",
                           "name": "Gibson", "platform": "IOS", "version": "9.0" } }
        ]
    }])
}

#[tokio::test]
async fn users_are_served_by_id_login_and_short_login() {
    let sim = common::start().await;
    sim.control("/sim/users", &dade()).await;
    for key in [
        "00u15s1KDETTQMQYABRL",
        "dade.murphy@example.com",
        "dade.murphy",
    ] {
        let r = sim.get(&format!("/api/v1/users/{key}")).await;
        assert_eq!(r.status(), 200, "{key}");
        assert!(r.headers().contains_key("x-rate-limit-remaining"));
        let user: Value = r.json().await.unwrap();
        assert_eq!(user["id"], "00u15s1KDETTQMQYABRL");
        assert_eq!(user["status"], "ACTIVE");
        assert_eq!(user["profile"]["email"], "dade@example.com");
        assert_eq!(user["profile"]["secondEmail"], "zerocool@example.net");
        assert!(
            user.get("factors").is_none(),
            "factors are not part of the User object"
        );
        assert!(
            user["_links"]["self"]["href"]
                .as_str()
                .unwrap()
                .ends_with("/api/v1/users/00u15s1KDETTQMQYABRL")
        );
    }
    let r = sim.get("/api/v1/no/such/thing").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000007");
    let r = sim.get("/api/v1/users/nobody@example.com").await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000007");
    assert_eq!(
        body["errorSummary"],
        "Not found: Resource not found: nobody@example.com (User)"
    );
}

#[tokio::test]
async fn factors_are_served_with_okta_shapes() {
    let sim = common::start().await;
    sim.control("/sim/users", &dade()).await;
    let list: Vec<Value> = sim
        .get("/api/v1/users/00u15s1KDETTQMQYABRL/factors")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["factorType"], "sms");
    assert_eq!(list[0]["profile"]["phoneNumber"], "+1-555-415-1337");
    assert_eq!(list[1]["profile"]["name"], "Gibson");
    assert_eq!(list[1]["profile"]["platform"], "IOS");
    for f in &list {
        assert_eq!(f["status"], "ACTIVE");
        assert_eq!(f["vendorName"], "OKTA");
        assert!(f["created"].is_string() && f["lastUpdated"].is_string());
        assert!(f["_links"]["verify"]["href"].is_string());
    }
    let r = sim
        .get("/api/v1/users/00u15s1KDETTQMQYABRL/factors/opf3hkfocI4JTLAju0g4")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["id"],
        "opf3hkfocI4JTLAju0g4"
    );
    let r = sim
        .get("/api/v1/users/00u15s1KDETTQMQYABRL/factors/nope")
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000007");
    assert_eq!(
        sim.get("/api/v1/users/00uNOBODY/factors").await.status(),
        404
    );
}

#[tokio::test]
async fn the_users_api_needs_credentials_and_bad_users_are_refused() {
    let sim = common::start().await;
    sim.control("/sim/users", &dade()).await;
    let r = sim
        .http
        .get(format!("{}/api/v1/users/dade.murphy", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000011");

    let r = sim
        .post(
            "/sim/users",
            &json!([{ "profile": { "login": "x@example.com" } }]),
        )
        .await;
    assert!(common::error_cause(r, 400).await.contains("profile.email"));
    let r = sim.post("/sim/users", &json!({ "not": "an array" })).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000003");
}

#[tokio::test]
async fn a_responder_clears_sessions_resets_factors_suspends_and_raises_risk() {
    let sim = common::start().await;
    sim.control("/sim/users", &dade()).await;
    let id = "00u15s1KDETTQMQYABRL";
    let send = |method: reqwest::Method, path: String, body: Option<Value>| {
        let sim = &sim;
        async move {
            let mut r = sim
                .http
                .request(method, format!("{}{path}", sim.base))
                .header("Authorization", format!("SSWS {}", common::TOKEN));
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send().await.unwrap()
        }
    };
    let r = send(
        reqwest::Method::DELETE,
        format!("/api/v1/users/{id}/sessions?oauthTokens=true"),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = send(
        reqwest::Method::POST,
        format!("/api/v1/users/{id}/lifecycle/reset_factors"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let factors: Vec<Value> = sim
        .get(&format!("/api/v1/users/{id}/factors"))
        .await
        .json()
        .await
        .unwrap();
    assert!(factors.is_empty(), "every factor unenrolled");
    let suspend = format!("/api/v1/users/{id}/lifecycle/suspend");
    assert_eq!(
        send(reqwest::Method::POST, suspend.clone(), None)
            .await
            .status(),
        200
    );
    let user: Value = sim
        .get(&format!("/api/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["status"], "SUSPENDED");
    // A suspended user cannot be suspended again: Okta's validation error.
    let r = send(reqwest::Method::POST, suspend, None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000001");
    let risk = format!("/api/v1/users/{id}/risk");
    let r = send(
        reqwest::Method::PUT,
        risk.clone(),
        Some(json!({ "riskLevel": "HIGH" })),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["riskLevel"], "HIGH");
    // Without Identity Threat Protection, the User Risk API is not there.
    sim.control(
        "/sim/features",
        &json!({ "identity_threat_protection": false }),
    )
    .await;
    let r = send(
        reqwest::Method::PUT,
        risk,
        Some(json!({ "riskLevel": "HIGH" })),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000015");
    // What Okta logs for each, and every call recorded.
    let logs: Vec<Value> = sim
        .get(&format!(
            "/api/v1/logs?since={}",
            (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = logs
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    for t in [
        "user.session.clear",
        "user.mfa.factor.reset_all",
        "user.lifecycle.suspend",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    let calls: Vec<Value> = sim.get("/sim/calls").await.json().await.unwrap();
    let seen: Vec<(String, u64)> = calls
        .iter()
        .map(|c| {
            (
                format!(
                    "{} {}",
                    c["method"].as_str().unwrap(),
                    c["path"].as_str().unwrap().rsplit('/').next().unwrap()
                ),
                c["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("DELETE sessions".to_owned(), 204),
            ("POST reset_factors".to_owned(), 200),
            ("POST suspend".to_owned(), 200),
            ("POST suspend".to_owned(), 400),
            ("PUT risk".to_owned(), 201),
            ("PUT risk".to_owned(), 401),
        ]
    );
    assert_eq!(calls[0]["query"], "oauthTokens=true");
}
