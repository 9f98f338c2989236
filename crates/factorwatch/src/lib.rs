//! factorwatch: tells users and the security team's SIEM, at once, when an Okta MFA factor is
//! enrolled, changed or reset.
//!
//! - [`okta`]: Okta's wire formats and factor vocabulary.
//! - [`classify`]: any Okta event in, an [`record::MfaChange`] or nothing out (pure).
//! - [`record`]: the normalized MFA change record, a public contract (`docs/record.md`).
//! - [`input`]: splitting input documents (single event, array, NDJSON) into values (pure).
//! - [`commands`]: the command-line subcommands over readers and writers.

pub mod backoff;
pub mod chat;
pub mod classify;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod email;
pub mod enrich;
pub mod formats;
pub mod health;
pub mod http;
pub mod input;
pub mod observability;
pub mod okta;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod secret;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod ticks;
pub mod untrusted;
pub mod web;
