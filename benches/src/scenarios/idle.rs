//! N idle connections: how fast the broker accepts them, then hold them
//! open so the harness (or a person) can read the broker's memory.

use std::time::Instant;

use anyhow::Result;

use super::{Better, Metric, Target, connect_many, metric};
use crate::client::Conn;
use crate::procstat::{Sample, usage};

/// Open `n` connections (CONNECT/CONNACK each, long keep-alive so nothing is
/// sent while held). The caller holds the returned connections and drops
/// them with [`close`].
pub async fn open(t: Target, n: usize, concurrency: usize) -> Result<(Vec<Conn>, Vec<Metric>)> {
    let before = Sample::take(t.broker_pid);
    let start = Instant::now();
    let conns = connect_many(t, "idle", n, concurrency, 3600).await?;
    let secs = start.elapsed().as_secs_f64();
    let after = Sample::take(t.broker_pid);
    let u = usage(&before, &after);
    let mut m = vec![
        metric("connect_per_s", "conn/s", n as f64 / secs, Better::Higher),
        metric("gen_cpu", "cores", u.gen_cores, Better::Info),
    ];
    if let Some(f) = u.foreign_cores {
        m.push(metric("foreign_cpu", "cores", f, Better::Info));
    }
    if let Some(b) = u.broker_cpu_secs {
        m.push(metric(
            "broker_cpu_per_conn",
            "us/conn",
            b * 1e6 / n.max(1) as f64,
            Better::Lower,
        ));
    }
    Ok((conns, m))
}

/// Check that held connections are still served (first and last opened).
pub async fn check(conns: &mut [Conn]) -> Result<()> {
    let n = conns.len();
    for i in [0, n.saturating_sub(1)] {
        if let Some(c) = conns.get_mut(i) {
            c.ping().await?;
        }
    }
    Ok(())
}

pub fn close(conns: Vec<Conn>) {
    for c in conns {
        c.abort();
    }
}
