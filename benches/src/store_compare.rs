//! `tern-bench store-compare`: what durable storage costs. Runs the
//! `offline-qos1` scenario against Tern with each `[store]` setting and
//! against Mosquitto with `persistence true`, in alternating rounds, each on
//! a fresh data directory; reads the broker's disk counters between phases;
//! then times broker startup on a store full of queued and retained
//! messages. It owns the broker processes (unlike `run`) because two of its
//! figures need that: the time from spawn to ready, and what a broker wrote
//! while shutting down (read from `/proc/PID/io` of the exited but not yet
//! reaped child).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::client::{self, Proto};
use crate::harness::{resolve_tern, wait_quiet};
use crate::procstat::{self, Io};
use crate::report::{self, fmt_num, median, ratio};
use crate::scenarios::offline::{self, Opts};
use crate::scenarios::{Better, Metric, Target, metric, retained};

/// One broker set-up under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setup {
    /// Tern without a `[store]` section (whatever the default is).
    #[value(name = "default")]
    TernDefault,
    /// `engine = "memory"`: nothing on disk; the reference.
    Memory,
    /// redb, `durability = "batched"` (group commit).
    Batched,
    /// redb, `durability = "strict"`.
    Strict,
    /// redb, `durability = "none"` (no fsync, acks do not wait).
    None,
    /// Mosquitto, `persistence true` (snapshots at autosave/shutdown/SIGUSR1).
    Mosquitto,
}

