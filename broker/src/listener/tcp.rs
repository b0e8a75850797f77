//! Plain TCP listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;

use super::ListenerSettings;
use crate::broker::Broker;
use crate::connection;
use crate::metrics::Metrics;
use crate::shutdown::ShutdownSignal;

/// Counts live connection tasks so shutdown can wait for them to finish.
#[derive(Debug, Default, Clone)]
pub struct ConnTracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    live: AtomicUsize,
    idle: Notify,
}

/// One listener's live connections, and the broker-wide tracker.
#[derive(Debug)]
struct ListenerLive {
    live: AtomicUsize,
    tracker: Arc<TrackerInner>,
}

/// Held by each connection task: one pointer, as it lives in every task.
struct TrackerGuard(Arc<ListenerLive>);

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
        if self.0.tracker.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tracker.idle.notify_waiters();
        }
    }
}

impl ConnTracker {
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Waits until no connection task is left, or `limit` has passed.
    pub async fn wait_idle(&self, limit: Duration) {
        let wait = async {
            loop {
                let idle = self.inner.idle.notified();
                if self.live() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

/// Binds with SO_REUSEADDR so a restarted broker can take its port back
/// while old connections sit in TIME_WAIT.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub async fn accept_loop(
    listener: TcpListener,
    settings: Arc<ListenerSettings>,
    broker: Arc<Broker>,
    mut shutdown: ShutdownSignal,
    tracker: ConnTracker,
) {
    let listener_live = Arc::new(ListenerLive {
        live: AtomicUsize::new(0),
        tracker: tracker.inner.clone(),
    });
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors or similar: back off instead of
                // spinning on the error.
                tracing::warn!(listener = %settings.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let over_broker = tracker.live() >= broker.limits.max_connections;
        let over_listener = settings
            .max_connections
            .is_some_and(|m| listener_live.live.load(Ordering::Relaxed) >= m);
        if over_broker || over_listener {
            Metrics::add(&broker.metrics.connections_refused, 1);
            tracing::warn!(listener = %settings.name, %peer, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        }
        Metrics::add(&broker.metrics.connections_total, 1);
        tracker.inner.live.fetch_add(1, Ordering::AcqRel);
        listener_live.live.fetch_add(1, Ordering::Relaxed);
        let guard = TrackerGuard(listener_live.clone());
        let (broker, settings, shutdown) = (broker.clone(), settings.clone(), shutdown.clone());
        tokio::spawn(connection::serve(stream, peer, broker, settings, shutdown, guard));
    }
}
