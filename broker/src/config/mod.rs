//! Broker configuration: the `tern.toml` schema, its loader and its checks.
//!
//! - [`units`]: readable sizes ("256KiB") and durations ("1h30m").
//! - `schema`: the structs the rest of the broker reads.
//! - `load`: TOML text or file to a validated [`Config`], with errors that
//!   name the file and key.
//! - `validate`: semantic checks and operator warnings.
//!
//! Typical use:
//!
//! ```no_run
//! # use std::path::Path;
//! let config = tern::config::Config::load(Path::new("tern.toml"))?;
//! for warning in config.warnings() {
//!     eprintln!("warning: {warning}");
//! }
//! # Ok::<(), tern::config::ConfigError>(())
//! ```

mod error;
mod load;
mod schema;
pub mod units;
mod validate;

pub use error::{ConfigError, Location};
pub use load::DEFAULT_CONFIG_TOML;
pub use schema::{
    AuthConfig, Config, Durability, JwtConfig, Limits, ListenerConfig, ListenerProtocol, LogConfig, LogFormat,
    OnFailure, RuntimeConfig, StoreConfig, StoreEngine, SysConfig, TokenIn, WebhookConfig, WebhookHook,
};
pub use units::{ByteSize, HumanDuration};
