//! okta-sim: a simulated Okta org that follows Okta's documented API behaviour
//! (`shared/okta/API-NOTES.md`), for factorwatch's tests, demos and benchmarks.
//!
//! - [`logs`]: the System Log and `GET /api/v1/logs`; [`filter`]: SCIM filters;
//! - [`legacy`]: the legacy Events API over the same log;
//! - [`directory`]: Users and Factors;
//! - [`oauth`]: `private_key_jwt` client credentials, access tokens, DPoP;
//! - [`hooks`]: Event Hook registry and delivery rules;
//! - [`rate`]: rate-limit buckets; [`faults`]: injected faults;
//! - [`scenario`]: the seeded generator of users and their log;
//! - [`error`]: Okta's error bodies;
//! - [`server`]: the HTTP side (Okta's API, the `/sim` control API) and background work.
//!
//! Apart from `server`, `hooks::delivery` (HTTP calls) and `oauth`'s random tokens, modules are pure:
//! the clock is passed in.

pub mod directory;
pub mod error;
pub mod faults;
pub mod filter;
pub mod hooks;
pub mod legacy;
pub mod logs;
pub mod oauth;
pub mod rate;
pub mod scenario;
pub mod server;

/// A fixed instant for unit tests.
#[cfg(test)]
pub(crate) fn test_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
}
