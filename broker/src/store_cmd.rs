//! `tern store check` and `tern store compact`.

use std::path::Path;

use anyhow::{Context, bail};
use tern::config::{Config, StoreEngine};

use super::StoreAction;

pub fn run(config_path: Option<&Path>, action: &StoreAction) -> anyhow::Result<()> {
    let config = match config_path {
        Some(p) => Config::load(p)?,
        None => Config::embedded_default(),
    };
    let store = &config.store;
    if store.engine == StoreEngine::Memory {
        bail!("[store] engine is \"memory\": there is no store file to work on");
    }
    let cache = usize::try_from(store.cache_size).unwrap_or(usize::MAX);
    let path = tern::store::db_path(&store.data_dir);
    match action {
        StoreAction::Check { .. } => {
            let s = tern::store::check(&store.data_dir, cache)?;
            println!(
                "{}: ok\n  file bytes     {}\n  sessions       {}\n  subscriptions  {}\n  queued         {}\n  messages       {}\n  retained       {}",
                path.display(),
                s.file_bytes,
                s.sessions,
                s.subscriptions,
                s.deliveries,
                s.messages,
                s.retained
            );
        }
        StoreAction::Compact { .. } => {
            let (before, after) = tern::store::compact(&store.data_dir, cache)
                .with_context(|| format!("cannot compact {}", path.display()))?;
            println!("{}: {before} -> {after} bytes", path.display());
        }
    }
    Ok(())
}
