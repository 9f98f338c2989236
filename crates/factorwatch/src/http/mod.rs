//! HTTP, both ways, hardened once for every caller: [`client`] (no redirects, timeouts, bounded
//! answers) and [`server`] (header and connection limits, a shutdown with a deadline); [`tls`],
//! the TLS client settings the connections that are not HTTP share.

pub mod client;
pub mod server;
pub mod tls;
