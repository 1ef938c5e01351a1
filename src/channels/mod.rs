//! Customer channels beside REST: where customers write from and where agents' answers go.
//!
//! - [`files`]: the files agents send, kept bounded beside the store.
//! - [`messenger`]: Facebook Messenger: the signed webhook in, the Send API out through a
//!   durable outbox, customer names from the User Profile API.
//!
//! # Architecture invariant
//! A channel turns what arrives into [`crate::core::Command`]s and carries out the
//! outbox entries the core decided on; the rules (the 24-hour window, which message ids
//! were seen, delivery states) are the core's. Nothing here holds state that a restart
//! would need: the outbox, message ids and names are in the store.

pub mod files;
pub mod messenger;
