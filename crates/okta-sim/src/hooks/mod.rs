//! Event Hooks: the registry the management API edits ([`registry`]) and how Okta calls a hook
//! ([`delivery`]).

pub mod delivery;
pub mod registry;
