//! Process accounting: our own CPU (getrusage), a broker's CPU and memory
//! (/proc), and the few process knobs the harness needs (rlimit, affinity).

use anyhow::{Context, Result};
use serde::Serialize;

/// CPU seconds (user + system) used so far by this process, all threads.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of `pid` in seconds, from /proc/PID/stat. Resolution is
/// one clock tick (usually 10 ms), so callers measure over seconds.
pub fn proc_cpu_secs(pid: u32) -> Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = s.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the first field is #3 (state); utime is #14, stime #15.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((utime + stime) as f64 / hz)
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Mem {
    /// Resident set (VmRSS), KiB: includes shared library pages.
    pub rss_kib: u64,
    /// Private_Clean + Private_Dirty (smaps_rollup), KiB: what this process
    /// alone costs, the fairer number when comparing brokers.
    pub private_kib: u64,
    /// Anonymous (smaps_rollup), KiB: heap and stacks only. Unlike Private_*
    /// it does not shrink when another process maps the same binary (another
    /// Mosquitto running on a shared machine, say).
    pub anon_kib: u64,
}

pub fn proc_mem(pid: u32) -> Result<Mem> {
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(key))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    Ok(Mem {
        rss_kib: field(&status, "VmRSS:"),
        private_kib: field(&rollup, "Private_Clean:") + field(&rollup, "Private_Dirty:"),
        anon_kib: field(&rollup, "Anonymous:"),
    })
}

/// Counters from `/proc/PID/io`, bytes.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Io {
    /// Bytes passed to read-like syscalls (sockets included).
    pub rchar: u64,
    /// Bytes passed to write-like syscalls: files *and sockets* (a broker's
    /// PUBACKs and deliveries count here), not mmap stores.
    pub wchar: u64,
    /// Bytes this process caused to be fetched from storage.
    pub read_bytes: u64,
    /// Bytes this process caused to be sent to storage: page-cache pages it
    /// dirtied (counted when dirtied; a page dirtied again before writeback
    /// counts once), so after an fsync the next change counts again.
    pub write_bytes: u64,
    /// Dirty page-cache bytes that were never written because the file was
    /// truncated or deleted first.
    pub cancelled_write_bytes: u64,
}

impl Io {
    /// Bytes that reached (or will reach) the disk: written minus cancelled.
    pub fn disk_bytes(&self) -> i64 {
        self.write_bytes as i64 - self.cancelled_write_bytes as i64
    }

    pub fn since(&self, earlier: &Io) -> Io {
        Io {
            rchar: self.rchar.saturating_sub(earlier.rchar),
            wchar: self.wchar.saturating_sub(earlier.wchar),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            cancelled_write_bytes: self.cancelled_write_bytes.saturating_sub(earlier.cancelled_write_bytes),
        }
    }
}

/// Read `/proc/PID/io` (whole process: all threads, exited ones included).
/// Also works on a zombie that has not been reaped yet, which is how the
/// store bench reads what a broker wrote during its shutdown.
pub fn proc_io(pid: u32) -> Result<Io> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/io")).with_context(|| format!("read /proc/{pid}/io"))?;
    let mut io = Io::default();
    for line in s.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v: u64 = v.trim().parse().unwrap_or(0);
        match k {
            "rchar" => io.rchar = v,
            "wchar" => io.wchar = v,
            "read_bytes" => io.read_bytes = v,
            "write_bytes" => io.write_bytes = v,
            "cancelled_write_bytes" => io.cancelled_write_bytes = v,
            _ => {}
        }
    }
    Ok(io)
}

/// Total size of the regular files under `dir` (recursively), bytes; 0 if it
/// does not exist.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Whether `path` lives on a tmpfs, where fsync costs nothing and a disk
/// benchmark measures nothing.
pub fn is_tmpfs(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // f_type and TMPFS_MAGIC differ in type between targets (i64 on
    // x86_64, 32-bit on ARM), hence the casts.
    // SAFETY: statfs writes into the zeroed struct; the path is NUL-terminated.
    #[allow(clippy::unnecessary_cast)]
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == libc::TMPFS_MAGIC as i64
    }
}

