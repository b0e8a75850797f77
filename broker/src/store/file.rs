//! Opening, checking and compacting the database file.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::StoreError;
use super::tables::{self, FORMAT, FORMAT_KEY, META};

pub const FILE_NAME: &str = "tern.redb";

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

fn builder(cache_size: usize) -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(cache_size);
    b
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path },
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::Corrupt {
                path,
                what: format!("not a Tern store ({io})"),
            }
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)) => StoreError::Corrupt { path, what },
        redb::DatabaseError::Storage(redb::StorageError::Io(source)) => StoreError::Io { path, source },
        other => StoreError::Corrupt {
            path,
            what: other.to_string(),
        },
    }
}

/// Opens the store under `data_dir`, creating the folder and the file when
/// they do not exist. A file that is there but unreadable is an error, never
/// replaced: starting empty would silently lose what was acknowledged.
pub fn open_or_create(data_dir: &Path, cache_size: usize) -> Result<Database, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = db_path(data_dir);
    let exists = path.exists();
    if exists {
        // A file cut short (a copy interrupted, a full disk at creation)
        // is not a database; redb would otherwise take a zero-length file
        // for a fresh one.
        let len = std::fs::metadata(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if len == 0 {
            return Err(StoreError::Corrupt {
                path,
                what: "the file is empty".into(),
            });
        }
    }
    let db = open_catching_panics(&path, || {
        if exists {
            builder(cache_size).open(&path)
        } else {
            builder(cache_size).create(&path)
        }
    })?;
    let tx = db.begin_write().map_err(|e| corrupt(&path, e))?;
    tables::create_all(&tx).map_err(|e| corrupt(&path, e))?;
    let format = tx
        .open_table(META)
        .and_then(|t| Ok(t.get(FORMAT_KEY)?.map(|v| v.value())))
        .map_err(|e| corrupt(&path, e))?;
    if format != Some(FORMAT) {
        return Err(StoreError::Corrupt {
            path,
            what: format!("store format {format:?}; this Tern reads format {FORMAT}"),
        });
    }
    tx.commit().map_err(|e| corrupt(&path, e))?;
    Ok(db)
}

/// Opens a file known to be a store, after a failed commit.
pub fn open_existing(path: &Path, cache_size: usize) -> Result<Database, StoreError> {
    open_catching_panics(path, || builder(cache_size).open(path))
}

/// redb checks its invariants with assertions in places; a file damaged in
/// a way it does not expect must still end in an error message naming the
/// file, not a crash.
fn open_catching_panics(
    path: &Path,
    open: impl FnOnce() -> Result<Database, redb::DatabaseError>,
) -> Result<Database, StoreError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(open_error(path, e)),
        Err(_) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "the database engine failed reading it".into(),
        }),
    }
}

pub fn corrupt(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Io(source) => StoreError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => StoreError::Corrupt {
            path: path.to_path_buf(),
            what: other.to_string(),
        },
    }
}

/// What `tern store check` reports.
#[derive(Debug, Default)]
pub struct Summary {
    pub file_bytes: u64,
    pub sessions: u64,
    pub subscriptions: u64,
    pub deliveries: u64,
    pub messages: u64,
    pub retained: u64,
}

/// Verifies the file's checksums and that every record decodes.
pub fn check(data_dir: &Path, cache_size: usize) -> Result<Summary, StoreError> {
    let path = db_path(data_dir);
    if !path.exists() {
        return Err(StoreError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store file"),
        });
    }
    let mut db = open_or_create(data_dir, cache_size)?;
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.check_integrity()));
    match ok {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(StoreError::Corrupt {
                path,
                what: "checksums do not match; the file was repaired from its last good commit".into(),
            });
        }
        Ok(Err(e)) => return Err(open_error(&path, e)),
        Err(_) => {
            return Err(StoreError::Corrupt {
                path,
                what: "the integrity check failed".into(),
            });
        }
    }
    // Decoding everything is what the broker does at startup.
    let snapshot = super::load::load(&db, &path)?;
    let tx = db.begin_read().map_err(|e| corrupt(&path, e))?;
    let count = |t: Result<u64, redb::StorageError>| t.map_err(|e| corrupt(&path, e));
    let subscriptions = count(
        tx.open_table(tables::SUBSCRIPTIONS)
            .map_err(|e| corrupt(&path, e))?
            .len(),
    )?;
    let messages = count(tx.open_table(tables::MESSAGES).map_err(|e| corrupt(&path, e))?.len())?;
    Ok(Summary {
        file_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        sessions: snapshot.sessions.len() as u64,
        subscriptions,
        deliveries: snapshot.sessions.iter().map(|s| s.deliveries.len() as u64).sum(),
        messages,
        retained: snapshot.retained.len() as u64,
    })
}

/// Compacts the file; its size before and after.
pub fn compact(data_dir: &Path, cache_size: usize) -> Result<(u64, u64), StoreError> {
    let path = db_path(data_dir);
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let mut db = open_or_create(data_dir, cache_size)?;
    while db
        .compact(redb::CompactionMode::Balanced)
        .map_err(|e| corrupt(&path, e))?
    {}
    drop(db);
    Ok((before, size()))
}

/// Files smaller than this are never compacted at startup.
const COMPACT_MIN_BYTES: u64 = 8 << 20;

/// Compacts at startup when the file is mostly free pages (after a burst
/// of queued messages drained): an SD card should not keep a 1 GiB file
/// for 10 MiB of data. Never on the hot path.
pub fn compact_if_worthwhile(db: &mut Database, path: &Path, live_bytes: i64) -> Result<(), StoreError> {
    let before = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let live = u64::try_from(live_bytes).unwrap_or(0);
    if before < COMPACT_MIN_BYTES || before < live.saturating_mul(3) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    while db
        .compact(redb::CompactionMode::Balanced)
        .map_err(|e| corrupt(path, e))?
    {}
    let after = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    tracing::info!(path = %path.display(), before, after, took_ms = started.elapsed().as_millis() as u64, "store compacted");
    Ok(())
}
