//! Retained-message storm: publish N retained messages to N topics, then
//! time how fast one new subscriber to the wildcard receives all of them.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::time::Instant as TInstant;

use super::{Better, Metric, Target, client_id, metric};
use crate::client::{self, Conn, PublishTemplate};
use crate::procstat::{Sample, usage};

fn topics(n: usize) -> Vec<String> {
    // Spread over a two-level tree so the broker's retained store is not
    // one flat list.
    (0..n).map(|i| format!("bench/ret/{}/{}", i / 100, i % 100)).collect()
}

/// Publish `n` retained QoS 1 messages (topics `bench/ret/<i/100>/<i%100>`)
/// and wait for every PUBACK; a zero `payload` clears them.
pub async fn store(t: Target, n: usize, payload: usize, window: usize, origin: Instant) -> Result<()> {
    let c = Conn::connect(t.addr, t.proto, &client_id("retpub", 0), 600).await?;
    let tpls = topics(n)
        .iter()
        .map(|tp| PublishTemplate::new(t.proto, tp, 1, true, payload))
        .collect();
    let deadline = TInstant::now() + Duration::from_secs(120);
    // QoS 1: the last PUBACK means the broker has stored every message.
    let acked = super::flow::publish(c, tpls, 1, window, None, Some(n as u64), origin, deadline)
        .await?
        .acked;
    if acked < n as u64 {
        bail!("only {acked} of {n} retained messages were acknowledged");
    }
    Ok(())
}

/// Subscribe a new client to `bench/ret/#` and count the retained messages
/// it receives until it has `n` or nothing arrives for `idle`; returns the
/// count and the seconds it took.
pub async fn receive_all(t: Target, n: usize, idle: Duration) -> Result<(usize, f64)> {
    let mut sub = Conn::connect(t.addr, t.proto, &client_id("retcount", 0), 600).await?;
    let start = Instant::now();
    sub.subscribe(&["bench/ret/#".to_string()], 0).await?;
    let mut got = 0usize;
    while got < n {
        match tokio::time::timeout(idle, sub.fill()).await {
            Ok(open) => {
                if !open? {
                    break;
                }
            }
            Err(_) => break,
        }
        let mut pos = 0;
        while let Some(p) = client::next_packet(&sub.rbuf, &mut pos) {
            got += usize::from(p.kind == client::PUBLISH);
        }
        bytes::Buf::advance(&mut sub.rbuf, pos);
    }
    let secs = start.elapsed().as_secs_f64();
    sub.disconnect().await?;
    Ok((got, secs))
}

pub async fn run(t: Target, n: usize, payload: usize, window: usize) -> Result<Vec<Metric>> {
    let origin = Instant::now();
    let s0 = Sample::take(t.broker_pid);
    store(t, n, payload, window, origin).await?;
    let s1 = Sample::take(t.broker_pid);

    let mut sub = Conn::connect(t.addr, t.proto, &client_id("retsub", 0), 600).await?;
    let start = Instant::now();
    sub.subscribe(&["bench/ret/#".to_string()], 0).await?;
    let mut got = 0usize;
    let deadline = TInstant::now() + Duration::from_secs(120);
    while got < n {
        let open = tokio::time::timeout_at(deadline, sub.fill())
            .await
            .unwrap_or(Ok(false))?;
        if !open {
            bail!("received {got} of {n} retained messages");
        }
        let mut pos = 0;
        while let Some(p) = client::next_packet(&sub.rbuf, &mut pos) {
            got += usize::from(p.kind == client::PUBLISH);
        }
        bytes::Buf::advance(&mut sub.rbuf, pos);
    }
    let deliver_secs = start.elapsed().as_secs_f64();
    let s2 = Sample::take(t.broker_pid);
    sub.disconnect().await?;
    // Clear the store (empty retained payload) so later runs start clean.
    store(t, n, 0, window, origin).await?;

    let (up, ud) = (usage(&s0, &s1), usage(&s1, &s2));
    let mut m = vec![
        metric("store_per_s", "msg/s", n as f64 / up.wall, Better::Higher),
        metric("deliver_per_s", "msg/s", n as f64 / deliver_secs, Better::Higher),
        metric(
            "gen_cpu",
            "cores",
            (up.gen_cores * up.wall + ud.gen_cores * ud.wall) / (up.wall + ud.wall),
            Better::Info,
        ),
    ];
    if let (Some(a), Some(b)) = (up.broker_cpu_secs, ud.broker_cpu_secs) {
        m.push(metric(
            "broker_cpu_per_msg",
            "us/msg",
            (a + b) * 1e6 / n.max(1) as f64,
            Better::Lower,
        ));
    }
    Ok(m)
}