impl Setup {
    pub fn name(self) -> &'static str {
        match self {
            Setup::TernDefault => "tern-default",
            Setup::Memory => "tern-memory",
            Setup::Batched => "tern-batched",
            Setup::Strict => "tern-strict",
            Setup::None => "tern-none",
            Setup::Mosquitto => "mosquitto",
        }
    }

    fn is_tern(self) -> bool {
        self != Setup::Mosquitto
    }

    /// The `[store]` section, or none for the default; `extra` lines go
    /// into it for the redb set-ups.
    fn store_toml(self, extra: &[String]) -> Option<String> {
        let redb = |d: &str| {
            let mut s = format!("[store]\nengine = \"redb\"\ndata_dir = \"data\"\ndurability = \"{d}\"\n");
            for l in extra {
                s.push_str(l);
                s.push('\n');
            }
            s
        };
        match self {
            Setup::TernDefault | Setup::Mosquitto => None,
            Setup::Memory => Some("[store]\nengine = \"memory\"\n".into()),
            Setup::Batched => Some(redb("batched")),
            Setup::Strict => Some(redb("strict")),
            Setup::None => Some(redb("none")),
        }
    }

    /// Where the broker keeps its files, inside the run directory.
    fn data_dir(self, run: &Path) -> PathBuf {
        match self {
            // Relative to the config file, which lives in `run`.
            Setup::TernDefault => run.join("tern-data"),
            _ => run.join("data"),
        }
    }
}

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct StoreArgs {
    /// Set-ups to compare, in the order of the table.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "memory,batched,strict,mosquitto"
    )]
    pub setups: Vec<Setup>,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Messages queued per offline run (all for one persistent subscriber
    /// unless --subs).
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    #[arg(long, default_value_t = 10)]
    pub pubs: usize,
    #[arg(long, default_value_t = 1)]
    pub subs: usize,
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// QoS 1 messages in flight per publisher.
    #[arg(long, default_value_t = 20)]
    pub window: usize,
    #[arg(long, value_enum, default_value = "3")]
    pub proto: Proto,
    /// Skip the offline-queue rounds (startup only).
    #[arg(long)]
    pub no_offline: bool,
    /// Skip the startup measurement.
    #[arg(long)]
    pub no_startup: bool,
    /// A `key = value` line added to `[store]` of the redb set-ups
    /// (repeatable), e.g. --store-option 'sync_interval = "2ms"'.
    #[arg(long)]
    pub store_option: Vec<String>,
    /// Tern set-up used for the startup measurement.
    #[arg(long, value_enum, default_value = "batched")]
    pub startup_setup: Setup,
    /// Startup store: this many persistent offline sessions ...
    #[arg(long, default_value_t = 10)]
    pub startup_sessions: usize,
    /// ... with this many queued QoS 1 messages each ...
    #[arg(long, default_value_t = 10_000)]
    pub startup_queued: u64,
    /// ... and this many retained messages.
    #[arg(long, default_value_t = 10_000)]
    pub startup_retained: usize,
    /// Timed restarts per broker.
    #[arg(long, default_value_t = 3)]
    pub startup_runs: usize,
    #[arg(long, default_value = "target/release/tern")]
    pub tern_bin: PathBuf,
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    pub mosquitto_bin: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub broker_cpu: usize,
    #[arg(long, default_value_t = 1)]
    pub gen_cpu: usize,
    #[arg(long, default_value_t = 18960)]
    pub port: u16,
    /// Parent of the temporary data directories (must be a real disk, not
    /// tmpfs). Default: $TMPDIR or /tmp.
    #[arg(long)]
    pub tmp: Option<PathBuf>,
    /// Keep the data directories (their path is printed).
    #[arg(long)]
    pub keep: bool,
    /// A run whose publishing phase saw more than this much CPU (cores) used
    /// by other processes on our two CPUs is repeated ...
    #[arg(long, default_value_t = 0.1)]
    pub max_foreign: f64,
    /// ... at most this many times.
    #[arg(long, default_value_t = 1)]
    pub retries: usize,
    /// Longest a publishing or draining phase may take, seconds.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// Results directory (default: benches/results/<date>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A broker child pinned to one CPU; killed on drop.
struct Broker {
    child: Child,
    pid: u32,
    spawned: Instant,
    setup: Setup,
    port: u16,
    ready: PathBuf,
    log: PathBuf,
}

/// Time from spawn to ready, milliseconds.
#[derive(Clone, Copy, Debug, Default)]
struct Startup {
    /// Tern's `--ready-file` written (listeners up).
    ready_ms: Option<f64>,
    /// A CONNECT on a fresh connection answered with a CONNACK.
    connack_ms: f64,
}

struct Stopped {
    stop_ms: f64,
    /// `/proc/PID/io` read after exit, before reaping: everything it wrote.
    io: Option<Io>,
}

fn tern_toml(s: Setup, port: u16, queue: u64, extra: &[String]) -> String {
    // Queue limits above the run's message count so nothing is dropped for
    // want of room; sys off so $SYS publishes do not touch the store.
    format!(
        "[log]\nlevel = \"warn\"\n\n[sys]\ninterval = \"0s\"\n\n[limits]\nmax_connections = 20000\n\
         max_queued_messages = {queue}\nmax_queued_bytes = \"4GiB\"\nmax_inflight = 20\n\n{}\n\
         [[listener]]\nname = \"bench\"\nbind = \"127.0.0.1:{port}\"\nallow_anonymous = true\n",
        s.store_toml(extra).unwrap_or_default()
    )
}

/// `max_queued_messages 0` is unlimited (and `max_queued_bytes` defaults to
/// unlimited). `autosave_interval 1800` is the default, spelled out: no
/// snapshot falls inside a run, so Mosquitto writes nothing while queueing;
/// it saves on SIGUSR1 and at shutdown. `user root` keeps it from dropping
/// to the `mosquitto` user, which could not write our temporary directory.
fn mosquitto_conf(port: u16, data: &Path) -> String {
    format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 20\nmax_queued_messages 0\n\
         max_connections -1\npersistence true\npersistence_location {}/\nautosave_interval 1800\n\
         set_tcp_nodelay true\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\n",
        data.display()
    )
}

