//! The way from Okta events to deliveries: classify and route ([`ingest`], [`route`]), find the
//! sequences ([`detection`]), then deliver from the outbox ([`worker`]).

pub mod detection;
pub mod ingest;
pub mod route;
pub mod worker;
