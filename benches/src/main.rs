//! tern-bench: MQTT load generator (`run`), Tern-vs-Mosquitto harness
//! (`compare`) and durable-storage comparison (`store-compare`).

mod client;
mod harness;
mod procstat;
mod report;
mod scenarios;
mod store_compare;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use client::Proto;
use scenarios::{Target, flow, handshakes, idle, offline, print_metrics, retained, topics};

#[derive(Parser)]
#[command(name = "tern-bench", about = "MQTT load generator and broker comparison harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario against a broker that is already running.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        scenario: Scenario,
    },
    /// Start two brokers, alternate them over rounds, report medians and ratios.
    Compare(harness::CompareArgs),
    /// Durable storage: offline QoS 1 queueing, disk bytes per message and
    /// startup on a full store, Tern's store set-ups vs Mosquitto's persistence.
    StoreCompare(store_compare::StoreArgs),
}

#[derive(Args)]
struct Common {
    #[arg(long, global = true, default_value = "127.0.0.1:1883")]
    addr: SocketAddr,
    #[arg(long, global = true, value_enum, default_value = "3")]
    proto: Proto,
    /// Account the broker's CPU (utime+stime) to the run.
    #[arg(long, global = true)]
    broker_pid: Option<u32>,
    /// Runtime worker threads; 1 = current-thread runtime (pin with taskset).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Print the metrics as one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Connect every client with this user name (and --password).
    #[arg(long, global = true)]
    username: Option<String>,
    #[arg(long, global = true, default_value = "")]
    password: String,
    /// Speak TLS 1.3 to the broker, trusting the CA certificate(s) in this
    /// PEM file (every scenario; rustls on ring).
    #[arg(long, global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// Server name sent and checked against the broker's certificate.
    #[arg(long, global = true, default_value = "localhost")]
    tls_name: String,
    /// Speak TLS 1.3 but accept whatever certificate the broker presents
    /// (benchmark only: it takes the client's signature checks out of a
    /// handshake-rate measurement; the broker's work is unchanged).
    #[arg(long, global = true, conflicts_with = "tls_ca")]
    tls_skip_verify: bool,
    /// Let TLS sessions resume with the broker's tickets (default: every
    /// connection makes a full handshake).
    #[arg(long, global = true)]
    tls_resume: bool,
}

#[derive(Args, Clone)]
struct FlowArgs {
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// QoS 1/2 messages in flight per publisher.
    #[arg(long, default_value_t = 20)]
    window: usize,
    /// Total msg/s across publishers (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
}

impl FlowArgs {
    fn opts(&self) -> flow::Opts {
        flow::Opts {
            qos: self.qos,
            payload: self.payload,
            duration: Duration::from_secs_f64(self.duration),
            window: self.window,
            rate: self.rate,
        }
    }
}

