//! The way from Okta events to deliveries: classify and route ([`ingest`], [`route`]), then
//! deliver from the outbox ([`worker`]).

pub mod ingest;
pub mod route;
pub mod worker;
