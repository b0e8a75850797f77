//! Tern: a lean MQTT broker for edge hardware.
//!
//! Layout (one job per module):
//! - [`codec`]: MQTT 3.1/3.1.1/5.0 packets on the wire; knows nothing else.
//! - [`config`]: `tern.toml` schema, loading and validation.
//! - [`topic`]: topic names, filters and the subscription tree.
pub mod codec;
pub mod config;
pub mod topic;
