//! Broker-wide counters, read by `$SYS` and (later) the metrics endpoint.
//!
//! Relaxed atomics: each is an independent count and nothing is ordered by
//! them. Hot paths add in batches (once per read or write batch of a
//! connection), not once per message, to keep cache lines from bouncing
//! between cores.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub publish_dropped: AtomicU64,
    pub clients_connected: AtomicU64,
    pub connections_total: AtomicU64,
    pub subscriptions: AtomicU64,
    pub connections_refused: AtomicU64,
    pub malformed_packets: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_sub(n, Ordering::Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
