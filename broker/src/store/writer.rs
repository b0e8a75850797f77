//! Group commit: one thread owns the database's write side, takes every
//! change submitted since its last commit and commits them together.
//!
//! A change is numbered when submitted; once the commit holding it is
//! durable, [`Writer::durable`] reaches its number and the connections
//! waiting to acknowledge it are woken. Nothing here blocks a tokio
//! worker: submitting is a push under a short lock.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use redb::Database;

use crate::config::Durability;

use super::tables::{self, Op};

/// With `durability = "none"`, how often a commit is made durable anyway.
const NONE_SYNC_EVERY: Duration = Duration::from_secs(1);
/// How long a failed commit waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Pending {
    ops: Vec<Op>,
    /// Number of the last op submitted.
    last: u64,
    closing: bool,
}

pub struct Writer {
    pending: Mutex<Pending>,
    arrived: Condvar,
    /// Number of the last op whose commit is durable.
    durable: AtomicU64,
    waiters: Mutex<Vec<(u64, Waker)>>,
    pub durability: Durability,
    sync_interval: Duration,
    sync_batch: usize,
    /// Estimate of the bytes stored, against `max_bytes`.
    pub live_bytes: AtomicI64,
    pub max_bytes: u64,
    /// A commit failed (disk full, I/O error) and is being retried: store
    /// nothing new until it goes through.
    pub failing: AtomicBool,
    /// The file system is nearly full: store nothing new, so the commits
    /// that free space (acknowledged deliveries) still find room.
    pub low_disk: AtomicBool,
    pub commits: AtomicU64,
    pub refused: AtomicU64,
    pub next_message_id: AtomicU64,
    closed: AtomicBool,
    path: PathBuf,
    cache_size: usize,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

pub struct WriterSettings {
    pub durability: Durability,
    pub sync_interval: Duration,
    pub sync_batch: usize,
    pub max_bytes: u64,
    pub live_bytes: i64,
    pub next_message_id: u64,
    pub path: PathBuf,
    pub cache_size: usize,
}

impl Writer {
    /// Starts the commit thread on `db`.
    pub fn start(db: Database, s: WriterSettings) -> std::io::Result<(Arc<Writer>, std::thread::JoinHandle<()>)> {
        let w = Arc::new(Writer {
            pending: Mutex::new(Pending::default()),
            arrived: Condvar::new(),
            durable: AtomicU64::new(0),
            waiters: Mutex::new(Vec::new()),
            durability: s.durability,
            sync_interval: s.sync_interval,
            sync_batch: s.sync_batch.max(1),
            live_bytes: AtomicI64::new(s.live_bytes),
            max_bytes: s.max_bytes,
            failing: AtomicBool::new(false),
            low_disk: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            next_message_id: AtomicU64::new(s.next_message_id),
            closed: AtomicBool::new(false),
            path: s.path,
            cache_size: s.cache_size,
        });
        let thread = {
            let w = w.clone();
            std::thread::Builder::new()
                .name("tern-store".into())
                .spawn(move || w.run(db))?
        };
        Ok((w, thread))
    }

    /// Queues `op`; its number, for [`Writer::durable`].
    pub fn submit(&self, op: Op) -> u64 {
        self.live_bytes.fetch_add(op.weight(), Ordering::Relaxed);
        let mut p = self.pending.lock();
        if p.closing {
            // After the final commit (a message dropped as the broker's
            // state is torn down): nothing more is written.
            return 0;
        }
        p.ops.push(op);
        p.last += 1;
        let n = p.ops.len();
        let last = p.last;
        drop(p);
        if n == 1 || n == self.sync_batch {
            self.arrived.notify_one();
        }
        last
    }

