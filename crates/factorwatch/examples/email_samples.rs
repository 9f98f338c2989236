//! Writes the HTML part of the main notices to a folder, for screenshots and review:
//! `cargo run -p factorwatch --example email_samples -- docs/emails`.

use factorwatch::email::notice;
use factorwatch::email::templates::Templates;
use factorwatch::enrich::{Enrichment, FactorDetail};
use factorwatch::record::MfaChange;
use serde_json::json;

fn change(
    action: &str,
    factor: serde_json::Value,
    initiator: &str,
    actor: &str,
) -> Result<MfaChange, serde_json::Error> {
    serde_json::from_value(json!({
        "id": "e1", "source": "system_log", "published": "2026-11-25T09:30:00.000Z",
        "event_type": "user.mfa.factor.activate", "legacy_event_type": null, "action": action, "outcome": "SUCCESS",
        "factor": factor,
        "user": { "id": "00u1", "login": "dade.murphy@example.com", "display_name": "Dade Murphy" },
        "actor": { "id": "00u9", "login": "jane.admin@example.com", "display_name": actor, "type": "User" },
        "initiator": initiator,
        "client": { "ip": "198.51.100.7", "user_agent": "Mozilla/5.0", "browser": "CHROME", "os": "Mac OS X", "city": "Paris", "state": null, "country": "France" },
        "reason": null, "message": null, "session_id": null
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs/emails".into());
    std::fs::create_dir_all(&dir)?;
    let sms = Enrichment {
        first_name: Some("Dade".into()),
        factor: Some(FactorDetail {
            factor_type: Some("sms".into()),
            phone_last4: Some("1234".into()),
            ..FactorDetail::default()
        }),
        ..Enrichment::default()
    };
    let push = Enrichment {
        first_name: Some("Dade".into()),
        factor: Some(FactorDetail {
            factor_type: Some("push".into()),
            device_name: Some("Gibson".into()),
            platform: Some("IOS".into()),
            ..FactorDetail::default()
        }),
        ..Enrichment::default()
    };
    let plain = Enrichment {
        first_name: Some("Dade".into()),
        ..Enrichment::default()
    };
    let f = |t: &str, p: &str, n: &str| json!({ "type": t, "provider": p, "name": n, "okta_authoritative": true, "phone_last4": null });
    let none = json!({ "type": null, "provider": null, "name": null, "okta_authoritative": null, "phone_last4": null });
    let cases = [
        (
            "enrolled-sms",
            change("enrolled", f("sms", "OKTA", "SMS"), "self", "Dade Murphy")?,
            sms.clone(),
            "en",
        ),
        (
            "enrolled-push",
            change(
                "enrolled",
                f("push", "OKTA", "Okta Verify"),
                "self",
                "Dade Murphy",
            )?,
            push,
            "en",
        ),
        (
            "admin-reset-all",
            change("reset_all", none.clone(), "admin", "Jane Admin")?,
            plain.clone(),
            "en",
        ),
        (
            "bypass-attempted",
            change("bypass_attempted", none.clone(), "self", "Dade Murphy")?,
            plain.clone(),
            "en",
        ),
        (
            "admin-reset-all-fr",
            change("reset_all", none, "admin", "Jane Admin")?,
            plain,
            "fr",
        ),
    ];
    let templates = Templates::new(None, "en");
    for (name, c, e, language) in cases {
        let n = notice::notice(
            &[(c, e)],
            &["dade.murphy@example.com".into()],
            "Acme Corp",
            "call the IT help desk at +1 555 0100, or report it at https://help.example.com/report.",
            &[],
        );
        let r = templates.render(language, &n)?;
        std::fs::write(format!("{dir}/{name}.html"), r.html)?;
    }
    Ok(())
}
