//! Where notices go: an SMTP relay ([`super::smtp`]: STARTTLS required by default or implicit
//! TLS, AUTH, pooled connections with `TCP_NODELAY`, timeouts, a messages-per-second limit), `.eml` files (the embedded
//! default), or nowhere (dry run: rendered and logged, not sent).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::transport::smtp::client::TlsParameters;
use tokio::sync::Mutex;

use super::smtp::{Pool, Secure};

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
        relay: Box<Pool>,
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
        let secure = match s.security {
            Security::StartTls => Secure::StartTls(tls()?),
            Security::Implicit => {
                let config = crate::http::tls::client_config(s.ca_pem.as_deref())
                    .map_err(|e| TransportError::Setup(format!("SMTP TLS settings: {e}")))?;
                let name = rustls_pki_types::ServerName::try_from(s.host.clone()).map_err(|e| {
                    TransportError::Setup(format!(
                        "email.smtp.host {:?} is not a valid TLS server name: {e}",
                        s.host
                    ))
                })?;
                Secure::Implicit {
                    connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
                    name,
                }
            }
            Security::None => Secure::None,
        };
        let relay = Pool::new(
            s.host.clone(),
            s.port,
            secure,
            s.credentials,
            s.timeout,
            s.pool_size,
        );
        Ok(Transport::Smtp {
            relay: Box::new(relay),
            min_gap: if s.rate > 0.0 {
                Duration::from_secs_f64(1.0 / s.rate)
            } else {
                Duration::ZERO
            },
            last: Mutex::new(None),
        })
    }

    /// Messages it can send at once: the SMTP pool's connections (the others have no limit).
    pub fn connections(&self) -> u32 {
        match self {
            Transport::Smtp { relay, .. } => relay.size(),
            Transport::Files(_) | Transport::DryRun => u32::MAX,
        }
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
                relay.send(message).await
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
            Transport::Smtp { relay, .. } => match relay.check().await {
                Ok(()) => Ok("SMTP relay accepts our connection".into()),
                Err(SendError::Unavailable(e) | SendError::Refused(e)) => Err(Unhealthy(e)),
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
