//! Connection set-up rate: C clients, each in a loop for the whole window,
//! open a session and close it again: TCP connect, (with `--tls-ca`) a full
//! TLS handshake, CONNECT, CONNACK, DISCONNECT, then wait for the broker to
//! close (it must, [MQTT-3.14.4-1]) and close our end.
//!
//! Waiting for the broker's FIN before closing puts TIME_WAIT on the
//! broker's side of the socket pair, so tens of thousands of sessions do not
//! use up the client's ephemeral ports. Latency is connect start to
//! CONNACK: what a device waits before it can publish.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio::time::Instant as TInstant;
use tokio_rustls::rustls::HandshakeKind;

use super::{Better, Metric, Target, client_id, metric};
use crate::client::{Conn, DISCONNECT_FRAME, Stream};
use crate::procstat::{Sample, usage};

struct Worker {
    done: u64,
    errors: u64,
    /// TLS sessions that were resumed, or needed a HelloRetryRequest.
    resumed: u64,
    retried: u64,
    hist: Histogram<u64>,
}

/// One session, open to close; returns connect-to-CONNACK time and, over
/// TLS, how the handshake went.
async fn session(t: Target, id: &str) -> Result<(Duration, Option<HandshakeKind>)> {
    let start = Instant::now();
    let (mut c, _) = Conn::connect_session(t.addr, t.proto, id, 60, true, None).await?;
    let took = start.elapsed();
    let kind = match &c.stream {
        Stream::Tls(s) => s.get_ref().1.handshake_kind(),
        Stream::Tcp(_) => None,
    };
    c.send(&DISCONNECT_FRAME).await?;
    // The broker closes after DISCONNECT: EOF, a TLS close_notify, or a TCP
    // close without one (an error from rustls) all mean it did.
    let mut sink = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match c.stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    if closed.is_err() {
        bail!("broker did not close within 5 s of DISCONNECT");
    }
    drop(c);
    Ok((took, kind))
}

async fn worker(t: Target, w: usize, deadline: TInstant) -> Result<Worker> {
    let mut st = Worker {
        done: 0,
        errors: 0,
        resumed: 0,
        retried: 0,
        hist: Histogram::new_with_bounds(1_000, 60_000_000_000, 3).context("histogram")?,
    };
    let mut i = 0;
    while TInstant::now() < deadline {
        let id = client_id(&format!("hs{w}-"), i);
        i += 1;
        match tokio::time::timeout_at(deadline, session(t, &id)).await {
            Ok(Ok((d, kind))) => {
                st.done += 1;
                st.resumed += u64::from(kind == Some(HandshakeKind::Resumed));
                st.retried += u64::from(kind == Some(HandshakeKind::FullWithHelloRetryRequest));
                st.hist.saturating_record(d.as_nanos() as u64);
            }
            Ok(Err(e)) => {
                st.errors += 1;
                if st.errors == 1 && w == 0 {
                    eprintln!("handshakes: first error: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => break,
        }
    }
    Ok(st)
}

/// Run `concurrency` session loops for `duration`.
pub async fn run(t: Target, concurrency: usize, duration: Duration) -> Result<Vec<Metric>> {
    // Warm-up outside the window: one session proves the set-up works.
    session(t, &client_id("hs-warm", 0)).await.context("first session")?;
    let before = Sample::take(t.broker_pid);
    let deadline = TInstant::now() + duration;
    let mut set = JoinSet::new();
    for w in 0..concurrency.max(1) {
        set.spawn(worker(t, w, deadline));
    }
    let (mut done, mut errors, mut resumed, mut retried) = (0u64, 0u64, 0u64, 0u64);
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3)?;
    while let Some(r) = set.join_next().await {
        let w = r??;
        done += w.done;
        errors += w.errors;
        resumed += w.resumed;
        retried += w.retried;
        hist.add(&w.hist).context("merge histograms")?;
    }
    let after = Sample::take(t.broker_pid);
    let u = usage(&before, &after);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let rate = done as f64 / u.wall;
    let mut m = vec![
        metric("handshakes_per_s", "conn/s", rate, Better::Higher),
        metric("lat_p50", "us", us(0.5), Better::Lower),
        metric("lat_p99", "us", us(0.99), Better::Lower),
        metric("errors", "conns", errors as f64, Better::Lower),
        metric("gen_cpu", "cores", u.gen_cores, Better::Info),
        // The rate at which the generator's own core would be saturated.
        metric(
            "gen_ceiling_per_s",
            "conn/s",
            if u.gen_cores > 0.0 {
                rate / u.gen_cores
            } else {
                f64::NAN
            },
            Better::Info,
        ),
    ];
    if crate::client::TLS.get().is_some() {
        let pct = |n: u64| 100.0 * n as f64 / done.max(1) as f64;
        m.push(metric("resumed_pct", "%", pct(resumed), Better::Info));
        m.push(metric("hello_retry_pct", "%", pct(retried), Better::Info));
    }
    super::push_broker_cpu(&mut m, &u, "broker_cpu_per_conn", "us/conn", done);
    Ok(m)
}
