//! Durable state: persistent sessions, their subscriptions and queued
//! QoS 1/2 messages, inbound QoS 2 identifiers awaiting PUBREL, retained
//! messages and delayed wills, kept in one redb file so a kill -9 or a power
//! cut loses nothing that was acknowledged.
//!
//! The broker keeps working from memory; every change to state that must
//! survive is also submitted here as an [`Op`](tables::Op) and committed in
//! groups by one thread ([`writer`]). An acknowledgement that promises a
//! message is stored waits for the number its ops got to become durable
//! ([`Store::poll_durable`]); everything else flows without waiting. With
//! the `memory` engine a [`Store`] is empty and every call is a no-op.

mod file;
mod load;
mod records;
mod tables;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;

pub use file::{FILE_NAME, Summary, check, compact, db_path};
pub use load::{Snapshot, StoredSession};
pub use records::{DeliveryRecord, SessionRecord, decode_message, encode_message, unix_ms};

use crate::config::{Durability, StoreConfig, StoreEngine};
use crate::router::{Message, Subscription};
use tables::Op;
use writer::{Writer, WriterSettings};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "store {path} is corrupt: {what}. Tern will not start on it rather than start empty and lose what it acknowledged; run `tern store check` for details, then restore a backup or move the file away"
    )]
    Corrupt { path: PathBuf, what: String },
    #[error("store {path} is in use by another process (another tern on the same data_dir?)")]
    InUse { path: PathBuf },
    #[error("{0}")]
    Record(String),
}

impl StoreError {
    fn in_file(self, path: &std::path::Path) -> StoreError {
        match self {
            StoreError::Record(what) => StoreError::Corrupt {
                path: path.to_path_buf(),
                what,
            },
            other => other,
        }
    }
}

/// Bytes a delivery record takes, key included, for `max_bytes`.
fn delivery_weight(client: &str) -> i64 {
    i64::try_from(client.len() + 8 + records::DELIVERY_LEN + 16).unwrap_or(i64::MAX)
}

/// The broker's handle on the store; cheap to clone. Every method returns
/// the number of the op it submitted, for [`Store::poll_durable`], or 0
/// when the acknowledgement that depends on it need not wait (memory
/// engine, `durability = "none"`).
#[derive(Debug, Clone, Default)]
pub struct Store {
    writer: Option<Arc<Writer>>,
}

/// A message's record in the store, deleted when the last delivery holding
/// the message lets go of it.
#[derive(Debug)]
pub struct StoredMsg {
    pub id: u64,
    bytes: i64,
    writer: Arc<Writer>,
}

impl StoredMsg {
    /// `record_len`: its record's bytes, for `max_bytes` (key and header
    /// added).
    fn new(id: u64, record_len: usize, writer: &Arc<Writer>) -> StoredMsg {
        StoredMsg {
            id,
            bytes: i64::try_from(record_len + 24).unwrap_or(i64::MAX),
            writer: writer.clone(),
        }
    }
}

impl Drop for StoredMsg {
    fn drop(&mut self) {
        self.writer.submit(Op::DelMessage(self.id));
        self.writer.forget_bytes(self.bytes);
    }
}