#[derive(Subcommand)]
enum Scenario {
    /// P publishers → S subscribers; each message goes to one subscriber.
    Pubsub {
        #[arg(long, default_value_t = 10)]
        pubs: usize,
        #[arg(long, default_value_t = 10)]
        subs: usize,
        #[command(flatten)]
        f: FlowArgs,
    },
    /// 1 publisher → N subscribers of the same topic.
    Fanout {
        #[arg(long, default_value_t = 100)]
        subs: usize,
        #[command(flatten)]
        f: FlowArgs,
    },
    /// N publishers → 1 subscriber.
    Fanin {
        #[arg(long, default_value_t = 100)]
        pubs: usize,
        #[command(flatten)]
        f: FlowArgs,
    },
    /// Fixed-rate end-to-end latency (p50/p99/p99.9) and CPU per message.
    Latency {
        #[arg(long, default_value_t = 10)]
        pubs: usize,
        #[arg(long, default_value_t = 10)]
        subs: usize,
        #[command(flatten)]
        f: FlowArgs,
    },
    /// Open N idle connections, report the connect rate, hold them.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Handshakes in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to hold the connections open (read the broker's memory now).
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
    },
    /// Open and close sessions as fast as C clients can for N seconds: TCP
    /// connect, TLS handshake (with --tls-ca), CONNECT, CONNACK, DISCONNECT,
    /// close. Reports sessions/s and connect-to-CONNACK latency.
    Handshakes {
        /// Sessions being set up at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Store N retained messages, then time their delivery to one subscriber.
    Retained {
        #[arg(long, default_value_t = 10_000)]
        topics: usize,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        #[arg(long, default_value_t = 20)]
        window: usize,
    },
    /// Persistent subscribers go offline, then N QoS 1 messages are queued
    /// for them (msg/s until the last PUBACK); then they reconnect and drain.
    #[command(name = "offline-qos1")]
    OfflineQos1 {
        /// Messages published in all.
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        #[arg(long, default_value_t = 10)]
        pubs: usize,
        /// Persistent subscribers; publisher i's topic goes to subscriber i mod S.
        #[arg(long, default_value_t = 1)]
        subs: usize,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        #[arg(long, default_value_t = 20)]
        window: usize,
        /// v5 Session Expiry Interval, seconds (3.1.1: clean session = false).
        #[arg(long, default_value_t = 3600)]
        expiry: u32,
        /// Client id prefix of the subscribers (`<prefix>-sub<j>`).
        #[arg(long)]
        prefix: Option<String>,
        /// Do not reconnect the subscribers to read their queues.
        #[arg(long)]
        no_drain: bool,
        /// Seconds a phase may take at most.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
        /// The broker's data directory: its size after publishing is reported.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Subscribe to a tree of N exact topics, then publish across all of them.
    Topics {
        #[arg(long, default_value_t = 100_000)]
        topics: usize,
        #[arg(long, default_value_t = 10)]
        pubs: usize,
        #[arg(long, default_value_t = 10)]
        subs: usize,
        #[command(flatten)]
        f: FlowArgs,
    },
}

async fn run(t: Target, s: Scenario, json: bool) -> Result<()> {
    let (title, ms) = match s {
        Scenario::Pubsub { pubs, subs, f } => (
            "pubsub",
            flow::run(t, &flow::Plan::pubsub(pubs, subs, false), &f.opts()).await?,
        ),
        Scenario::Fanout { subs, f } => (
            "fanout",
            flow::run(t, &flow::Plan::pubsub(1, subs, true), &f.opts()).await?,
        ),
        Scenario::Fanin { pubs, f } => (
            "fanin",
            flow::run(t, &flow::Plan::pubsub(pubs, 1, false), &f.opts()).await?,
        ),
        Scenario::Latency { pubs, subs, mut f } => {
            f.rate.get_or_insert(20_000.0);
            (
                "latency",
                flow::run(t, &flow::Plan::pubsub(pubs, subs, false), &f.opts()).await?,
            )
        }
        Scenario::Idle {
            conns,
            concurrency,
            hold,
        } => {
            let (mut held, ms) = idle::open(t, conns, concurrency).await?;
            print_metrics("idle", &ms);
            if let Some(pid) = t.broker_pid {
                tokio::time::sleep(Duration::from_secs(1)).await;
                println!("  broker memory: {:?}", procstat::proc_mem(pid)?);
            }
            println!("holding {} connections for {hold} s", held.len());
            tokio::time::sleep(Duration::from_secs_f64(hold)).await;
            idle::check(&mut held).await?;
            idle::close(held);
            return Ok(());
        }
        Scenario::Handshakes { concurrency, duration } => (
            "handshakes",
            handshakes::run(t, concurrency, Duration::from_secs_f64(duration)).await?,
        ),
        Scenario::Retained {
            topics,
            payload,
            window,
        } => ("retained", retained::run(t, topics, payload, window).await?),
        Scenario::OfflineQos1 {
            messages,
            pubs,
            subs,
            payload,
            window,
            expiry,
            prefix,
            no_drain,
            timeout,
            data_dir,
        } => {
            let o = offline::Opts {
                messages,
                pubs,
                subs,
                payload,
                window,
                expiry,
                prefix: prefix.unwrap_or_else(|| scenarios::client_id("off", 0)),
                drain: !no_drain,
                timeout: Duration::from_secs_f64(timeout),
            };
            ("offline-qos1", offline::run(t, &o, data_dir).await?)
        }
        Scenario::Topics {
            topics: n,
            pubs,
            subs,
            f,
        } => ("topics", topics::run(t, n, pubs, subs, &f.opts()).await?),
    };
    if json {
        println!("{}", serde_json::json!({ "scenario": title, "metrics": ms }));
    } else {
        print_metrics(title, &ms);
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Cmd::Run { common, .. } => common.threads,
        Cmd::Compare(a) => {
            // The generator gets its own core, apart from the broker's.
            procstat::pin_self(a.gen_cpu)?;
            1
        }
        Cmd::StoreCompare(a) => {
            procstat::pin_self(a.gen_cpu)?;
            1
        }
    };
    procstat::raise_nofile(65_536);
    // One core is what the generator gets in `compare`; a current-thread
    // runtime there avoids cross-thread wakeups entirely.
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Run { common, scenario } => {
                if let Some(user) = common.username.clone() {
                    let _ = client::CREDENTIALS.set((user, common.password.clone()));
                }
                if common.tls_ca.is_some() || common.tls_skip_verify {
                    let tls = client::Tls::new(common.tls_ca.as_deref(), &common.tls_name, common.tls_resume)?;
                    let _ = client::TLS.set(tls);
                }
                let t = Target {
                    addr: common.addr,
                    proto: common.proto,
                    broker_pid: common.broker_pid,
                };
                run(t, scenario, common.json).await
            }
            Cmd::Compare(a) => harness::compare(a).await,
            Cmd::StoreCompare(a) => store_compare::run(a).await,
        }
    })
}
