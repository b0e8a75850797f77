//! Start the real broker binary (or Mosquitto, for validating the suite itself).

use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long we wait for a broker to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a graceful stop may take: the broker's 5 s drain plus slack.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(12);

/// Which broker implementation the suite drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tern,
    Mosquitto,
}

/// The implementation selected by `TERN_TEST_BROKER` (`tern` by default, or `mosquitto`).
pub fn kind() -> Kind {
    match std::env::var("TERN_TEST_BROKER").as_deref() {
        Ok("mosquitto") => Kind::Mosquitto,
        _ => Kind::Tern,
    }
}

/// True when the suite drives the real tern binary.
pub fn is_tern() -> bool {
    kind() == Kind::Tern
}

/// Print a notice and return true when the current test needs tern and the
/// suite runs against another broker. Use as `if skip_unless_tern("why") { return; }`.
pub fn skip_unless_tern(what: &str) -> bool {
    if is_tern() {
        false
    } else {
        eprintln!("SKIP (tern-only behaviour under {:?}): {what}", kind());
        true
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent")
        .to_path_buf()
}

static BUILD: Once = Once::new();

/// Path of the tern binary: `TERN_BIN`, else `<target>/debug/tern`, built once if missing.
pub fn tern_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TERN_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_relative() { workspace_dir().join(p) } else { p })
        .unwrap_or_else(|| workspace_dir().join("target"));
    let bin = target.join("debug").join("tern");
    BUILD.call_once(|| {
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "tern", "--bin", "tern"])
                .current_dir(workspace_dir())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p tern --bin tern failed");
        }
    });
    bin
}

/// A running broker process, killed on drop. Its stderr goes to a file in its
/// temp dir and is printed when the owning test panics.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    listeners: Vec<(String, String, SocketAddr)>,
    kind: Kind,
    exit: Option<ExitStatus>,
    /// Processes started so far on this dir; earlier runs' stderr is kept as
    /// `stderr.run<N>.log` so a failing restart test shows every run.
    runs: u32,
}

/// Why a launch did not reach "ready".
#[derive(Debug)]
pub enum LaunchError {
    /// The process exited before writing its ready file.
    Exited(ExitStatus),
    /// Still no ready file after [`START_TIMEOUT`] (the process is killed).
    TimedOut,
}

impl Broker {
    /// A broker with the default configuration and one anonymous listener.
    pub fn start() -> Broker {
        Broker::start_with("")
    }

    /// A broker whose config is `fragment` plus, unless the fragment declares
    /// its own `[[listener]]`, one anonymous MQTT listener on 127.0.0.1:0.
    pub fn start_with(fragment: &str) -> Broker {
        let mut b = Broker::prepare_with(fragment);
        b.launch();
        b
    }

    /// Write the config for `fragment` into a fresh temp dir without starting
    /// anything; [`Broker::launch`] or [`Broker::try_launch`] starts it. For
    /// tests that need files in place (e.g. a corrupt store) before the first
    /// start.
    pub fn prepare_with(fragment: &str) -> Broker {
        match kind() {
            Kind::Tern => Broker::prepare_tern(fragment),
            Kind::Mosquitto => Broker::prepare_mosquitto(fragment),
        }
    }

    /// Full tern config text for a fragment (see [`Broker::start_with`]).
    pub fn config_text(fragment: &str) -> String {
        let mut cfg = String::new();
        if !fragment.contains("[log]") {
            cfg.push_str("[log]\nlevel = \"debug\"\n\n");
        }
        cfg.push_str(fragment);
        cfg.push('\n');
        if !fragment.contains("[[listener]]") {
            cfg.push_str(
                "\n[[listener]]\nname = \"default\"\nbind = \"127.0.0.1:0\"\nprotocol = \"mqtt\"\nallow_anonymous = true\n",
            );
        }
        cfg
    }

