//! Offline QoS 1 queueing: the cost of storing messages for persistent
//! sessions that are not connected.
//!
//! 1. *Park*: S persistent subscribers (3.1.1 clean session = false, or v5
//!    Clean Start = false with a Session Expiry Interval) subscribe QoS 1 to
//!    their topics and disconnect.
//! 2. *Publish*: P publishers send N QoS 1 messages in all (publisher i to
//!    `bench/offline/<i>`, which subscriber i mod S holds), each keeping a
//!    window of messages in flight; the phase ends at the last PUBACK. With a
//!    durable store every PUBACK waits for a commit, so this is the rate at
//!    which the broker makes messages durable.
//! 3. *Drain* (optional): the subscribers reconnect without a clean start and
//!    read their queues; session present, duplicates (DUP=1) and order (per
//!    topic, by the send timestamp in each payload) are checked on the way.
//!
//! The phases are public so `store-compare` can read the broker's disk
//! counters and data files between them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use tokio::time::Instant as TInstant;

use super::{Better, Metric, Target, connect_many, metric};
use crate::client::{self, Conn, Proto, PublishTemplate};
use crate::procstat::{self, Sample, usage};

#[derive(Clone, Debug)]
pub struct Opts {
    /// Messages published in all (split evenly over the publishers).
    pub messages: u64,
    pub pubs: usize,
    pub subs: usize,
    pub payload: usize,
    /// QoS 1 messages in flight per publisher.
    pub window: usize,
    /// v5 Session Expiry Interval of the subscribers, seconds.
    pub expiry: u32,
    /// Client ids of the subscribers are `<prefix>-sub<j>`: a later process
    /// (or a restarted broker) finds the sessions again under the same ids.
    pub prefix: String,
    /// Reconnect the subscribers and read their queues afterwards.
    pub drain: bool,
    /// Longest a publishing or draining phase may take.
    pub timeout: Duration,
}

impl Opts {
    pub fn sub_id(&self, j: usize) -> String {
        format!("{}-sub{j}", self.prefix)
    }

    pub fn topic(i: usize) -> String {
        format!("bench/offline/{i}")
    }

    /// Topics subscriber j holds: those of publishers i with i mod S = j.
    pub fn filters(&self, j: usize) -> Vec<String> {
        (0..self.pubs).filter(|i| i % self.subs == j).map(Self::topic).collect()
    }

    /// Messages publisher i sends.
    pub fn per_pub(&self, i: usize) -> u64 {
        let p = self.pubs as u64;
        self.messages / p + u64::from((i as u64) < self.messages % p)
    }

    /// Messages subscriber j should find queued.
    pub fn per_sub(&self, j: usize) -> u64 {
        (0..self.pubs)
            .filter(|i| i % self.subs == j)
            .map(|i| self.per_pub(i))
            .sum()
    }

    fn check(&self) -> Result<()> {
        if self.pubs == 0 || self.subs == 0 || self.subs > self.pubs {
            bail!("need 1 <= subs <= pubs (every subscriber holds at least one publisher's topic)");
        }
        Ok(())
    }
}

fn expiry(t: Target, o: &Opts) -> Option<u32> {
    (t.proto == Proto::V5).then_some(o.expiry)
}

/// Phase 1: create the persistent sessions with their QoS 1 subscriptions,
/// then disconnect (DISCONNECT, so no will and, in v5, the session's expiry
/// from CONNECT stands).
pub async fn park(t: Target, o: &Opts) -> Result<()> {
    o.check()?;
    let mut set = JoinSet::new();
    for j in 0..o.subs {
        let (id, filters, exp) = (o.sub_id(j), o.filters(j), expiry(t, o));
        set.spawn(async move {
            // Clean start so a stale session under this id cannot skew the
            // count; the flag to keep the session is expiry (v5) or the
            // reconnect below (3.1.1).
            let (c, _) = Conn::connect_session(t.addr, t.proto, &id, 600, true, exp).await?;
            c.disconnect().await?;
            let (mut c, _) = Conn::connect_session(t.addr, t.proto, &id, 600, false, exp).await?;
            c.subscribe(&filters, 1).await?;
            c.disconnect().await
        });
    }
    while let Some(r) = set.join_next().await {
        r?.context("park a persistent subscriber")?;
    }
    // The broker handles the DISCONNECT after our FIN reaches it; give it a
    // moment so the first PUBLISH does not race a still-online session.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

pub struct Published {
    pub secs: f64,
    pub acked: u64,
    pub refused: u64,
    pub before: Sample,
    pub after: Sample,
}

/// Phase 2: publish `o.messages` QoS 1 messages and wait for every PUBACK.
/// Connections are made before the clock starts.
pub async fn publish(t: Target, o: &Opts) -> Result<Published> {
    o.check()?;
    let origin = Instant::now();
    let conns = connect_many(t, &format!("{}-pub", o.prefix), o.pubs, 64, 600).await?;
    let before = Sample::take(t.broker_pid);
    let start = Instant::now();
    let deadline = TInstant::now() + o.timeout;
    let mut set = JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        let tpl = vec![PublishTemplate::new(t.proto, &Opts::topic(i), 1, false, o.payload)];
        let n = o.per_pub(i);
        set.spawn(super::flow::publish(
            c,
            tpl,
            1,
            o.window,
            None,
            Some(n),
            origin,
            deadline,
        ));
    }
    let (mut acked, mut refused) = (0, 0);
    while let Some(r) = set.join_next().await {
        let s = r??;
        acked += s.acked;
        refused += s.refused;
    }
    let secs = start.elapsed().as_secs_f64();
    let after = Sample::take(t.broker_pid);
    Ok(Published {
        secs,
        acked,
        refused,
        before,
        after,
    })
}