/// Raise RLIMIT_NOFILE as far as allowed: 10,000 idle connections need
/// 10,000 descriptors here and in the broker, which inherits the limit.
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let wanted = libc::rlimit {
            rlim_cur: want.max(lim.rlim_cur),
            rlim_max: want.max(lim.rlim_max),
        };
        // Raising the hard limit needs CAP_SYS_RESOURCE; fall back to it.
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Pin this process (all current and future threads) to one CPU.
pub fn pin_self(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            anyhow::bail!("sched_setaffinity({cpu}): {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPUs whose foreign load is watched (the broker's and the generator's in
/// `compare`); unset = all CPUs.
static WATCHED: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();

pub fn watch_cpus(cpus: Vec<usize>) {
    let _ = WATCHED.set(cpus);
}

/// Busy time (everything but idle and iowait, steal included) of the
/// watched CPUs, in seconds, from /proc/stat.
pub fn watched_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut busy = 0u64;
    for line in stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")) {
        let mut f = line.split_whitespace();
        let cpu: usize = f.next()?.trim_start_matches("cpu").parse().ok()?;
        if WATCHED.get().is_some_and(|w| !w.contains(&cpu)) {
            continue;
        }
        let v: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal
        busy += v
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, x)| x)
            .sum::<u64>();
    }
    Some(busy as f64 / hz)
}

/// Set the nice value of `pid` (0 = this process); 0 means "leave alone".
pub fn set_nice(pid: u32, nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: plain syscall. Only this process's own threads: new ones
    // inherit it, and the broker is set by pid right after spawn.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, nice) };
    if r != 0 {
        eprintln!(
            "warning: setpriority({pid}, {nice}): {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Samples taken at the edges of a measurement window.
#[derive(Clone, Copy)]
pub struct Sample {
    pub at: std::time::Instant,
    pub self_cpu: f64,
    pub broker_cpu: Option<f64>,
    pub busy: Option<f64>,
}

impl Sample {
    pub fn take(broker: Option<u32>) -> Sample {
        Sample {
            at: std::time::Instant::now(),
            self_cpu: self_cpu_secs(),
            broker_cpu: broker.and_then(|p| proc_cpu_secs(p).ok()),
            busy: watched_busy_secs(),
        }
    }
}

/// CPU use between two samples, as a share of one core (1.0 = one core busy).
pub struct Usage {
    pub wall: f64,
    pub gen_cores: f64,
    pub broker_cpu_secs: Option<f64>,
    /// CPU used on the watched CPUs by everything other than us and the
    /// broker (other tenants, hypervisor steal), in cores. Well above 0 means
    /// the window was contended and its figures are suspect.
    pub foreign_cores: Option<f64>,
}

pub fn usage(a: &Sample, b: &Sample) -> Usage {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let gen_secs = b.self_cpu - a.self_cpu;
    let broker_cpu_secs = a.broker_cpu.zip(b.broker_cpu).map(|(x, y)| y - x);
    Usage {
        wall,
        gen_cores: gen_secs / wall,
        broker_cpu_secs,
        foreign_cores: a
            .busy
            .zip(b.busy)
            .map(|(x, y)| ((y - x - gen_secs - broker_cpu_secs.unwrap_or(0.0)) / wall).max(0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_proc() {
        let pid = std::process::id();
        assert!(proc_cpu_secs(pid).is_ok());
        let m = proc_mem(pid).expect("mem");
        assert!(m.rss_kib > 0 && m.private_kib > 0);
        assert!(self_cpu_secs() >= 0.0);
        let io = proc_io(pid).expect("io");
        assert!(io.rchar > 0);
    }
}
