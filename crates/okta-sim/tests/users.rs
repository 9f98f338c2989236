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