#[derive(Default)]
pub struct Drained {
    pub secs: f64,
    pub received: u64,
    /// PUBLISHes with DUP=1.
    pub dups: u64,
    /// PUBLISHes older (by send timestamp) than one already seen on the
    /// same topic: the queue was not replayed in order.
    pub out_of_order: u64,
    /// Subscribers whose CONNACK said session present = 1.
    pub present: usize,
    /// Most PUBLISHes found in one read: with acks sent after every read,
    /// about the broker's outbound window (or what it sends regardless).
    pub max_batch: u64,
}

/// Phase 3: reconnect every subscriber without a clean start and read until
/// it has its share (or nothing arrives for `idle` / `o.timeout` passes).
pub async fn drain(t: Target, o: &Opts, idle: Duration) -> Result<Drained> {
    o.check()?;
    let start = Instant::now();
    let mut set = JoinSet::new();
    for j in 0..o.subs {
        let (id, want, exp, timeout) = (o.sub_id(j), o.per_sub(j), expiry(t, o), o.timeout);
        set.spawn(async move {
            let (c, present) = Conn::connect_session(t.addr, t.proto, &id, 600, false, exp).await?;
            read_queue(c, want, idle, timeout).await.map(|d| Drained {
                present: usize::from(present),
                ..d
            })
        });
    }
    let mut d = Drained::default();
    while let Some(r) = set.join_next().await {
        let s = r?.context("drain a persistent subscriber")?;
        d.received += s.received;
        d.dups += s.dups;
        d.out_of_order += s.out_of_order;
        d.present += s.present;
        d.max_batch = d.max_batch.max(s.max_batch);
    }
    d.secs = start.elapsed().as_secs_f64();
    Ok(d)
}

async fn read_queue(mut c: Conn, want: u64, idle: Duration, timeout: Duration) -> Result<Drained> {
    let mut d = Drained::default();
    let mut last: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut acks = Vec::with_capacity(4096);
    let until = TInstant::now() + timeout;
    loop {
        let mut pos = 0;
        let mut batch = 0;
        while let Some(p) = client::next_packet(&c.rbuf, &mut pos) {
            if p.kind != client::PUBLISH {
                continue;
            }
            batch += 1;
            d.received += 1;
            d.dups += u64::from(p.flags & 0x08 != 0);
            let tlen = p.body.get(..2).map_or(0, |l| u16::from_be_bytes([l[0], l[1]]) as usize);
            let topic = p.body.get(2..2 + tlen);
            if let (Some(topic), Some((id, payload))) = (topic, p.publish(c.proto)) {
                if let Some(ts) = client::payload_ts(payload) {
                    let prev = last.entry(topic.to_vec()).or_insert(0);
                    d.out_of_order += u64::from(ts < *prev);
                    *prev = (*prev).max(ts);
                }
                if p.qos() == 1 {
                    client::put_ack(&mut acks, client::PUBACK, id);
                }
            }
        }
        bytes::Buf::advance(&mut c.rbuf, pos);
        d.max_batch = d.max_batch.max(batch);
        if !acks.is_empty() {
            c.send(&acks).await?;
            acks.clear();
        }
        if d.received >= want {
            break;
        }
        let wait = idle.min(until.saturating_duration_since(TInstant::now()));
        match tokio::time::timeout(wait, c.fill()).await {
            Ok(r) => {
                if !r? {
                    bail!("broker closed a draining subscriber after {} messages", d.received);
                }
            }
            Err(_) => break, // idle or out of time: report what arrived
        }
    }
    c.disconnect().await?;
    Ok(d)
}

