//! `factorwatch okta register-hook` and `factorwatch okta hooks`: the org's Event Hook, set up
//! through Okta's Event Hooks API (no clicking through the Admin Console), and listed.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};

use super::CommandError;
use crate::config::{Config, OrgConfig};
use crate::okta::client::{OktaClient, RetryPolicy};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, env = "FACTORWATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The org, by its name in the configuration (before the action: `okta --org acme hooks`).
    #[arg(long)]
    org: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Create, verify and activate an Event Hook for the MFA event types, posting to URL (where
    /// factorwatch's receiver is reachable), with the org's hook secret.
    RegisterHook {
        #[arg(long)]
        url: String,
    },
    /// List the org's Event Hooks.
    Hooks,
}

pub async fn main(args: Args) -> Result<(), CommandError> {
    let config = super::load_config(args.config.as_deref())?;
    let env = super::process_env;
    let mut out = io::stdout();
    match args.action {
        Action::RegisterHook { url } => {
            register_hook(&config, &args.org, &url, &env, &mut out).await
        }
        Action::Hooks => list_hooks(&config, &args.org, &env, &mut out).await,
    }
}

/// The org named `name` in the configuration.
pub fn org<'a>(config: &'a Config, name: &str) -> Result<&'a OrgConfig, CommandError> {
    config
        .orgs
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| CommandError::Usage(format!("no org named {name:?} in the configuration")))
}

fn client(
    org: &OrgConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<OktaClient, CommandError> {
    Ok(OktaClient::for_org(
        crate::okta::client::http_client()?,
        org,
        env,
        RetryPolicy::default(),
    )?)
}

fn written(e: io::Error) -> CommandError {
    CommandError::Io {
        what: "output".into(),
        source: e,
    }
}

fn okta_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, CommandError> {
    serde_json::from_str(body).map_err(|e| {
        CommandError::Answer(format!("Okta's answer is not what its API documents: {e}"))
    })
}

/// Writes the secret so that only its owner can read it: into a new file beside `path`, created
/// 0600 and synced, then renamed over it — an existing file, whatever its mode was, is replaced
/// by one that is 0600, and a crash leaves the old secret or the new one, never half of one.
fn write_secret(path: &Path, secret: &str) -> Result<(), CommandError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: std::io::Error| CommandError::Io {
        what: format!("cannot write the hook secret to {}", path.display()),
        source: e,
    };
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
) -> Result<(), CommandError> {
    let org = org(config, org_name)?;
    let hook = org.hook.as_ref().ok_or_else(|| {
        CommandError::Usage(format!(
            "orgs ({org_name}): add an [orgs.hook] table (path, secret_env or secret_file) first"
        ))
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
            .map_err(written);
        }
        restrict(file)?;
    }
    let secret = crate::config::read_secret(
        &format!("orgs ({org_name}).hook secret"),
        hook.secret_env.as_deref(),
        hook.secret_file.as_deref(),
        env,
    )?;
    let client = client(org, env)?;
    let body = json!({
        "name": format!("factorwatch ({org_name})"),
        "events": { "type": "EVENT_TYPE", "items": crate::okta::catalog::hook_subscription(config.detections.enabled) },
        "channel": { "type": "HTTP", "version": "1.0.0", "config": {
            "uri": url,
            "authScheme": { "type": "HEADER", "key": hook.auth_header, "value": secret.expose() },
        }},
    });
    let created = client.post("/api/v1/eventHooks", &body.to_string()).await?;
    let created: Value = okta_json(&created.body)?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| CommandError::Answer("Okta's answer has no hook id".into()))?
        .to_owned();
    writeln!(out, "created Event Hook {id} for {url}").map_err(written)?;
    let verified = client
        .post(&format!("/api/v1/eventHooks/{id}/lifecycle/verify"), "{}")
        .await
        .map_err(|e| {
            CommandError::Answer(format!(
                "Okta could not verify {url} (is factorwatch running there, with this org's hook secret?): {e}"
            ))
        })?;
    let verified: Value = okta_json(&verified.body)?;
    writeln!(
        out,
        "verified: {} {}",
        verified["status"].as_str().unwrap_or("?"),
        verified["verificationStatus"].as_str().unwrap_or("?")
    )
    .map_err(written)
}

/// Makes an existing secret file readable by its owner only.
fn restrict(path: &Path) -> Result<(), CommandError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        CommandError::Io {
            what: format!("cannot make {} private (chmod 600)", path.display()),
            source: e,
        }
    })
}

/// The org's Event Hooks, one per line.
pub async fn list_hooks(
    config: &Config,
    org_name: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let client = client(org(config, org_name)?, env)?;
    let page = client.get("/api/v1/eventHooks").await?;
    let hooks: Vec<Value> = okta_json(&page.body)?;
    if hooks.is_empty() {
        writeln!(out, "no Event Hooks").map_err(written)?;
    }
    for h in &hooks {
        writeln!(
            out,
            "{}  {:<8} {:<10} {}  ({} event types)",
            h["id"].as_str().unwrap_or("?"),
            h["status"].as_str().unwrap_or("?"),
            h["verificationStatus"].as_str().unwrap_or("?"),
            h["channel"]["config"]["uri"].as_str().unwrap_or("?"),
            h["events"]["items"].as_array().map_or(0, Vec::len)
        )
        .map_err(written)?;
    }
    Ok(())
}
