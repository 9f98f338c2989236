//! HTTP, both ways, hardened once for every caller: [`client`] (no redirects, timeouts, bounded
//! answers) and [`server`] (header and connection limits, a shutdown with a deadline).

pub mod client;
pub mod server;
