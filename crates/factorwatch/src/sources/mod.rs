//! Where Okta events come in: the System Log and Events API pollers, and the Event Hook receiver.

pub mod group;
pub mod hook;
pub mod idle;
pub mod poller;
