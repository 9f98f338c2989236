//! `factorwatch okta register-hook` and `factorwatch okta hooks`: the org's Event Hook, set up
//! through Okta's Event Hooks API (no clicking through the Admin Console), and listed.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::config::{Config, OrgConfig};
use crate::okta::client::{OktaClient, RetryPolicy};

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

/// Writes the secret so that only its owner can read it: into a new file beside `path`, created
/// 0600 and synced, then renamed over it — an existing file, whatever its mode was, is replaced
/// by one that is 0600, and a crash leaves the old secret or the new one, never half of one.
fn write_secret(path: &Path, secret: &str) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail =
        |e: std::io::Error| format!("cannot write the hook secret to {}: {e}", path.display());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hook-secret".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    // The mode given at creation passes through the umask; set it outright.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    f.write_all(secret.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// Creates the hook and asks Okta to verify it. Okta's verification carries the shared secret
/// and factorwatch answers it only with that secret, so the hook gets the secret factorwatch
/// already uses (the org's `hook.secret_env` or `hook.secret_file`, the file made 0600 if it was
/// not). With a `secret_file` that does not exist yet, a new secret is written there (0600) and
/// nothing else happens: start factorwatch so it reads it, then run this again.
pub async fn register_hook(
    config: &Config,
    org_name: &str,
    url: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    out: &mut impl Write,
) -> Result<(), String> {
    let org = org(config, org_name)?;
    let hook = org.hook.as_ref().ok_or_else(|| {
        format!(
            "orgs ({org_name}): add an [orgs.hook] table (path, secret_env or secret_file) first"
        )
    })?;
    if let Some(file) = &hook.secret_file {
        if !file.exists() {
            let secret: String = {
                use rand::RngCore;
                let mut b = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut b);
                b.iter().map(|x| format!("{x:02x}")).collect()
            };
            write_secret(file, &secret)?;
            return writeln!(
                out,
                "wrote a new hook secret to {} (mode 0600); start or restart factorwatch so it reads it, then run this command again to create and verify the hook",
                file.display()
            )
            .map_err(|e| e.to_string());
        }
        restrict(file)?;
    }
    let secret = crate::config::read_secret(
        &format!("orgs ({org_name}).hook secret"),
        hook.secret_env.as_deref(),
        hook.secret_file.as_deref(),
        env,
    )
    .map_err(|e| e.to_string())?;
    let client = client(org, env)?;
    let body = json!({
        "name": format!("factorwatch ({org_name})"),
        "events": { "type": "EVENT_TYPE", "items": crate::okta::catalog::hook_subscription() },
        "channel": { "type": "HTTP", "version": "1.0.0", "config": {
            "uri": url,
            "authScheme": { "type": "HEADER", "key": hook.auth_header, "value": secret.expose() },
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
    writeln!(out, "created Event Hook {id} for {url}").map_err(|e| e.to_string())?;
    let verified = client
        .post(&format!("/api/v1/eventHooks/{id}/lifecycle/verify"), "{}")
        .await
        .map_err(|e| {
            format!(
                "Okta could not verify {url} (is factorwatch running there, with this org's hook secret?): {e}"
            )
        })?;
    let verified: Value = serde_json::from_str(&verified.body).map_err(|e| e.to_string())?;
    writeln!(
        out,
        "verified: {} {}",
        verified["status"].as_str().unwrap_or("?"),
        verified["verificationStatus"].as_str().unwrap_or("?")
    )
    .map_err(|e| e.to_string())
}

/// Makes an existing secret file readable by its owner only.
fn restrict(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make {} private (chmod 600): {e}", path.display()))
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