/// The running store: its handle, what it held at startup, and the commit
/// thread to join after [`Store::close`].
pub struct Opened {
    pub store: Store,
    pub snapshot: Snapshot,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl Store {
    /// Opens (or creates) the store `config` names and reads it whole.
    pub fn open(config: &StoreConfig) -> Result<Opened, StoreError> {
        if config.engine == StoreEngine::Memory {
            return Ok(Opened {
                store: Store::default(),
                snapshot: Snapshot::default(),
                thread: None,
            });
        }
        let cache = usize::try_from(config.cache_size).unwrap_or(usize::MAX);
        let mut db = file::open_or_create(&config.data_dir, cache)?;
        let path = db_path(&config.data_dir);
        let snapshot = load::load(&db, &path)?;
        file::compact_if_worthwhile(&mut db, &path, snapshot.bytes)?;
        let (writer, thread) = Writer::start(
            db,
            WriterSettings {
                durability: config.durability,
                sync_interval: config.sync_interval,
                sync_batch: config.sync_batch,
                max_bytes: config.max_bytes,
                live_bytes: snapshot.bytes,
                next_message_id: snapshot.next_message_id,
                path: path.clone(),
                cache_size: cache,
            },
        )
        .map_err(|source| StoreError::Io { path, source })?;
        Ok(Opened {
            store: Store { writer: Some(writer) },
            snapshot,
            thread: Some(thread),
        })
    }

    pub fn is_persistent(&self) -> bool {
        self.writer.is_some()
    }

    /// Submits the op `op` builds (not built at all with the memory engine).
    fn submit(&self, op: impl FnOnce() -> Op) -> u64 {
        let Some(w) = &self.writer else { return 0 };
        let n = w.submit(op());
        if w.durability == Durability::None { 0 } else { n }
    }

    /// Whether op `n` is durable; if not, `waker` is woken when it is.
    pub fn poll_durable(&self, n: u64, waker: &Waker) -> bool {
        match &self.writer {
            Some(w) if n != 0 => w.poll_durable(n, waker),
            _ => true,
        }
    }

    /// Whether a message of `bytes` may be stored; counts a refusal when not.
    pub fn has_room(&self, bytes: usize) -> bool {
        match &self.writer {
            Some(w) => {
                let ok = w.has_room(bytes);
                if !ok {
                    w.refused.fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
            None => true,
        }
    }

    pub fn put_session(&self, client: &str, record: &SessionRecord) -> u64 {
        self.submit(|| Op::PutSession(client.into(), record.encode()))
    }

    /// Ends a stored session: its record, subscriptions, deliveries and
    /// inbound QoS 2 identifiers. `deliveries` is how many it had, for the
    /// byte estimate.
    pub fn del_session(&self, client: &str, deliveries: usize) -> u64 {
        if let Some(w) = &self.writer {
            w.forget_bytes(delivery_weight(client) * i64::try_from(deliveries).unwrap_or(0));
        }
        self.submit(|| Op::DelSession(client.into()))
    }

    pub fn put_subscription(&self, client: &str, filter: &str, sub: &Subscription) -> u64 {
        self.submit(|| Op::PutSubscription(client.into(), filter.into(), records::encode_subscription(sub)))
    }

    pub fn del_subscription(&self, client: &str, filter: &str) -> u64 {
        self.submit(|| Op::DelSubscription(client.into(), filter.into()))
    }

    /// Stores `msg` once, however many sessions queue it; its id.
    pub fn persist_message(&self, msg: &Message) -> u64 {
        let Some(w) = &self.writer else { return 0 };
        msg.stored
            .get_or_init(|| {
                let id = w.next_message_id.fetch_add(1, Ordering::Relaxed);
                let record = encode_message(msg);
                let stored = StoredMsg::new(id, record.len(), w);
                w.submit(Op::PutMessage(id, record));
                stored
            })
            .id
    }

    /// Ties a message read from the store to its record, so the record goes
    /// when the message does.
    pub fn adopt_message(&self, msg: &Message, id: u64, bytes: usize) {
        if let Some(w) = &self.writer {
            let _ = msg.stored.set(StoredMsg::new(id, bytes, w));
        }
    }

    pub fn del_message(&self, id: u64) -> u64 {
        self.submit(|| Op::DelMessage(id))
    }

    pub fn put_delivery(&self, client: &str, seq: u64, record: &DeliveryRecord) -> u64 {
        self.submit(|| Op::PutDelivery(client.into(), seq, record.encode()))
    }

    pub fn del_delivery(&self, client: &str, seq: u64) -> u64 {
        if let Some(w) = &self.writer {
            w.forget_bytes(delivery_weight(client));
        }
        self.submit(|| Op::DelDelivery(client.into(), seq))
    }

    pub fn put_incoming(&self, client: &str, packet_id: u16) -> u64 {
        self.submit(|| Op::PutIncoming(client.into(), packet_id))
    }

    pub fn del_incoming(&self, client: &str, packet_id: u16) -> u64 {
        self.submit(|| Op::DelIncoming(client.into(), packet_id))
    }

    pub fn put_retained(&self, msg: &Message) -> u64 {
        self.submit(|| Op::PutRetained(Box::from(&*msg.topic), encode_message(msg)))
    }

    /// `old` is the retained message the topic loses, for the byte estimate.
    pub fn del_retained(&self, topic: &str, old: Option<&Message>) -> u64 {
        if let (Some(w), Some(old)) = (&self.writer, old) {
            w.forget_bytes(i64::try_from(old.weight()).unwrap_or(0));
        }
        self.submit(|| Op::DelRetained(topic.into()))
    }

    /// A retained message replaced by another: its bytes no longer count.
    pub fn forget_retained(&self, old: &Message) {
        if let Some(w) = &self.writer {
            w.forget_bytes(i64::try_from(old.weight()).unwrap_or(0));
        }
    }

    /// Commits everything submitted so far and stops the commit thread.
    pub fn close(&self) {
        if let Some(w) = &self.writer {
            w.close();
        }
    }

    /// Counters for `$SYS`: commits, refusals, estimated bytes stored.
    pub fn stats(&self) -> Option<(u64, u64, u64)> {
        self.writer.as_ref().map(|w| {
            (
                w.commits.load(Ordering::Relaxed),
                w.refused.load(Ordering::Relaxed),
                w.live_bytes.load(Ordering::Relaxed).max(0).unsigned_abs(),
            )
        })
    }

    pub fn is_closed(&self) -> bool {
        self.writer.as_ref().is_none_or(|w| w.is_closed())
    }
}

#[cfg(test)]
mod model_tests;
