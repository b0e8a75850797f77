//! Guest-side SDK for Tern plugins.
//!
//! The contract between the broker and its plugins will live in one WIT
//! package under `wit/`; this crate will wrap its bindings so a plugin is a
//! trait implementation. Nothing is exported yet: the plugin host issue
//! brings the contract.