/// The whole scenario against a running broker (`tern-bench run
/// offline-qos1`). With `--broker-pid` it also reads the broker's disk
/// counters (`/proc/PID/io`) around each phase, and with `data_dir` the size
/// of the broker's data files after publishing.
pub async fn run(t: Target, o: &Opts, data_dir: Option<PathBuf>) -> Result<Vec<Metric>> {
    park(t, o).await?;
    let io0 = t.broker_pid.map(procstat::proc_io).transpose()?;
    let p = publish(t, o).await?;
    // Let a batched or lazy store finish what the last acks left behind.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let io1 = t.broker_pid.map(procstat::proc_io).transpose()?;
    let mut m = publish_metrics(o, &p);
    if let (Some(a), Some(b)) = (io0, io1) {
        io_metrics(&mut m, "", &b.since(&a), p.acked);
    }
    if let Some(dir) = &data_dir {
        m.push(metric(
            "data_bytes_per_msg",
            "B/msg",
            procstat::dir_bytes(dir) as f64 / p.acked.max(1) as f64,
            Better::Lower,
        ));
    }
    if o.drain {
        let d = drain(t, o, Duration::from_secs(5)).await?;
        let io2 = t.broker_pid.map(procstat::proc_io).transpose()?;
        drain_metrics(&mut m, o, &d);
        if let (Some(a), Some(b)) = (io1, io2) {
            io_metrics(&mut m, "drain_", &b.since(&a), d.received);
        }
    }
    Ok(m)
}

pub fn publish_metrics(o: &Opts, p: &Published) -> Vec<Metric> {
    let u = usage(&p.before, &p.after);
    let mut m = vec![
        metric("publish_per_s", "msg/s", p.acked as f64 / p.secs, Better::Higher),
        metric(
            "acked_pct",
            "%",
            100.0 * p.acked as f64 / o.messages.max(1) as f64,
            Better::Higher,
        ),
        metric("refused", "msgs", p.refused as f64, Better::Lower),
        metric("gen_cpu", "cores", u.gen_cores, Better::Info),
    ];
    if let Some(f) = u.foreign_cores {
        m.push(metric("foreign_cpu", "cores", f, Better::Info));
    }
    if let Some(b) = u.broker_cpu_secs {
        m.push(metric("broker_cpu", "cores", b / u.wall, Better::Info));
        m.push(metric(
            "broker_cpu_per_msg",
            "us/msg",
            b * 1e6 / p.acked.max(1) as f64,
            Better::Lower,
        ));
    }
    m
}

pub fn drain_metrics(m: &mut Vec<Metric>, o: &Opts, d: &Drained) {
    let want = (0..o.subs).map(|j| o.per_sub(j)).sum::<u64>().max(1);
    m.push(metric(
        "drain_per_s",
        "msg/s",
        d.received as f64 / d.secs,
        Better::Higher,
    ));
    m.push(metric(
        "drained_pct",
        "%",
        100.0 * d.received as f64 / want as f64,
        Better::Higher,
    ));
    m.push(metric(
        "session_present_pct",
        "%",
        100.0 * d.present as f64 / o.subs as f64,
        Better::Higher,
    ));
    m.push(metric("dups", "msgs", d.dups as f64, Better::Lower));
    m.push(metric("out_of_order", "msgs", d.out_of_order as f64, Better::Lower));
    m.push(metric("drain_max_batch", "msgs", d.max_batch as f64, Better::Info));
}

/// Disk figures per message: `write_bytes` (what reached the block layer,
/// minus cancelled writes) and `wchar` (every write syscall, sockets too).
pub fn io_metrics(m: &mut Vec<Metric>, prefix: &str, io: &procstat::Io, msgs: u64) {
    let n = msgs.max(1) as f64;
    m.push(metric(
        &format!("{prefix}write_bytes_per_msg"),
        "B/msg",
        io.disk_bytes().max(0) as f64 / n,
        Better::Lower,
    ));
    m.push(metric(
        &format!("{prefix}wchar_per_msg"),
        "B/msg",
        io.wchar as f64 / n,
        Better::Info,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(messages: u64, pubs: usize, subs: usize) -> Opts {
        Opts {
            messages,
            pubs,
            subs,
            payload: 64,
            window: 20,
            expiry: 3600,
            prefix: "t".into(),
            drain: true,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn shares_add_up() {
        for (n, p, s) in [(100_000, 10, 1), (100_000, 10, 10), (1001, 3, 2), (7, 10, 5)] {
            let o = opts(n, p, s);
            assert_eq!((0..p).map(|i| o.per_pub(i)).sum::<u64>(), n);
            assert_eq!((0..s).map(|j| o.per_sub(j)).sum::<u64>(), n);
            let filters: usize = (0..s).map(|j| o.filters(j).len()).sum();
            assert_eq!(filters, p, "every topic held by exactly one subscriber");
        }
        assert!(opts(10, 2, 3).check().is_err());
    }
}
