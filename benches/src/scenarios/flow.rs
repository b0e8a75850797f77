//! The publish/subscribe engine behind throughput, fan-out, fan-in,
//! fixed-rate latency and many-topics runs.
//!
//! Publishers write pre-encoded PUBLISH frames in batches (one `write` carries
//! up to ~64 KiB of frames) and keep a window of QoS 1/2 messages in flight;
//! subscribers read 256 KiB chunks and answer with one batched write of acks.
//! Every payload starts with a send timestamp so subscribers measure
//! end-to-end latency in every scenario.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant as TInstant;

use super::{Better, Metric, Target, connect_many, metric};
use crate::client::{self, Conn, PublishTemplate};
use crate::procstat::{Sample, usage};

/// Who publishes where and who subscribes to what.
pub struct Plan {
    /// One topic list per publisher; a publisher cycles through its topics.
    pub pub_topics: Vec<Vec<String>>,
    /// One filter list per subscriber.
    pub sub_filters: Vec<Vec<String>>,
    /// How many subscribers each published message should reach.
    pub fanout: f64,
}

impl Plan {
    /// P publishers → S subscribers. With `all`, every subscriber gets every
    /// message (1 → N fan-out); otherwise publisher i's topic goes to
    /// subscriber i mod S, so each message is delivered once (N → 1 fan-in
    /// is `subs = 1`).
    pub fn pubsub(pubs: usize, subs: usize, all: bool) -> Plan {
        let topic = |i: usize| format!("bench/flow/{i}");
        let pub_topics = (0..pubs).map(|i| vec![topic(i)]).collect();
        let sub_filters = (0..subs)
            .map(|j| {
                if all {
                    vec!["bench/flow/+".to_string()]
                } else {
                    (0..pubs).filter(|i| i % subs == j).map(topic).collect()
                }
            })
            .collect();
        let fanout = if subs == 0 {
            0.0
        } else if all {
            subs as f64
        } else {
            1.0
        };
        Plan {
            pub_topics,
            sub_filters,
            fanout,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub qos: u8,
    pub payload: usize,
    pub duration: Duration,
    /// QoS 1/2 messages in flight per publisher.
    pub window: usize,
    /// Total messages/s across all publishers; None = as fast as possible.
    pub rate: Option<f64>,
}

/// What one publisher got done.
pub struct PubStats {
    pub sent: u64,
    /// PUBACK/PUBCOMP received (refused ones included).
    pub acked: u64,
    /// v5 PUBACK/PUBREC with a reason code >= 0x80 (e.g. 0x97 Quota
    /// exceeded from a full store).
    pub refused: u64,
}

struct SubStats {
    received: u64,
    hist: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    // 1 µs resolution floor keeps each histogram ~150 KiB even with 100
    // subscribers; 60 s ceiling, 3 significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("static histogram bounds")
}

/// Publisher loop; also used by the retained storm with `limit` set.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    mut conn: Conn,
    templates: Vec<PublishTemplate>,
    qos: u8,
    window: usize,
    rate: Option<f64>,
    limit: Option<u64>,
    origin: Instant,
    deadline: TInstant,
) -> Result<PubStats> {
    let s = publisher(&mut conn, &templates, qos, window, rate, limit, origin, deadline).await;
    conn.abort();
    s
}

#[allow(clippy::too_many_arguments)]
async fn publisher(
    conn: &mut Conn,
    templates: &[PublishTemplate],
    qos: u8,
    window: usize,
    rate: Option<f64>,
    limit: Option<u64>,
    origin: Instant,
    deadline: TInstant,
) -> Result<PubStats> {
    let flen = templates.iter().map(|t| t.bytes.len()).max().unwrap_or(1);
    // ~64 KiB per write: large enough to amortise the syscall, small enough
    // not to stall the (single-core) runtime on one connection.
    let batch_max = (65536 / flen).clamp(1, 4096) as u64;
    let window = window.max(1) as u64;
    let limit = limit.unwrap_or(u64::MAX);
    // Half a window per refill: measured against Mosquitto 2.0.11 (QoS 1,
    // 10 -> 10) this cut generator CPU per message by ~20% versus topping up
    // after every ack, with the same broker throughput.
    let refill = (window / 2).max(1);
    let start = TInstant::now();
    let tick = Duration::from_millis(1);
    let mut next_tick = start + tick;
    let (mut sent, mut acked, mut inflight, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let mut pkid: u16 = 0;
    let mut out: Vec<u8> = Vec::with_capacity(batch_max as usize * flen + 64);
    let mut next_tpl = 0usize;
    loop {
        let now = TInstant::now();
        if now >= deadline || acked >= limit || (qos == 0 && sent >= limit) {
            break;
        }
        let mut can = if qos == 0 {
            batch_max
        } else {
            window.saturating_sub(inflight)
        };
        can = can.min(batch_max).min(limit - sent);
        if let Some(r) = rate {
            let due = (now.duration_since(start).as_secs_f64() * r) as u64;
            can = can.min(due.saturating_sub(sent));
        } else if qos > 0 && inflight > 0 && can < refill {
            // Top the window up in batches rather than one frame per ack:
            // every write is a loopback segment whose receive path the
            // sender pays for, and that cost dominates the generator.
            can = 0;
        }
        if can > 0 || !out.is_empty() {
            // `out` may already hold PUBRELs: they share the write.
            let ts = client::now_ns(origin);
            for _ in 0..can {
                pkid = pkid.wrapping_add(1).max(1);
                templates[next_tpl].append(&mut out, pkid, ts);
                next_tpl = (next_tpl + 1) % templates.len();
            }
            match tokio::time::timeout_at(deadline, conn.send(&out)).await {
                Ok(r) => r.context("publish write")?,
                Err(_) => break,
            }
            out.clear();
            sent += can;
            if qos == 0 {
                acked += can;
            } else {
                inflight += can;
            }
            if can > 0 {
                continue;
            }
        }
        // Nothing may be sent now: wait for acks, the next rate tick, or the end.
        let wake = if rate.is_some() && (qos == 0 || inflight < window) {
            next_tick = next_tick.max(now + tick);
            next_tick.min(deadline)
        } else {
            deadline
        };
        if qos == 0 {
            tokio::time::sleep_until(wake).await;
            continue;
        }
        tokio::select! {
            r = conn.fill() => {
                if !r? {
                    anyhow::bail!("broker closed a publisher connection");
                }
            }
            _ = tokio::time::sleep_until(wake) => continue,
        }
        let mut pos = 0;
        while let Some(p) = client::next_packet(&conn.rbuf, &mut pos) {
            match p.kind {
                client::PUBACK | client::PUBCOMP => {
                    inflight = inflight.saturating_sub(1);
                    acked += 1;
                    refused += u64::from(p.kind == client::PUBACK && p.body.get(2).is_some_and(|rc| *rc >= 0x80));
                }
                client::PUBREC => {
                    refused += u64::from(p.body.get(2).is_some_and(|rc| *rc >= 0x80));
                    client::put_ack(&mut out, client::PUBREL, p.pkid())
                }
                client::DISCONNECT => anyhow::bail!("broker sent DISCONNECT to a publisher"),
                _ => {}
            }
        }
        bytes::Buf::advance(&mut conn.rbuf, pos);
    }
    Ok(PubStats { sent, acked, refused })
}

async fn subscriber(mut conn: Conn, origin: Instant, deadline: TInstant) -> Result<SubStats> {
    let mut st = SubStats {
        received: 0,
        hist: new_hist(),
    };
    let mut acks = Vec::with_capacity(4096);
    let proto = conn.proto;
    loop {
        tokio::select! {
            r = conn.fill() => {
                if !r? {
                    anyhow::bail!("broker closed a subscriber connection");
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
        let now = client::now_ns(origin);
        let mut pos = 0;
        while let Some(p) = client::next_packet(&conn.rbuf, &mut pos) {
            match p.kind {
                client::PUBLISH => {
                    st.received += 1;
                    if let Some((id, payload)) = p.publish(proto) {
                        if let Some(ts) = client::payload_ts(payload) {
                            st.hist.saturating_record(now.saturating_sub(ts));
                        }
                        match p.qos() {
                            1 => client::put_ack(&mut acks, client::PUBACK, id),
                            2 => client::put_ack(&mut acks, client::PUBREC, id),
                            _ => {}
                        }
                    }
                }
                client::PUBREL => client::put_ack(&mut acks, client::PUBCOMP, p.pkid()),
                _ => {}
            }
        }
        bytes::Buf::advance(&mut conn.rbuf, pos);
        if !acks.is_empty() {
            conn.send(&acks).await?;
            acks.clear();
        }
    }
    conn.abort();
    Ok(st)
}

/// Run a plan and report delivered throughput, latency, loss and CPU.
pub async fn run(t: Target, plan: &Plan, o: &Opts) -> Result<Vec<Metric>> {
    let origin = Instant::now();
    let conc = 64;
    // Setup is outside the measured window: subscribers are subscribed (SUBACK
    // seen) before the first PUBLISH leaves.
    let mut subs = connect_many(t, "sub", plan.sub_filters.len(), conc, 600).await?;
    let sub_start = Instant::now();
    let n_filters: usize = plan.sub_filters.iter().map(Vec::len).sum();
    let mut set = JoinSet::new();
    for (mut c, filters) in subs.drain(..).zip(plan.sub_filters.iter().cloned()) {
        let qos = o.qos;
        set.spawn(async move { c.subscribe(&filters, qos).await.map(|_| c) });
    }
    while let Some(r) = set.join_next().await {
        subs.push(r??);
    }
    let sub_secs = sub_start.elapsed().as_secs_f64();
    let pubs = connect_many(t, "pub", plan.pub_topics.len(), conc, 600).await?;

    let before = Sample::take(t.broker_pid);
    let deadline = TInstant::now() + o.duration;
    let mut sub_set = JoinSet::new();
    for c in subs {
        sub_set.spawn(subscriber(c, origin, deadline));
    }
    let per_pub_rate = o.rate.map(|r| r / plan.pub_topics.len().max(1) as f64);
    let mut pub_set = JoinSet::new();
    for (c, topics) in pubs.into_iter().zip(&plan.pub_topics) {
        let tpls = topics
            .iter()
            .map(|tp| PublishTemplate::new(t.proto, tp, o.qos, false, o.payload))
            .collect();
        pub_set.spawn(publish(c, tpls, o.qos, o.window, per_pub_rate, None, origin, deadline));
    }
    tokio::time::sleep_until(deadline).await;
    let after = Sample::take(t.broker_pid);

    let (mut sent, mut acked) = (0u64, 0u64);
    while let Some(r) = pub_set.join_next().await {
        let s = r??;
        sent += s.sent;
        acked += s.acked;
    }
    let mut received = 0u64;
    let mut hist = new_hist();
    while let Some(r) = sub_set.join_next().await {
        let s = r??;
        received += s.received;
        hist.add(&s.hist).context("merge histograms")?;
    }
    let u = usage(&before, &after);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let expected = acked as f64 * plan.fanout;
    let mut m = vec![
        metric("delivered_per_s", "msg/s", received as f64 / u.wall, Better::Higher),
        metric("published_per_s", "msg/s", acked as f64 / u.wall, Better::Higher),
        metric(
            "delivered_pct",
            "%",
            if expected > 0.0 {
                100.0 * received as f64 / expected
            } else {
                0.0
            },
            Better::Higher,
        ),
        metric("lat_p50", "us", us(0.5), Better::Lower),
        metric("lat_p99", "us", us(0.99), Better::Lower),
        metric("lat_p999", "us", us(0.999), Better::Lower),
        metric("gen_cpu", "cores", u.gen_cores, Better::Info),
        // Where the generator would saturate its core for this pattern:
        // delivered rate scaled to 1.0 core of generator CPU. Far above
        // delivered_per_s means the broker, not the generator, is the limit.
        metric(
            "gen_ceiling_per_s",
            "msg/s",
            if u.gen_cores > 0.0 {
                received as f64 / u.wall / u.gen_cores
            } else {
                f64::NAN
            },
            Better::Info,
        ),
    ];
    if n_filters >= 1000 {
        m.push(metric(
            "subscribe_per_s",
            "filters/s",
            n_filters as f64 / sub_secs,
            Better::Higher,
        ));
    }
    super::push_broker_cpu(&mut m, &u, "broker_cpu_per_msg", "us/msg", received);
    // Sent-but-unacked QoS 0 frames are just bytes in socket buffers; report
    // them so a reader can tell a slow broker from a slow generator.
    m.push(metric("written_per_s", "msg/s", sent as f64 / u.wall, Better::Info));
    Ok(m)
}