impl Broker {
    /// Write the config into `run` and spawn the broker; does not wait.
    fn spawn(a: &StoreArgs, s: Setup, run: &Path, port: u16, queue: u64) -> Result<Broker> {
        fs::create_dir_all(run)?;
        let data = s.data_dir(run);
        let ready = run.join("ready");
        let _ = fs::remove_file(&ready);
        let (bin, args) = if s.is_tern() {
            let conf = run.join("tern.toml");
            fs::write(&conf, tern_toml(s, port, queue, &a.store_option))?;
            let args = vec![
                "--config".into(),
                conf.display().to_string(),
                "--ready-file".into(),
                ready.display().to_string(),
            ];
            (resolve_tern(&a.tern_bin), args)
        } else {
            fs::create_dir_all(&data)?;
            let conf = run.join("mosquitto.conf");
            fs::write(&conf, mosquitto_conf(port, &data))?;
            (a.mosquitto_bin.clone(), vec!["-c".into(), conf.display().to_string()])
        };
        if !bin.exists() {
            bail!("{} not found", bin.display());
        }
        let log = run.join(format!("{}.log", s.name()));
        let out = fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let cpu = a.broker_cpu;
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .current_dir(run)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: only sched_setaffinity, async-signal-safe, between fork and
        // exec. Pinning here rather than through taskset keeps an extra exec
        // out of the startup time.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = Instant::now();
        let child = cmd.spawn().with_context(|| format!("spawn {}", bin.display()))?;
        Ok(Broker {
            pid: child.id(),
            child,
            spawned,
            setup: s,
            port,
            ready,
            log,
        })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn target(&self, proto: Proto) -> Target {
        Target {
            addr: self.addr(),
            proto,
            broker_pid: Some(self.pid),
        }
    }

    fn log_tail(&self) -> String {
        let s = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Poll (1 ms) until the broker answers a CONNECT (and, for Tern, has
    /// written its ready file). Blocking: nothing else runs meanwhile.
    fn wait_ready(&mut self, limit: Duration) -> Result<Startup> {
        let mut st = Startup::default();
        let mut connack = None;
        while self.spawned.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during startup ({status}); log:\n{}",
                    self.setup.name(),
                    self.log_tail()
                );
            }
            let ms = self.spawned.elapsed().as_secs_f64() * 1e3;
            if self.setup.is_tern() && st.ready_ms.is_none() && fs::metadata(&self.ready).is_ok_and(|m| m.len() > 0) {
                st.ready_ms = Some(ms);
            }
            if connack.is_none() && probe_connack(self.addr(), Duration::from_secs(60)) {
                connack = Some(self.spawned.elapsed().as_secs_f64() * 1e3);
            }
            if let Some(c) = connack
                && (!self.setup.is_tern() || st.ready_ms.is_some())
            {
                st.connack_ms = c;
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!(
            "{} not ready after {limit:?}; log:\n{}",
            self.setup.name(),
            self.log_tail()
        )
    }

    /// SIGTERM, wait for the exit without reaping, read `/proc/PID/io`, reap.
    fn stop(mut self) -> Result<Stopped> {
        let t0 = Instant::now();
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let limit = Duration::from_secs(120);
        while t0.elapsed() < limit {
            // SAFETY: waitid with WNOWAIT leaves the child a zombie, so its
            // /proc entry (and io counters) stay readable until we reap it.
            let exited = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                ) == 0
                    && info.si_pid() != 0
            };
            if exited {
                let stop_ms = t0.elapsed().as_secs_f64() * 1e3;
                let io = procstat::proc_io(self.pid).ok();
                let status = self.child.wait()?;
                if !status.success() {
                    eprintln!(
                        "warning: {} exited with {status} after SIGTERM; log:\n{}",
                        self.setup.name(),
                        self.log_tail()
                    );
                }
                return Ok(Stopped { stop_ms, io });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        bail!("{} did not exit within {limit:?} of SIGTERM", self.setup.name())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One CONNECT (3.1.1, clean session, its own client id) → CONNACK round
/// trip; false if the port refuses or the answer is not a CONNACK.
fn probe_connack(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let id = format!("tb{}-probe", std::process::id());
    if s.write_all(&client::encode_connect_session(Proto::V311, &id, 60, true, None))
        .is_err()
    {
        return false;
    }
    let mut b = [0u8; 4];
    let ok = s.read_exact(&mut b).is_ok() && b[0] >> 4 == client::CONNACK && b[3] == 0;
    let _ = s.write_all(&client::DISCONNECT_FRAME);
    ok
}

/// Mosquitto writes its snapshot on SIGUSR1 (the same code path as at
/// shutdown): signal it and wait until the file is renamed into place and
/// its write counter has been still for 300 ms. Returns milliseconds taken.
fn mosquitto_snapshot(b: &Broker, data: &Path) -> Result<f64> {
    let t0 = Instant::now();
    let db = data.join("mosquitto.db");
    let tmp = data.join("mosquitto.db.new");
    let before = fs::metadata(&db).and_then(|m| m.modified()).ok();
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(b.pid as libc::pid_t, libc::SIGUSR1) };
    let mut last = procstat::proc_io(b.pid)?.wchar;
    let mut still_since = Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
        let w = procstat::proc_io(b.pid)?.wchar;
        if w != last {
            last = w;
            still_since = Instant::now();
        }
        let renewed = fs::metadata(&db)
            .and_then(|m| m.modified())
            .ok()
            .is_some_and(|m| Some(m) != before);
        if renewed && !tmp.exists() && still_since.elapsed() >= Duration::from_millis(300) {
            return Ok((still_since - t0).as_secs_f64() * 1e3);
        }
    }
    bail!("mosquitto did not write {} within 120 s of SIGUSR1", db.display())
}

fn per(bytes: i64, msgs: u64) -> f64 {
    bytes.max(0) as f64 / msgs.max(1) as f64
}

/// One offline-queue run on a fresh data directory.
async fn offline_run(a: &StoreArgs, s: Setup, run: &Path, round: usize) -> Result<Vec<Metric>> {
    let mut b = Broker::spawn(a, s, run, a.port, a.messages + 1000)?;
    let st = b.wait_ready(Duration::from_secs(60))?;
    let t = b.target(a.proto);
    let data = s.data_dir(run);
    let o = Opts {
        messages: a.messages,
        pubs: a.pubs,
        subs: a.subs,
        payload: a.payload,
        window: a.window,
        expiry: 3600,
        prefix: format!("tb{}-r{round}", std::process::id()),
        drain: true,
        timeout: Duration::from_secs_f64(a.timeout),
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    offline::park(t, &o).await?;
    let io0 = procstat::proc_io(b.pid)?;
    let p = offline::publish(t, &o).await?;
    let io_ack = procstat::proc_io(b.pid)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let io1 = procstat::proc_io(b.pid)?;
    let mut m = offline::publish_metrics(&o, &p);
    let n = p.acked;
    m.push(metric(
        "write_bytes_per_msg_at_ack",
        "B/msg",
        per(io_ack.since(&io0).disk_bytes(), n),
        Better::Lower,
    ));
    offline::io_metrics(&mut m, "", &io1.since(&io0), n);
    // With N messages queued: Tern's file as it stands; Mosquitto's only
    // after a snapshot, which is what it would write at shutdown.
    let (file_bytes, io_saved) = if s.is_tern() {
        (procstat::dir_bytes(&data), io1)
    } else {
        let ms = mosquitto_snapshot(&b, &data)?;
        m.push(metric("snapshot_ms", "ms", ms, Better::Lower));
        let io = procstat::proc_io(b.pid)?;
        m.push(metric(
            "snapshot_write_bytes_per_msg",
            "B/msg",
            per(io.since(&io1).disk_bytes(), n),
            Better::Lower,
        ));
        (procstat::dir_bytes(&data), io)
    };
    m.push(metric(
        "total_write_bytes_per_msg",
        "B/msg",
        per(io_saved.since(&io0).disk_bytes(), n),
        Better::Lower,
    ));
    m.push(metric(
        "file_bytes_per_msg",
        "B/msg",
        per(file_bytes as i64, n),
        Better::Lower,
    ));
    let d = offline::drain(t, &o, Duration::from_secs(5)).await?;
    let io2 = procstat::proc_io(b.pid)?;
    offline::drain_metrics(&mut m, &o, &d);
    offline::io_metrics(&mut m, "drain_", &io2.since(&io_saved), d.received);
    let stopped = b.stop()?;
    m.push(metric("stop_ms", "ms", stopped.stop_ms, Better::Lower));
    if let Some(io) = stopped.io {
        m.push(metric(
            "exit_write_bytes",
            "B",
            io.since(&io2).disk_bytes().max(0) as f64,
            Better::Info,
        ));
    }
    m.push(metric(
        "file_bytes_after_exit",
        "B",
        procstat::dir_bytes(&data) as f64,
        Better::Info,
    ));
    m.push(metric("start_empty_ms", "ms", st.connack_ms, Better::Info));
    Ok(m)
}

/// Rows of one table: per set-up, one value per round.
#[derive(Serialize)]
struct Row {
    key: String,
    unit: &'static str,
    better: Better,
    /// values[setup][round]
    values: Vec<Vec<f64>>,
}

fn rows(setups: usize, runs: &[Vec<Vec<Metric>>]) -> Vec<Row> {
    // runs[setup][round] = metrics
    let mut out: Vec<Row> = Vec::new();
    for per_setup in runs {
        for round in per_setup {
            for m in round {
                if !out.iter().any(|r| r.key == m.key) {
                    out.push(Row {
                        key: m.key.clone(),
                        unit: m.unit,
                        better: m.better,
                        values: vec![Vec::new(); setups],
                    });
                }
            }
        }
    }
    for r in &mut out {
        for (k, per_setup) in runs.iter().enumerate() {
            r.values[k] = per_setup
                .iter()
                .map(|round| round.iter().find(|m| m.key == r.key).map_or(f64::NAN, |m| m.value))
                .collect();
        }
    }
    out
}

fn print_medians(names: &[&str], rows: &[Row]) {
    println!("| metric | unit | {} |", names.join(" | "));
    println!("|---|---|{}", "--:|".repeat(names.len()));
    for r in rows {
        let tag = match r.better {
            Better::Higher => " ↑",
            Better::Lower => " ↓",
            Better::Info => "",
        };
        let cells: Vec<String> = r
            .values
            .iter()
            .map(|v| {
                if v.iter().all(|x| x.is_nan()) {
                    "–".into()
                } else {
                    fmt_num(median(v))
                }
            })
            .collect();
        println!("| {}{tag} | {} | {} |", r.key, r.unit, cells.join(" | "));
    }
}

/// Ratio of medians against a reference set-up, with the range of the
/// per-round ratios (same round = side by side in time).
fn print_ratios(names: &[&str], rows: &[Row], keys: &[&str], refs: &[usize]) {
    let mut head = String::from("| metric | set-up |");
    let mut rule = String::from("|---|---|");
    for &r in refs {
        head.push_str(&format!(" ÷ {} (rounds) |", names[r]));
        rule.push_str("--:|");
    }
    println!("{head}\n{rule}");
    for key in keys {
        let Some(row) = rows.iter().find(|r| r.key == *key) else {
            continue;
        };
        for (k, name) in names.iter().enumerate() {
            if refs.iter().all(|&r| r == k) || row.values[k].iter().all(|x| x.is_nan()) {
                continue;
            }
            let cells: Vec<String> = refs
                .iter()
                .map(|&r| {
                    if r == k {
                        return "1".into();
                    }
                    let rat = ratio(median(&row.values[k]), median(&row.values[r]));
                    let per: Vec<f64> = row.values[k]
                        .iter()
                        .zip(&row.values[r])
                        .map(|(x, y)| ratio(*x, *y))
                        .filter(|x| x.is_finite())
                        .collect();
                    let lo = per.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = per.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if !rat.is_finite() || median(&row.values[r]).abs() < 1e-9 {
                        "–".into()
                    } else if per.len() > 1 {
                        format!("{rat:.3} ({lo:.3}–{hi:.3})")
                    } else {
                        format!("{rat:.3}")
                    }
                })
                .collect();
            println!("| {key} | {name} | {} |", cells.join(" | "));
        }
    }
}

/// Fill a store, stop it, then time restarts on it.
async fn startup(a: &StoreArgs, base: &Path) -> Result<(Vec<&'static str>, Vec<Row>)> {
    let mut setups = vec![a.startup_setup];
    if a.setups.contains(&Setup::Mosquitto) {
        setups.push(Setup::Mosquitto);
    }
    let sessions = a.startup_sessions.max(1);
    let o = Opts {
        messages: a.startup_queued * sessions as u64,
        pubs: sessions,
        subs: sessions,
        payload: a.payload,
        window: a.window,
        expiry: 3600,
        prefix: format!("tb{}-fill", std::process::id()),
        drain: false,
        timeout: Duration::from_secs_f64(a.timeout),
    };
    let queue = a.startup_queued + 1000;
    // results[setup] = one metric list per timed run (fill figures in run 0).
    let mut results: Vec<Vec<Vec<Metric>>> = vec![Vec::new(); setups.len()];
    for (k, &s) in setups.iter().enumerate() {
        let run = base.join(format!("startup-{}", s.name()));
        let mut b = Broker::spawn(a, s, &run, a.port, queue)?;
        b.wait_ready(Duration::from_secs(60))?;
        let t = b.target(a.proto);
        offline::park(t, &o).await?;
        let p = offline::publish(t, &o).await?;
        if p.acked < o.messages || p.refused > 0 {
            eprintln!(
                "warning: {}: {} of {} fill messages acknowledged, {} refused",
                s.name(),
                p.acked,
                o.messages,
                p.refused
            );
        }
        let t0 = Instant::now();
        retained::store(t, a.startup_retained, a.payload, a.window, Instant::now()).await?;
        let ret_secs = t0.elapsed().as_secs_f64();
        let stopped = b.stop()?;
        let mut m = vec![
            metric("fill_queued_per_s", "msg/s", p.acked as f64 / p.secs, Better::Higher),
            metric(
                "fill_retained_per_s",
                "msg/s",
                a.startup_retained as f64 / ret_secs,
                Better::Higher,
            ),
            metric("fill_stop_ms", "ms", stopped.stop_ms, Better::Lower),
            metric(
                "file_bytes",
                "B",
                procstat::dir_bytes(&s.data_dir(&run)) as f64,
                Better::Lower,
            ),
        ];
        if let Some(io) = stopped.io {
            m.push(metric("fill_write_bytes", "B", io.disk_bytes() as f64, Better::Lower));
        }
        if s.is_tern() {
            check_and_compact(a, &run, &mut m)?;
        }
        results[k].push(m);
        eprintln!(
            "startup: filled {} ({} B on disk)",
            s.name(),
            procstat::dir_bytes(&s.data_dir(&run))
        );
    }
    let want_q = o.messages;
    for r in 0..a.startup_runs.max(1) {
        let last = r + 1 == a.startup_runs.max(1);
        // Alternate the order per run.
        let order: Vec<usize> = if r % 2 == 0 {
            (0..setups.len()).collect()
        } else {
            (0..setups.len()).rev().collect()
        };
        for k in order {
            let s = setups[k];
            let run = base.join(format!("startup-{}", s.name()));
            let empty = base.join(format!("startup-empty-{}-{r}", s.name()));
            if !wait_quiet(a.max_foreign, Duration::from_secs(20)).await {
                eprintln!("startup run {}: CPUs busy with other work, going ahead", r + 1);
            }
            let mut m = Vec::new();
            // Baseline: the same broker on an empty data directory.
            let mut b = Broker::spawn(a, s, &empty, a.port, queue)?;
            let st = b.wait_ready(Duration::from_secs(60))?;
            b.stop()?;
            let _ = fs::remove_dir_all(&empty);
            m.push(metric("empty_connack_ms", "ms", st.connack_ms, Better::Lower));
            let mut b = Broker::spawn(a, s, &run, a.port, queue)?;
            let st = b.wait_ready(Duration::from_secs(600))?;
            if let Some(ms) = st.ready_ms {
                m.push(metric("ready_ms", "ms", ms, Better::Lower));
            }
            m.push(metric("connack_ms", "ms", st.connack_ms, Better::Lower));
            m.push(metric(
                "rss_after_start",
                "KiB",
                procstat::proc_mem(b.pid)?.rss_kib as f64,
                Better::Lower,
            ));
            if last {
                // Prove the content survived: every session back with its
                // queue, every retained message there.
                let t = b.target(a.proto);
                let (got, _) = retained::receive_all(t, a.startup_retained, Duration::from_secs(5)).await?;
                m.push(metric("restored_retained", "msgs", got as f64, Better::Higher));
                let d = offline::drain(t, &o, Duration::from_secs(5)).await?;
                m.push(metric("restored_queued", "msgs", d.received as f64, Better::Higher));
                m.push(metric(
                    "restored_sessions",
                    "sessions",
                    d.present as f64,
                    Better::Higher,
                ));
                m.push(metric("restored_dups", "msgs", d.dups as f64, Better::Lower));
                m.push(metric(
                    "restored_out_of_order",
                    "msgs",
                    d.out_of_order as f64,
                    Better::Lower,
                ));
                if d.received < want_q || got < a.startup_retained {
                    eprintln!(
                        "warning: {} restored {} of {want_q} queued and {got} of {} retained messages",
                        s.name(),
                        d.received,
                        a.startup_retained
                    );
                }
            }
            b.stop()?;
            if r == 0 {
                results[k][0].append(&mut m);
            } else {
                results[k].push(m);
            }
        }
    }
    let names = setups.iter().map(|s| s.name()).collect();
    Ok((names, rows(setups.len(), &results)))
}

/// `tern store check` on the filled store (its counts are reported, so a
/// reader can see what the startup had to load), then `tern store compact`
/// on a copy, to tell live data from free pages in the file.
fn check_and_compact(a: &StoreArgs, run: &Path, m: &mut Vec<Metric>) -> Result<()> {
    let tern = resolve_tern(&a.tern_bin);
    let conf = run.join("tern.toml");
    let t0 = Instant::now();
    let out = Command::new(&tern)
        .args(["store", "check", "--config"])
        .arg(&conf)
        .output()
        .context("tern store check")?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "warning: tern store check failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return Ok(());
    }
    m.push(metric("check_ms", "ms", ms, Better::Lower));
    // Lines such as "  queued         100000".
    for (label, key) in [
        ("queued", "check_queued"),
        ("retained", "check_retained"),
        ("sessions", "check_sessions"),
    ] {
        let v = text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(label))
                .then(|| w.next()?.parse::<f64>().ok())
                .flatten()
        });
        if let Some(v) = v {
            m.push(metric(key, "count", v, Better::Info));
        }
    }
    let copy = run.with_file_name(format!(
        "{}-compacted",
        run.file_name()
            .map_or("store".into(), |n| n.to_string_lossy().into_owned())
    ));
    fs::create_dir_all(copy.join("data"))?;
    fs::copy(&conf, copy.join("tern.toml"))?;
    fs::copy(run.join("data").join("tern.redb"), copy.join("data").join("tern.redb"))?;
    let out = Command::new(&tern)
        .args(["store", "compact", "--config"])
        .arg(copy.join("tern.toml"))
        .output()
        .context("tern store compact")?;
    if out.status.success() {
        m.push(metric(
            "compacted_file_bytes",
            "B",
            procstat::dir_bytes(&copy.join("data")) as f64,
            Better::Lower,
        ));
    } else {
        eprintln!(
            "warning: tern store compact failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = fs::remove_dir_all(&copy);
    Ok(())
}

fn git_rev() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let rev = out(&["rev-parse", "--short", "HEAD"]);
    let dirty = !out(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty { format!("{rev}+dirty") } else { rev }
}

#[derive(Serialize)]
struct Json<'a> {
    date: String,
    commit: String,
    machine: report::Machine,
    args: &'a StoreArgs,
    data_parent: String,
    offline: Option<(Vec<&'static str>, Vec<Row>)>,
    startup: Option<(Vec<&'static str>, Vec<Row>)>,
}

pub async fn run(a: StoreArgs) -> Result<()> {
    if a.setups.is_empty() {
        bail!("no set-ups");
    }
    procstat::watch_cpus(vec![a.broker_cpu, a.gen_cpu]);
    let parent = a.tmp.clone().unwrap_or_else(std::env::temp_dir);
    if procstat::is_tmpfs(&parent) {
        bail!(
            "{} is a tmpfs: fsync costs nothing there. Pass --tmp DIR on a disk",
            parent.display()
        );
    }
    let base = parent.join(format!("tern-store-bench-{}", std::process::id()));
    fs::create_dir_all(&base)?;
    let commit = git_rev();
    println!(
        "store-compare: commit {commit}, data under {} ({}), MQTT {}, {} msgs x {} B, {} publishers (window {}), {} persistent subscriber(s)",
        base.display(),
        if a.keep { "kept" } else { "removed afterwards" },
        if a.proto == Proto::V5 { "5.0" } else { "3.1.1" },
        a.messages,
        a.payload,
        a.pubs,
        a.window,
        a.subs
    );
    let result = run_inner(&a, &base, commit).await;
    if !a.keep {
        let _ = fs::remove_dir_all(&base);
    }
    result
}

async fn run_inner(a: &StoreArgs, base: &Path, commit: String) -> Result<()> {
    let names: Vec<&'static str> = a.setups.iter().map(|s| s.name()).collect();
    let mut offline_rows = None;
    if !a.no_offline {
        // runs[setup][round]
        let mut runs: Vec<Vec<Vec<Metric>>> = vec![Vec::new(); a.setups.len()];
        for r in 0..a.rounds {
            let started = Instant::now();
            let n = a.setups.len();
            // Rotate the order each round so no set-up always goes first.
            for i in 0..n {
                let k = (i + r) % n;
                let s = a.setups[k];
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    if !wait_quiet(a.max_foreign, Duration::from_secs(20)).await {
                        eprintln!("round {}: {}: CPUs busy with other work, going ahead", r + 1, s.name());
                    }
                    let dir = base.join(format!("r{r}-{}-{attempt}", s.name()));
                    let mut m = offline_run(a, s, &dir, r)
                        .await
                        .with_context(|| format!("round {}: {}", r + 1, s.name()))?;
                    if !a.keep {
                        let _ = fs::remove_dir_all(&dir);
                    }
                    let foreign = m.iter().find(|x| x.key == "foreign_cpu").map_or(0.0, |x| x.value);
                    if foreign > a.max_foreign && attempt <= a.retries {
                        eprintln!(
                            "round {}: {} contended ({foreign:.2} foreign cores), repeating",
                            r + 1,
                            s.name()
                        );
                        continue;
                    }
                    m.push(metric("attempts", "runs", attempt as f64, Better::Info));
                    let rate = m.iter().find(|x| x.key == "publish_per_s").map_or(0.0, |x| x.value);
                    eprintln!("round {}: {}: {rate:.0} msg/s queued", r + 1, s.name());
                    runs[k].push(m);
                    break;
                }
            }
            eprintln!(
                "round {}/{} done in {:.1} s",
                r + 1,
                a.rounds,
                started.elapsed().as_secs_f64()
            );
        }
        let rows = rows(a.setups.len(), &runs);
        println!(
            "\n### Offline QoS 1 queue: {} messages of {} B, medians of {} rounds\n",
            a.messages, a.payload, a.rounds
        );
        print_medians(&names, &rows);
        let refs: Vec<usize> = [Setup::Memory, Setup::Mosquitto]
            .iter()
            .filter_map(|s| a.setups.iter().position(|x| x == s))
            .collect();
        if !refs.is_empty() {
            println!();
            print_ratios(
                &names,
                &rows,
                &[
                    "publish_per_s",
                    "broker_cpu_per_msg",
                    "total_write_bytes_per_msg",
                    "file_bytes_per_msg",
                    "drain_per_s",
                ],
                &refs,
            );
        }
        println!("\n(– : the reference is about 0, no ratio. Per-round ratios compare runs of the same round.)");
        if a.setups.contains(&Setup::Mosquitto) {
            println!(
                "\nMosquitto writes nothing while it queues: its persistence is a snapshot every \
                 autosave_interval (1800 s, not reached here), on SIGUSR1 and at shutdown, so an \
                 acknowledged message is lost on a crash until the next snapshot. Its disk figures \
                 come from a snapshot forced with SIGUSR1 right after publishing (snapshot_*)."
            );
        }
        offline_rows = Some((names.clone(), rows));
    }
    let mut startup_rows = None;
    if !a.no_startup {
        let (snames, rows) = startup(a, base).await?;
        println!(
            "\n### Startup with {} sessions x {} queued + {} retained messages ({} timed restarts)\n",
            a.startup_sessions, a.startup_queued, a.startup_retained, a.startup_runs
        );
        print_medians(&snames, &rows);
        if snames.len() > 1 {
            println!();
            print_ratios(
                &snames,
                &rows,
                &["connack_ms", "empty_connack_ms", "file_bytes", "rss_after_start"],
                &[snames.len() - 1],
            );
        }
        println!(
            "\nready_ms: Tern's --ready-file written; connack_ms: a CONNECT answered (both brokers), \
             from spawn. Mosquitto's file is written by its graceful stop (fill_stop_ms)."
        );
        startup_rows = Some((snames, rows));
    }
    let day = report::today();
    let out_dir = a
        .out
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results").join(&day));
    fs::create_dir_all(&out_dir)?;
    let path = out_dir.join(format!("store-compare-{}.json", report::now_hms()));
    let j = Json {
        date: day,
        commit,
        machine: report::machine(),
        args: a,
        data_parent: base.display().to_string(),
        offline: offline_rows,
        startup: startup_rows,
    };
    fs::write(&path, serde_json::to_string_pretty(&j)?)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_size_the_queues_and_name_the_store() {
        let t = tern_toml(Setup::Strict, 1, 101_000, &["sync_batch = 64".into()]);
        assert!(t.contains("max_queued_messages = 101000"));
        assert!(t.contains("durability = \"strict\"") && t.contains("data_dir = \"data\""));
        assert!(t.contains("sync_batch = 64\n"));
        assert!(!tern_toml(Setup::TernDefault, 1, 1, &[]).contains("[store]"));
        assert!(tern_toml(Setup::Memory, 1, 1, &[]).contains("engine = \"memory\""));
        let m = mosquitto_conf(2, Path::new("/x/data"));
        for want in [
            "persistence true",
            "persistence_location /x/data/",
            "max_queued_messages 0",
        ] {
            assert!(m.contains(want), "{want}");
        }
    }

    #[test]
    fn rows_line_up_by_setup_and_round() {
        let runs = vec![
            vec![
                vec![metric("x", "u", 1.0, Better::Higher)],
                vec![metric("x", "u", 3.0, Better::Higher)],
            ],
            vec![vec![metric("y", "u", 2.0, Better::Lower)], vec![]],
        ];
        let r = rows(2, &runs);
        assert_eq!(r[0].key, "x");
        assert_eq!(r[0].values[0], vec![1.0, 3.0]);
        assert!(r[0].values[1].iter().all(|v| v.is_nan()));
        assert_eq!(r[1].values[1][0], 2.0);
    }
}