    /// Frees `bytes` from the estimate of stored data (records deleted).
    pub fn forget_bytes(&self, bytes: i64) {
        self.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Whether op `n` is durable; if not, `waker` is woken when it is.
    pub fn poll_durable(&self, n: u64, waker: &Waker) -> bool {
        if self.durable() >= n {
            return true;
        }
        let mut waiters = self.waiters.lock();
        // Checked again under the lock the commit thread wakes under, so
        // a commit cannot slip between the check and the registration.
        if self.durable() >= n {
            return true;
        }
        match waiters.iter_mut().find(|(_, w)| w.will_wake(waker)) {
            Some(entry) => entry.0 = entry.0.min(n),
            None => waiters.push((n, waker.clone())),
        }
        false
    }

    /// Whether `bytes` more may be stored now.
    pub fn has_room(&self, bytes: usize) -> bool {
        let live = self.live_bytes.load(Ordering::Relaxed).max(0).unsigned_abs();
        !self.failing.load(Ordering::Relaxed)
            && !self.low_disk.load(Ordering::Relaxed)
            && live.saturating_add(bytes as u64) <= self.max_bytes
    }

    /// Commits what is pending and stops the thread.
    pub fn close(&self) {
        self.pending.lock().closing = true;
        self.arrived.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn run(self: Arc<Self>, mut db: Database) {
        let mut last_sync = Instant::now();
        loop {
            let (ops, last, closing) = {
                let mut p = self.pending.lock();
                let idle_wait = match self.durability {
                    Durability::None => NONE_SYNC_EVERY,
                    _ => Duration::from_secs(3600),
                };
                while p.ops.is_empty() && !p.closing {
                    if self.arrived.wait_for(&mut p, idle_wait).timed_out() {
                        break;
                    }
                }
                if self.durability != Durability::Strict && !p.closing {
                    // Gather more for one commit, up to the interval: at
                    // most one commit per interval, however the clients
                    // trickle in, is what spares an SD card. (`strict`
                    // commits back to back instead.)
                    let until = Instant::now() + self.sync_interval;
                    while p.ops.len() < self.sync_batch && !p.closing {
                        if self.arrived.wait_until(&mut p, until).timed_out() {
                            break;
                        }
                    }
                }
                (std::mem::take(&mut p.ops), p.last, p.closing)
            };
            let durable = match self.durability {
                Durability::None => closing || last_sync.elapsed() >= NONE_SYNC_EVERY,
                _ => true,
            };
            if !ops.is_empty() || durable && self.durable() < last {
                self.check_free_space();
                db = self.commit_until_done(db, &ops, durable, closing);
                if durable {
                    last_sync = Instant::now();
                    self.durable.store(last, Ordering::Release);
                    self.wake_waiters(last);
                }
            }
            if closing {
                let empty = self.pending.lock().ops.is_empty();
                if empty {
                    self.closed.store(true, Ordering::Release);
                    drop(db);
                    tracing::debug!(path = %self.path.display(), "store closed");
                    return;
                }
            }
        }
    }

    /// Commits `ops`, retrying while the disk refuses (full, I/O error):
    /// what was acknowledged stays acknowledged only if these get written,
    /// so they are never given up while the broker runs. New storing is
    /// refused meanwhile ([`Writer::has_room`]).
    fn commit_until_done(&self, mut db: Database, ops: &[Op], durable: bool, closing: bool) -> Database {
        loop {
            match commit(&db, ops, durable) {
                Ok(()) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::warn!(path = %self.path.display(), "store writes again");
                    }
                    return db;
                }
                Err(e) => {
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(path = %self.path.display(), error = %e, "store commit failed (disk full?); new QoS 1/2 messages that need storing are refused until it succeeds; retrying");
                    }
                    if closing {
                        tracing::error!(path = %self.path.display(), error = %e, "store commit failed at shutdown; the last {} change(s) are lost", ops.len());
                        return db;
                    }
                    std::thread::sleep(RETRY_AFTER);
                    // After an I/O error redb refuses every later
                    // transaction; a fresh handle starts from the last
                    // good commit.
                    drop(db);
                    db = loop {
                        match super::file::open_existing(&self.path, self.cache_size) {
                            Ok(db) => break db,
                            Err(e) => {
                                tracing::error!(path = %self.path.display(), error = %e, "cannot reopen the store; retrying");
                                std::thread::sleep(RETRY_AFTER);
                            }
                        }
                    };
                }
            }
        }
    }

    /// Keeps a reserve free on the file system (a twentieth of it, between
    /// 256 KiB and 64 MiB): redb grows its file in steps and needs room
    /// even to delete, so new messages are refused before the disk is
    /// full, not when it is.
    fn check_free_space(&self) {
        let Some(dir) = self.path.parent() else { return };
        let Ok(st) = rustix::fs::statvfs(dir) else { return };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let reserve = (total / 20).clamp(256 << 10, 64 << 20);
        let low = free < reserve;
        if self.low_disk.swap(low, Ordering::Relaxed) != low {
            if low {
                tracing::warn!(path = %self.path.display(), free_bytes = free, reserve_bytes = reserve, "store is full: the disk is nearly full; QoS 1/2 messages that need storing are refused until space is freed");
            } else {
                tracing::info!(path = %self.path.display(), free_bytes = free, "disk space is back; storing again");
            }
        }
    }

    fn wake_waiters(&self, durable: u64) {
        let ready: Vec<Waker> = {
            let mut waiters = self.waiters.lock();
            let mut ready = Vec::new();
            waiters.retain(|(n, w)| {
                if *n <= durable {
                    ready.push(w.clone());
                    false
                } else {
                    true
                }
            });
            ready
        };
        for w in ready {
            w.wake();
        }
    }
}

fn commit(db: &Database, ops: &[Op], durable: bool) -> Result<(), redb::Error> {
    let mut tx = db.begin_write()?;
    // Quick repair would save the allocator state in every commit: about
    // a third more bytes written per message (measured), for an SD card,
    // to save a repair walk of the file after a crash, which for the sizes
    // a gateway stores takes well under a second.
    tx.set_quick_repair(false);
    if !durable {
        tx.set_durability(redb::Durability::None)?;
    }
    tables::apply(&tx, ops)?;
    tx.commit()?;
    Ok(())
}
