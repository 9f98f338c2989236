//! What a healthcheck says: what it checked, or why the destination is not healthy. Every sink,
//! the email transport and the chat webhooks answer in these terms, and `factorwatch check`
//! prints them.

/// Why a destination failed its healthcheck.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

impl From<String> for Unhealthy {
    fn from(s: String) -> Unhealthy {
        Unhealthy(s)
    }
}

/// What was checked, or why it failed.
pub type Health = Result<String, Unhealthy>;
