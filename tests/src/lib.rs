//! Helpers for the black-box suite: start the real `tern` binary, raw MQTT byte I/O.
//!
//! - [`Broker`]: spawn `tern --config F --ready-file P` (or Mosquitto when
//!   `TERN_TEST_BROKER=mosquitto`), read its listener addresses, kill on drop;
//!   kill -9 or stop it and start it again on the same dir (config and data),
//!   and run `tern store check|compact` on that config.
//! - [`RawClient`]: blocking byte-level client with bounded waits.
//! - [`packets`]: hand-written packet builders and decoders, independent of
//!   the broker's own codec.

pub mod broker;
pub mod packets;
pub mod raw;

pub use broker::{Broker, Kind, LaunchError, is_tern, kind, skip_unless_tern};
pub use packets::*;
pub use raw::{RawClient, TIMEOUT};

use std::time::{Duration, Instant};

/// A client id unique within this process (tests run in parallel).
pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` (stdin closed, output captured) to its end, killing it after
/// `timeout`: its status, stdout and stderr.
pub fn run_to_end(cmd: &mut std::process::Command, timeout: Duration) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).expect("read stdout");
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("read stderr");
    }
    (status, out, err)
}

/// Starting tern with `config`, and `tern check-config` on it, both fail,
/// and both say every one of `needles` (file, line, key, reason).
pub fn assert_config_refused(config: &std::path::Path, needles: &[&str]) {
    for args in [["--config"], ["check-config"]] {
        let (status, out, err) = run_to_end(
            std::process::Command::new(broker::tern_bin())
                .args(args)
                .arg(config)
                .env_remove("RUST_BACKTRACE"),
            Duration::from_secs(10),
        );
        assert!(!status.success(), "{args:?} must fail\n{out}\n{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: the error does not say {n:?}: {err}");
        }
    }
}
