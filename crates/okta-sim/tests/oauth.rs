//! OAuth 2.0 for service apps (API-NOTES §6.2, §6.3): `private_key_jwt` client assertions checked
//! for real, expiring Bearer tokens, scopes, and DPoP with the `use_dpop_nonce` handshake.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const EC: &[u8] = include_bytes!("keys/ec256.pem");
const ATTACKER: &[u8] = include_bytes!("keys/attacker-ec256.pem");
const RSA: &[u8] = include_bytes!("keys/rsa2048.pem");
const CLIENT: &str = "0oa1serviceapp000000";

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(EC).unwrap()
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(key, alg).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk
}

async fn register(sim: &common::Sim, dpop: bool) {
    let rsa = EncodingKey::from_rsa_pem(RSA).unwrap();
    sim.control(
        "/sim/apps",
        &json!([{
            "client_id": CLIENT,
            "jwks": { "keys": [public_jwk(&ec(), Algorithm::ES256, "ec1"), public_jwk(&rsa, Algorithm::RS256, "rsa1")] },
            "scopes": ["okta.logs.read", "okta.eventHooks.read"],
            "dpop_bound_access_tokens": dpop,
        }]),
    )
    .await;
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn assertion(
    sim: &common::Sim,
    key: &EncodingKey,
    alg: Algorithm,
    kid: &str,
    claims: Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let mut c = json!({
        "iss": CLIENT, "sub": CLIENT, "aud": format!("{}/oauth2/v1/token", sim.base),
        "exp": now() + 300, "iat": now(), "jti": format!("jti-{}", rand_id()),
    });
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    jsonwebtoken::encode(&header, &c, key).unwrap()
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn token_request(
    sim: &common::Sim,
    assertion: &str,
    scope: &str,
    dpop: Option<String>,
) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", scope)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", assertion)
        .finish();
    let mut r = sim
        .http
        .post(format!("{}/oauth2/v1/token", sim.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(proof) = dpop {
        r = r.header("DPoP", proof);
    }
    r.send().await.unwrap()
}

async fn error_of(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["error"].as_str().unwrap().into(),
        v["error_description"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn a_signed_assertion_buys_a_bearer_token_that_expires() {
    let sim = common::start().await;
    register(&sim, false).await;
    for (key, alg, kid) in [
        (ec(), Algorithm::ES256, "ec1"),
        (
            EncodingKey::from_rsa_pem(RSA).unwrap(),
            Algorithm::RS256,
            "rsa1",
        ),
    ] {
        let a = assertion(&sim, &key, alg, kid, json!({}));
        let r = token_request(&sim, &a, "okta.logs.read", None).await;
        assert_eq!(r.status(), 200, "{alg:?}");
        let t: Value = r.json().await.unwrap();
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["expires_in"], 3600);
        assert_eq!(t["scope"], "okta.logs.read");
        let token = t["access_token"].as_str().unwrap().to_owned();
        let logs = |token: String| {
            let sim = &sim;
            async move {
                sim.http
                    .get(format!("{}/api/v1/logs", sim.base))
                    .header("Authorization", format!("Bearer {token}"))
                    .send()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(logs(token.clone()).await.status(), 200);
        // Lacking okta.users.read: 403 E0000006.
        let r = sim
            .http
            .get(format!("{}/api/v1/users/anyone", sim.base))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000006");
        // An hour later the token is dead.
        sim.control("/sim/clock", &json!({ "advance_seconds": 3601 }))
            .await;
        let r = logs(token).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000011");
        sim.org.advance_clock(chrono::Duration::seconds(-3601));
    }
}

#[tokio::test]
async fn bad_assertions_are_refused_with_okta_errors() {
    let sim = common::start().await;
    register(&sim, false).await;
    let attacker = EncodingKey::from_ec_pem(ATTACKER).unwrap();
    let cases = [
        (
            "forged signature",
            assertion(&sim, &attacker, Algorithm::ES256, "ec1", json!({})),
        ),
        (
            "unknown kid",
            assertion(&sim, &ec(), Algorithm::ES256, "nope", json!({})),
        ),
        (
            "wrong aud",
            assertion(
                &sim,
                &ec(),
                Algorithm::ES256,
                "ec1",
                json!({ "aud": "https://evil.example/oauth2/v1/token" }),
            ),
        ),
        (
            "sub differs",
            assertion(
                &sim,
                &ec(),
                Algorithm::ES256,
                "ec1",
                json!({ "sub": "someone-else" }),
            ),
        ),
        (
            "unknown client",
            assertion(
                &sim,
                &ec(),
                Algorithm::ES256,
                "ec1",
                json!({ "iss": "0oaUNKNOWN", "sub": "0oaUNKNOWN" }),
            ),
        ),
        (
            "expired",
            assertion(
                &sim,
                &ec(),
                Algorithm::ES256,
                "ec1",
                json!({ "exp": now() - 10 }),
            ),
        ),
        (
            "exp over an hour ahead",
            assertion(
                &sim,
                &ec(),
                Algorithm::ES256,
                "ec1",
                json!({ "exp": now() + 3700 }),
            ),
        ),
        (
            "no exp",
            assertion(&sim, &ec(), Algorithm::ES256, "ec1", json!({ "exp": null })),
        ),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (what, a) in cases {
        let (status, error, _) =
            error_of(token_request(&sim, &a, "okta.logs.read", None).await).await;
        assert_eq!((status, error.as_str()), (401, "invalid_client"), "{what}");
    }
    // A replayed jti.
    let a = assertion(
        &sim,
        &ec(),
        Algorithm::ES256,
        "ec1",
        json!({ "jti": "once" }),
    );
    assert_eq!(
        token_request(&sim, &a, "okta.logs.read", None)
            .await
            .status(),
        200
    );
    let (status, error, description) =
        error_of(token_request(&sim, &a, "okta.logs.read", None).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(description.contains("already been used"), "{description}");
    // A scope the app was not granted.
    let a = assertion(&sim, &ec(), Algorithm::ES256, "ec1", json!({}));
    let (status, error, description) =
        error_of(token_request(&sim, &a, "okta.logs.read okta.users.manage", None).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_scope"));
    assert!(description.contains("okta.users.manage"));
    // Wrong or missing credentials on the API: Okta's 401 body.
    let r = sim
        .http
        .get(format!("{}/api/v1/logs", sim.base))
        .header("Authorization", "Bearer made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorSummary"],
        "Invalid token provided"
    );
}

/// A DPoP proof signed by `key` (whose public JWK is embedded) for `method` `url`.
fn proof(
    key: &EncodingKey,
    method: &str,
    url: &str,
    nonce: Option<&str>,
    token: Option<&str>,
) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(Jwk::from_encoding_key(key, Algorithm::ES256).unwrap());
    let mut claims =
        json!({ "htm": method, "htu": url, "iat": now(), "jti": format!("p{}", rand_id()) });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(t) = token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())));
    }
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test]
async fn dpop_tokens_need_the_nonce_handshake_and_a_proof_per_request() {
    let sim = common::start().await;
    register(&sim, true).await;
    let dpop_key = EncodingKey::from_ec_pem(ATTACKER).unwrap();
    let token_url = format!("{}/oauth2/v1/token", sim.base);

    let a = assertion(&sim, &ec(), Algorithm::ES256, "ec1", json!({}));
    let (status, error, _) = error_of(token_request(&sim, &a, "okta.logs.read", None).await).await;
    assert_eq!(
        (status, error.as_str()),
        (400, "invalid_dpop_proof"),
        "the app requires DPoP"
    );

    let r = token_request(
        &sim,
        &a,
        "okta.logs.read",
        Some(proof(&dpop_key, "POST", &token_url, None, None)),
    )
    .await;
    assert_eq!(r.status(), 400);
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let (_, error, _) = error_of(r).await;
    assert_eq!(error, "use_dpop_nonce");

    // The same assertion may be sent again with the nonce (it was not consumed by the refusal).
    let r = token_request(
        &sim,
        &a,
        "okta.logs.read",
        Some(proof(&dpop_key, "POST", &token_url, Some(&nonce), None)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP");
    let token = t["access_token"].as_str().unwrap().to_owned();

    let logs_url = format!("{}/api/v1/logs", sim.base);
    let call = |scheme: &'static str, proof: Option<String>| {
        let mut r = sim
            .http
            .get(format!("{logs_url}?limit=5"))
            .header("Authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        r.send()
    };
    let good = proof(&dpop_key, "GET", &logs_url, None, Some(&token));
    assert_eq!(
        call("DPoP", Some(good.clone())).await.unwrap().status(),
        200
    );
    let refusals = [
        ("as Bearer", call("Bearer", None).await.unwrap()),
        ("without proof", call("DPoP", None).await.unwrap()),
        ("replayed proof", call("DPoP", Some(good)).await.unwrap()),
        (
            "proof for another URL",
            call(
                "DPoP",
                Some(proof(&dpop_key, "GET", &token_url, None, Some(&token))),
            )
            .await
            .unwrap(),
        ),
        (
            "proof without ath",
            call("DPoP", Some(proof(&dpop_key, "GET", &logs_url, None, None)))
                .await
                .unwrap(),
        ),
        (
            "proof by another key",
            call(
                "DPoP",
                Some(proof(&ec(), "GET", &logs_url, None, Some(&token))),
            )
            .await
            .unwrap(),
        ),
    ];
    for (what, r) in refusals {
        assert_eq!(r.status(), 401, "{what}");
    }
}

#[tokio::test]
async fn managing_a_user_needs_the_manage_scope() {
    let sim = common::start().await;
    sim.control(
        "/sim/apps",
        &json!([{
            "client_id": CLIENT,
            "jwks": { "keys": [public_jwk(&ec(), Algorithm::ES256, "ec1")] },
            "scopes": ["okta.users.read", "okta.users.manage"],
            "dpop_bound_access_tokens": false,
        }]),
    )
    .await;
    sim.control(
        "/sim/users",
        &json!([{ "id": "00uvictim00000000001", "profile": { "login": "v@example.com", "email": "v@example.com" } }]),
    )
    .await;
    let token = |scope: &'static str| {
        let sim = &sim;
        async move {
            let a = assertion(sim, &ec(), Algorithm::ES256, "ec1", json!({}));
            let r = token_request(sim, &a, scope, None).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let suspend = |token: String| {
        let sim = &sim;
        async move {
            sim.http
                .post(format!(
                    "{}/api/v1/users/00uvictim00000000001/lifecycle/suspend",
                    sim.base
                ))
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
        }
    };
    // Reading users is not managing them.
    let r = suspend(token("okta.users.read").await).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("okta.users.manage")
    );
    let user: Value = sim
        .get("/api/v1/users/00uvictim00000000001")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["status"], "ACTIVE", "nothing was done");
    let r = suspend(token("okta.users.manage").await).await;
    assert_eq!(r.status(), 200);
    let calls: Vec<Value> = sim.get("/sim/calls").await.json().await.unwrap();
    let statuses: Vec<u64> = calls
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [403, 200]);
}