    fn prepare_tern(fragment: &str) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("tern.toml"), Broker::config_text(fragment)).expect("write config");
        Broker {
            child: None,
            dir,
            listeners: Vec::new(),
            kind: Kind::Tern,
            exit: None,
            runs: 0,
        }
    }

    fn prepare_mosquitto(fragment: &str) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let frag: toml::Table = toml::from_str(fragment).expect("fragment is TOML");
        let port = free_port();
        let mut conf = format!(
            "per_listener_settings false\nallow_anonymous true\nlog_dest stderr\nlog_type all\n\
             persistence false\nuser root\nlistener {port} 127.0.0.1\n"
        );
        let get = |t: &str, k: &str| frag.get(t).and_then(|v| v.get(k)).cloned();
        let num = |v: toml::Value| -> String {
            match v {
                toml::Value::String(s) => size_to_bytes(&s).to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => other.to_string(),
            }
        };
        for (key, mkey) in [
            ("max_packet_size", "max_packet_size"),
            ("max_connections", "max_connections"),
            ("max_inflight", "max_inflight_messages"),
            ("max_queued_messages", "max_queued_messages"),
            ("max_queued_bytes", "max_queued_bytes"),
            ("topic_alias_maximum", "max_topic_alias"),
            ("max_keep_alive", "max_keepalive"),
            ("max_qos", "max_qos"),
            ("retain_available", "retain_available"),
        ] {
            if let Some(v) = get("limits", key) {
                conf.push_str(&format!("{mkey} {}\n", num(v)));
            }
        }
        if let Some(toml::Value::String(s)) = get("sys", "interval") {
            conf.push_str(&format!("sys_interval {}\n", duration_secs(&s)));
        }
        let cfg_path = dir.path().join("mosquitto.conf");
        fs::write(&cfg_path, conf).expect("write mosquitto.conf");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("socket address");
        Broker {
            child: None,
            dir,
            listeners: vec![("default".into(), "mqtt".into(), addr)],
            kind: Kind::Mosquitto,
            exit: None,
            runs: 0,
        }
    }

    /// Start the process on this dir and wait until it listens; panics (with
    /// its stderr) when it does not.
    pub fn launch(&mut self) {
        match self.try_launch() {
            Ok(()) => {}
            Err(LaunchError::Exited(st)) => panic!(
                "{:?} exited with {st} before it was ready; stderr:\n{}",
                self.kind,
                self.stderr_log()
            ),
            Err(LaunchError::TimedOut) => panic!(
                "{:?} was not ready within {START_TIMEOUT:?}; stderr:\n{}",
                self.kind,
                self.stderr_log()
            ),
        }
    }

    /// Start the process on this dir (same config, same data) and wait until
    /// it is ready or has exited. The previous process must have exited
    /// ([`Broker::kill9`], [`Broker::stop`]). Listener ports may change: read
    /// [`Broker::addr`] again afterwards.
    pub fn try_launch(&mut self) -> Result<(), LaunchError> {
        assert!(!self.is_running(), "launch while the previous process still runs");
        let current = self.dir.path().join("stderr.log");
        if current.exists() {
            let old = self.dir.path().join(format!("stderr.run{}.log", self.runs));
            fs::rename(&current, old).expect("keep the previous run's stderr");
        }
        self.runs += 1;
        self.exit = None;
        let stderr = File::create(&current).expect("stderr file");
        let mut cmd = match self.kind {
            Kind::Tern => {
                let ready = self.dir.path().join("ready");
                // A stale ready file would make the new process look ready.
                let _ = fs::remove_file(&ready);
                self.listeners.clear();
                let mut c = Command::new(tern_bin());
                c.arg("--config").arg(self.config_path()).arg("--ready-file").arg(ready);
                c
            }
            Kind::Mosquitto => {
                let mut c = Command::new("/usr/sbin/mosquitto");
                c.arg("-c").arg(self.dir.path().join("mosquitto.conf"));
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.is_ready() {
                return Ok(());
            }
            if let Some(st) = self.child.as_mut().expect("just spawned").try_wait().expect("try_wait") {
                self.exit = Some(st);
                return Err(LaunchError::Exited(st));
            }
            if Instant::now() > deadline {
                self.kill9();
                return Err(LaunchError::TimedOut);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_ready(&mut self) -> bool {
        match self.kind {
            Kind::Tern => {
                if let Ok(text) = fs::read_to_string(self.dir.path().join("ready")) {
                    self.listeners = parse_ready(&text);
                }
                !self.listeners.is_empty()
            }
            Kind::Mosquitto => TcpStream::connect(self.addr()).is_ok(),
        }
    }

    /// True while the process has been started and not seen to exit.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(_) if self.exit.is_some() => false,
            Some(c) => match c.try_wait().expect("try_wait") {
                Some(st) => {
                    self.exit = Some(st);
                    false
                }
                None => true,
            },
        }
    }

    /// SIGKILL the process and reap it: a crash with no chance to flush.
    pub fn kill9(&mut self) {
        if !self.is_running() {
            return;
        }
        self.send_signal(libc::SIGKILL);
        let st = self
            .wait_exit(Duration::from_secs(10))
            .expect("a SIGKILLed process exits");
        assert!(!st.success(), "SIGKILL ends the process with a signal, got {st}");
    }

    /// Graceful stop: SIGTERM, then the process must exit 0 within
    /// [`STOP_TIMEOUT`] (a bound on a hang, not a speed check).
    pub fn stop(&mut self) {
        assert!(self.is_running(), "stop: the broker is not running");
        self.send_signal(libc::SIGTERM);
        let st = self.wait_exit(STOP_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "still running {STOP_TIMEOUT:?} after SIGTERM; stderr:\n{}",
                self.stderr_log()
            )
        });
        assert!(
            st.success(),
            "graceful stop exit status {st}; stderr:\n{}",
            self.stderr_log()
        );
    }

    /// [`Broker::kill9`] then [`Broker::launch`] on the same dir.
    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.launch();
    }

    /// [`Broker::stop`] then [`Broker::launch`] on the same dir.
    pub fn restart_graceful(&mut self) {
        self.stop();
        self.launch();
    }

    /// The config file the process runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tern.toml")
    }

    /// The store's data dir when the config leaves `[store] data_dir` at its
    /// default (`tern-data` next to the config file).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("tern-data")
    }

    /// The redb file under the default data dir.
    pub fn store_file(&self) -> PathBuf {
        self.data_dir().join("tern.redb")
    }

    /// Run `tern --config <this config> store <sub>` to its end (killed
    /// after 30 s): status, stdout, stderr.
    pub fn store_command(&self, sub: &str) -> (ExitStatus, String, String) {
        crate::run_to_end(
            Command::new(tern_bin())
                .arg("--config")
                .arg(self.config_path())
                .args(["store", sub])
                // What a user sees, not a developer's backtrace.
                .env_remove("RUST_BACKTRACE")
                .env_remove("RUST_LIB_BACKTRACE")
                .env_remove("RUST_LOG"),
            Duration::from_secs(30),
        )
    }

    /// Implementation this handle runs.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Address of the listener named `default` (or the first one).
    pub fn addr(&self) -> SocketAddr {
        self.listener("default")
            .unwrap_or_else(|| self.listeners.first().expect("a listener").2)
    }

    /// Address of a named listener from the ready file.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(n, _, _)| n == name).map(|(_, _, a)| *a)
    }

    /// All `(name, protocol, addr)` lines of the ready file.
    pub fn listeners(&self) -> &[(String, String, SocketAddr)] {
        &self.listeners
    }

    /// `host:port` of the default listener, for command-line clients.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The temp dir holding config, ready file and stderr log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Send a signal (e.g. `libc::SIGTERM`) to the broker process.
    pub fn send_signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned and still own.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Wait (bounded) for the process to exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.exit {
            return Some(st);
        }
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("spawned");
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.exit = Some(st);
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size of the broker process in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Everything the current (latest) process wrote to stderr so far.
    pub fn stderr_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(self.dir.path().join("stderr.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait (bounded) until the stderr log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr_log().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for run in 1..self.runs {
                let mut s = String::new();
                if let Ok(mut f) = File::open(self.dir.path().join(format!("stderr.run{run}.log"))) {
                    let _ = f.read_to_string(&mut s);
                }
                eprintln!(
                    "----- broker ({:?}) stderr, run {run} of {} -----\n{s}\n----- end -----",
                    self.kind, self.runs
                );
            }
            eprintln!(
                "----- broker ({:?}) stderr -----\n{}\n----- end broker stderr -----",
                self.kind,
                self.stderr_log()
            );
        }
    }
}

/// Parse the ready file: `<name> <protocol> <addr>` per line.
pub fn parse_ready(text: &str) -> Vec<(String, String, SocketAddr)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            let proto = it.next()?.to_string();
            let addr = it.next()?.parse().ok()?;
            Some((name, proto, addr))
        })
        .collect()
}

/// A port that was free a moment ago (for Mosquitto, which cannot bind port 0 and report it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .unwrap()
        .port()
}

/// "256KiB" -> 262144 (plain numbers pass through).
pub fn size_to_bytes(s: &str) -> u64 {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().expect("size number");
    n * match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1024,
        "MiB" | "M" | "MB" => 1024 * 1024,
        "GiB" | "G" | "GB" => 1024 * 1024 * 1024,
        u => panic!("unknown size unit {u}"),
    }
}

/// "10s" / "2m" / "7d" -> seconds.
pub fn duration_secs(s: &str) -> u64 {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().expect("duration number");
    n * match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        u => panic!("unknown duration unit {u}"),
    }
}
