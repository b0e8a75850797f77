//! Load scenarios. Each one connects to a running broker, measures, and
//! returns named metrics; the harness decides which broker and when.

pub mod flow;
pub mod handshakes;
pub mod idle;
pub mod offline;
pub mod retained;
pub mod topics;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Conn, Proto};

/// Where the load goes, and (optionally) which process to account CPU to.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub proto: Proto,
    pub broker_pid: Option<u32>,
}

/// Which direction is an improvement; `Info` rows (e.g. the generator's own
/// CPU) are reported but not judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    Info,
}

#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    pub key: String,
    pub unit: &'static str,
    pub value: f64,
    pub better: Better,
}

pub fn metric(key: &str, unit: &'static str, value: f64, better: Better) -> Metric {
    Metric {
        key: key.to_string(),
        unit,
        value,
        better,
    }
}

/// The CPU rows of a timed phase: other tenants' cores, the broker's
/// cores, and its CPU per unit of work (`per_key` in `per_unit`, over
/// `count` units; left out when nothing was done).
pub fn push_broker_cpu(
    m: &mut Vec<Metric>,
    u: &crate::procstat::Usage,
    per_key: &str,
    per_unit: &'static str,
    count: u64,
) {
    if let Some(f) = u.foreign_cores {
        m.push(metric("foreign_cpu", "cores", f, Better::Info));
    }
    if let Some(b) = u.broker_cpu_secs {
        m.push(metric("broker_cpu", "cores", b / u.wall, Better::Info));
        if count > 0 {
            m.push(metric(per_key, per_unit, b * 1e6 / count as f64, Better::Lower));
        }
    }
}

pub fn print_metrics(title: &str, ms: &[Metric]) {
    println!("{title}");
    for m in ms {
        println!("  {:<28} {:>14.3} {}", m.key, m.value, m.unit);
    }
}

/// Distinct client ids per process so that two generators never take over
/// each other's sessions.
pub fn client_id(role: &str, i: usize) -> String {
    format!("tb{}-{role}{i}", std::process::id())
}

/// Open `n` connections with at most `concurrency` handshakes in flight
/// (a connect storm of 10,000 at once would mostly measure SYN backlog drops).
pub async fn connect_many(t: Target, role: &str, n: usize, concurrency: usize, keep_alive: u16) -> Result<Vec<Conn>> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let sem = sem.clone();
        let id = client_id(role, i);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            Conn::connect(t.addr, t.proto, &id, keep_alive).await
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    Ok(out)
}
