//! `factorwatch okta register-hook` and `factorwatch okta hooks`: the org's Event Hook, set up
//! through Okta's Event Hooks API (no clicking through the Admin Console), and listed.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::config::{Config, OrgConfig};
use crate::okta::client::{OktaClient, RetryPolicy};

/// The hook-eligible MFA event types a factorwatch hook subscribes to.
pub const HOOK_EVENT_TYPES: &[&str] = &[
    "user.mfa.factor.activate",
    "user.mfa.factor.deactivate",
    "user.mfa.factor.reset_all",
    "user.mfa.factor.update",
    "user.mfa.factor.suspend",
    "user.mfa.factor.unsuspend",
    "security.authenticator.lifecycle.activate",
    "security.authenticator.lifecycle.deactivate",
];

pub fn org<'a>(config: &'a Config, name: &str) -> Result<&'a OrgConfig, String> {
    config
        .orgs
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| format!("no org named {name:?} in the configuration"))
}

pub fn client(
    org: &OrgConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<OktaClient, String> {
    crate::daemon::okta_client(org, env, RetryPolicy::default()).map_err(|e| e.to_string())
}

fn write_secret(path: &Path, secret: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write the hook secret to {}: {e}", path.display()))?;
    f.write_all(secret.as_bytes())
        .map_err(|e| format!("cannot write the hook secret to {}: {e}", path.display()))
}

/// Creates the hook (with a new shared secret, written to the org's `hook.secret_file`), asks
/// Okta to verify it (factorwatch must be running and reachable at `url`), and reports.
pub async fn register_hook(
    config: &Config,
    org_name: &str,
    url: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    out: &mut impl Write,
) -> Result<(), String> {
    let org = org(config, org_name)?;
    let hook = org.hook.as_ref().ok_or_else(|| {
        format!("orgs ({org_name}): add an [orgs.hook] table (path, secret_file) first")
    })?;
    let secret_file = hook.secret_file.as_ref().ok_or_else(|| {
        format!("orgs ({org_name}).hook: register-hook writes the new secret to secret_file; set it (secret_env cannot be written)")
    })?;
    let client = client(org, env)?;
    let secret: String = {
        use rand::RngCore;
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    };
    let body = json!({
        "name": format!("factorwatch ({org_name})"),
        "events": { "type": "EVENT_TYPE", "items": HOOK_EVENT_TYPES },
        "channel": { "type": "HTTP", "version": "1.0.0", "config": {
            "uri": url,
            "authScheme": { "type": "HEADER", "key": hook.auth_header, "value": secret },
        }},
    });
    let created = client
        .post("/api/v1/eventHooks", &body.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let created: Value = serde_json::from_str(&created.body).map_err(|e| e.to_string())?;
    let id = created["id"]
        .as_str()
        .ok_or("Okta's answer has no hook id")?
        .to_owned();
    write_secret(secret_file, &secret)?;
    writeln!(
        out,
        "created Event Hook {id}; its secret is in {}",
        secret_file.display()
    )
    .map_err(|e| e.to_string())?;
    let verified = client
        .post(&format!("/api/v1/eventHooks/{id}/lifecycle/verify"), "{}")
        .await
        .map_err(|e| {
            format!(
                "Okta could not verify {url} (is factorwatch running there, with this secret?): {e}"
            )
        })?;
    let verified: Value = serde_json::from_str(&verified.body).map_err(|e| e.to_string())?;
    writeln!(
        out,
        "verified: {} {}; restart factorwatch so it uses the new secret",
        verified["status"].as_str().unwrap_or("?"),
        verified["verificationStatus"].as_str().unwrap_or("?")
    )
    .map_err(|e| e.to_string())
}

/// The org's Event Hooks, one per line.
pub async fn list_hooks(
    config: &Config,
    org_name: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    out: &mut impl Write,
) -> Result<(), String> {
    let client = client(org(config, org_name)?, env)?;
    let page = client
        .get("/api/v1/eventHooks")
        .await
        .map_err(|e| e.to_string())?;
    let hooks: Vec<Value> = serde_json::from_str(&page.body).map_err(|e| e.to_string())?;
    let line = |out: &mut dyn io::Write, h: &Value| {
        writeln!(
            out,
            "{}  {:<8} {:<10} {}  ({} event types)",
            h["id"].as_str().unwrap_or("?"),
            h["status"].as_str().unwrap_or("?"),
            h["verificationStatus"].as_str().unwrap_or("?"),
            h["channel"]["config"]["uri"].as_str().unwrap_or("?"),
            h["events"]["items"].as_array().map_or(0, Vec::len)
        )
    };
    if hooks.is_empty() {
        writeln!(out, "no Event Hooks").map_err(|e| e.to_string())?;
    }
    for h in &hooks {
        line(out, h).map_err(|e| e.to_string())?;
    }
    Ok(())
}
