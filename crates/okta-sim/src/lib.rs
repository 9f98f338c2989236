//! okta-sim: a simulated Okta org that follows Okta's documented API behaviour
//! (`shared/okta/API-NOTES.md`), for factorwatch's tests, demos and benchmarks.
//!
//! - [`logs`]: the System Log and `GET /api/v1/logs` (pure);
//! - [`filter`]: the SCIM `filter` parameter (pure);
//! - [`error`]: Okta's error bodies;
//! - [`server`]: the HTTP API (Okta's, under `/api/v1`, and the test control API under `/sim`).

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
