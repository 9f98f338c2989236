//! SIEM destinations. Each is an outbox [`Destination`](crate::pipeline::worker::Destination).

pub mod file;
