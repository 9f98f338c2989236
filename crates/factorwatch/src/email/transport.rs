//! Where notices go: an SMTP relay (lettre; STARTTLS required by default or implicit TLS, AUTH,
//! pooled connections, timeouts, a messages-per-second limit), `.eml` files (the embedded
//! default), or nowhere (dry run: rendered and logged, not sent).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Mutex;

use crate::config::{EmailConfig, EmailTransport, SmtpSecurity, read_secret};
use crate::secret::Secret;

/// Why the configured transport could not be set up (the configuration was valid: the
/// environment — a secret, a file, a folder — is not).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Secret(#[from] crate::config::ConfigError),
    #[error("email: cannot use {path}: {detail}")]
    Io { path: String, detail: String },
    #[error("email: {0}")]
    Setup(String),
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The way out is down or refuses us — connection refused or dropped, a timeout, a 4xx
    /// ("try later"), a refused login, a full disk for `.eml` files: every message waits, and no
    /// attempt is counted, so an outage of any length dead-letters nothing.
    Unavailable(String),
    /// A 5xx for this message (the recipient does not exist, the content is refused): retrying
    /// it cannot help.
    Refused(String),
}

/// What an SMTP failure means. Only a 5xx answer to this message refuses it; a 5xx to our login
/// (530, 534, 535, 538) is the relay refusing us, and every other failure (4xx, network, TLS,
/// timeouts) is the relay being unavailable.
pub fn smtp_failure(code: Option<u16>, permanent: bool, detail: String) -> SendError {
    match code {
        Some(530 | 534 | 535 | 538) => {
            SendError::Unavailable(format!("the SMTP relay refused our login: {detail}"))
        }
        Some(500..=599) if permanent => {
            SendError::Refused(format!("the SMTP relay refused the message: {detail}"))
        }
        _ => SendError::Unavailable(format!("SMTP: {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_5xx_for_the_message_refuses_it() {
        let d = || "x".to_owned();
        assert!(matches!(
            smtp_failure(Some(550), true, d()),
            SendError::Refused(_)
        ));
        for (code, permanent) in [
            (Some(535), true),
            (Some(530), true),
            (Some(451), false),
            (Some(421), false),
            (None, false),
        ] {
            assert!(
                matches!(
                    smtp_failure(code, permanent, d()),
                    SendError::Unavailable(_)
                ),
                "{code:?}"
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Port 587, STARTTLS required (never opportunistic: a downgrade would expose AUTH).
    StartTls,
    /// Port 465, TLS from the first byte.
    Implicit,
    /// No TLS at all: only for a relay on this machine.
    None,
}

pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, Secret)>,
    /// PEM CA certificates to trust instead of the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
    pub pool_size: u32,
    /// Messages per second at most (0: unlimited).
    pub rate: f64,
}

pub enum Transport {
    Smtp {
        relay: AsyncSmtpTransport<Tokio1Executor>,
        min_gap: Duration,
        last: Mutex<Option<Instant>>,
    },
    Files(PathBuf),
    DryRun,
}

impl Transport {
    /// The transport `[email]` configures; `env` reads the SMTP password.
    pub fn from_config(
        c: &EmailConfig,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Transport, TransportError> {
        let io = |path: &std::path::Path, e: std::io::Error| TransportError::Io {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        match (c.transport, &c.smtp) {
            (EmailTransport::DryRun, _) => Ok(Transport::DryRun),
            (EmailTransport::Files, _) => {
                Transport::files(c.dir.clone()).map_err(|e| io(&c.dir, e))
            }
            (EmailTransport::Smtp, None) => Err(TransportError::Setup(
                "email.smtp is required when email.transport = \"smtp\"".into(),
            )),
            (EmailTransport::Smtp, Some(s)) => {
                let security = match s.security {
                    SmtpSecurity::Starttls => Security::StartTls,
                    SmtpSecurity::Implicit => Security::Implicit,
                    SmtpSecurity::None => Security::None,
                };
                let credentials = match &s.username {
                    Some(user) => Some((
                        user.clone(),
                        read_secret(
                            "email.smtp password",
                            s.password_env.as_deref(),
                            s.password_file.as_deref(),
                            env,
                        )?,
                    )),
                    None => None,
                };
                let ca_pem = s
                    .ca_file
                    .as_ref()
                    .map(|p| std::fs::read(p).map_err(|e| io(p, e)))
                    .transpose()?;
                Transport::smtp(SmtpSettings {
                    host: s.host.clone(),
                    port: s.port.unwrap_or(match security {
                        Security::StartTls => 587,
                        Security::Implicit => 465,
                        Security::None => 25,
                    }),
                    security,
                    credentials,
                    ca_pem,
                    timeout: s.timeout,
                    pool_size: s.pool_size,
                    rate: s.rate,
                })
            }
        }
    }

    pub fn smtp(s: SmtpSettings) -> Result<Transport, TransportError> {
        let tls = || -> Result<TlsParameters, TransportError> {
            let mut b = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_pem {
                use rustls_pki_types::CertificateDer;
                use rustls_pki_types::pem::PemObject;
                for der in CertificateDer::pem_slice_iter(pem) {
                    let der = der.map_err(|e| {
                        TransportError::Setup(format!(
                            "the SMTP CA file is not PEM certificates: {e}"
                        ))
                    })?;
                    let cert = lettre::transport::smtp::client::Certificate::from_der(der.to_vec())
                        .map_err(|e| {
                            TransportError::Setup(format!(
                                "the SMTP CA file holds an unusable certificate: {e}"
                            ))
                        })?;
                    b = b.add_root_certificate(cert);
                }
            }
            b.build_rustls()
                .map_err(|e| TransportError::Setup(format!("SMTP TLS settings: {e}")))
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .timeout(Some(s.timeout))
            .pool_config(PoolConfig::new().max_size(s.pool_size.max(1)));
        let builder = match s.security {
            Security::StartTls => builder.tls(Tls::Required(tls()?)),
            Security::Implicit => builder.tls(Tls::Wrapper(tls()?)),
            Security::None => builder.tls(Tls::None),
        };
        let builder = match s.credentials {
            Some((user, password)) => {
                builder.credentials(Credentials::new(user, password.expose().to_owned()))
            }
            None => builder,
        };
        Ok(Transport::Smtp {
            relay: builder.build(),
            min_gap: if s.rate > 0.0 {
                Duration::from_secs_f64(1.0 / s.rate)
            } else {
                Duration::ZERO
            },
            last: Mutex::new(None),
        })
    }

    pub fn files(dir: PathBuf) -> std::io::Result<Transport> {
        std::fs::create_dir_all(&dir)?;
        Ok(Transport::Files(dir))
    }

    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        match self {
            Transport::Smtp {
                relay,
                min_gap,
                last,
            } => {
                if !min_gap.is_zero() {
                    let mut last = last.lock().await;
                    if let Some(at) = *last {
                        let wait = (at + *min_gap).saturating_duration_since(Instant::now());
                        tokio::time::sleep(wait).await;
                    }
                    *last = Some(Instant::now());
                }
                relay.send(message.clone()).await.map(drop).map_err(|e| {
                    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
                    smtp_failure(code, e.is_permanent(), e.to_string())
                })
            }
            // A folder that cannot be written (full disk, permissions) is a destination down.
            Transport::Files(dir) => drop_file(dir, &message.formatted())
                .await
                .map_err(|e| SendError::Unavailable(format!("cannot write the message: {e}"))),
            Transport::DryRun => Ok(()),
        }
    }

    /// Connects (and logs in) without sending: for `factorwatch check`.
    pub async fn check(&self) -> crate::health::Health {
        use crate::health::Unhealthy;
        match self {
            Transport::Smtp { relay, .. } => match relay.test_connection().await {
                Ok(true) => Ok("SMTP relay accepts our connection".into()),
                Ok(false) => Err(Unhealthy(
                    "the SMTP relay did not answer as expected".into(),
                )),
                Err(e) => Err(Unhealthy(format!("SMTP: {e}"))),
            },
            // A message can be written there (and is removed again).
            Transport::Files(dir) => {
                let probe = dir.join(".factorwatch-check.tmp");
                tokio::fs::write(&probe, b"check").await.map_err(|e| {
                    Unhealthy(format!("cannot write .eml files to {}: {e}", dir.display()))
                })?;
                let _ = tokio::fs::remove_file(&probe).await;
                Ok(format!("writing .eml files to {}", dir.display()))
            }
            Transport::DryRun => Ok("dry run: nothing is sent".into()),
        }
    }

    pub fn is_dry_run(&self) -> bool {
        matches!(self, Transport::DryRun)
    }
}

/// Writes one message as `<random>.eml`: aside first, synced, then renamed into place, so a crash
/// never leaves half a message.
async fn drop_file(dir: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use rand::RngCore;
    use tokio::io::AsyncWriteExt;
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, dir.join(format!("{name}.eml"))).await
}
