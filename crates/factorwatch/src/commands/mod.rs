//! The `factorwatch` subcommands, as library functions over readers and writers so that tests can
//! drive them without a process.

pub mod backfill;
pub mod check;
pub mod classify;
pub mod cursor;
pub mod demo;
pub mod okta;
pub mod outbox;
pub mod render_email;
pub mod run;
