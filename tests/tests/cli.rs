//! The `tern` command line: `check-config`, `print-default-config`,
//! `--help`, and the errors a bad configuration or a taken port give.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use tern_blackbox::broker::tern_bin;
use tern_blackbox::*;

/// Runs `tern args...` to its end (killed after 10 s): status, stdout, stderr.
fn tern(args: &[&std::ffi::OsStr]) -> (ExitStatus, String, String) {
    run_to_end(
        Command::new(tern_bin())
            .args(args)
            // What a user sees, not a developer's backtrace.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env_remove("RUST_LOG"),
        Duration::from_secs(10),
    )
}

fn check_config(path: &Path) -> (ExitStatus, String, String) {
    tern(&["check-config".as_ref(), path.as_os_str()])
}

const LISTENER: &str = "[[listener]]\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n";

fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_config_accepts_a_valid_file() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "ok.toml",
        &format!("[limits]\nmax_packet_size = \"64KiB\"\nhandshake_timeout = \"1m30s\"\n\n{LISTENER}"),
    );
    let (st, out, err) = check_config(&path);
    assert!(st.success(), "exit {st}; stderr:\n{err}");
    assert!(
        out.contains(&path.display().to_string()),
        "stdout names the file: {out}"
    );
    assert!(out.contains("ok"), "stdout: {out}");
    assert!(!out.contains("warning"), "no warnings expected: {out}");
}

#[test]
fn check_config_prints_warnings_and_still_succeeds() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "warn.toml",
        "[[listener]]\nbind = \"0.0.0.0:0\"\nallow_anonymous = true\n",
    );
    let (st, out, err) = check_config(&path);
    assert!(
        st.success(),
        "warnings do not fail the check; exit {st}; stderr:\n{err}"
    );
    assert!(out.contains("warning") && out.contains("anonymous"), "stdout: {out}");
}

/// Bad files: the fragment, then what the error must mention besides the
/// path (the key, and the offending value or what is wrong).
const BAD: &[(&str, &str, &[&str])] = &[
    (
        "unknown key",
        "[limits]\nmax_conections = 5\n",
        &["limits.max_conections", "unknown"],
    ),
    (
        "unknown section",
        "[limitz]\nmax_connections = 5\n",
        &["limitz", "unknown"],
    ),
    ("QoS out of range", "[limits]\nmax_qos = 3\n", &["limits.max_qos", "3"]),
    (
        "bad size unit",
        "[limits]\nmax_packet_size = \"12XB\"\n",
        &["limits.max_packet_size", "12XB"],
    ),
    (
        "size out of range",
        "[limits]\nmax_packet_size = \"1GiB\"\n",
        &["limits.max_packet_size", "268435460"],
    ),
    (
        "zero receive maximum",
        "[limits]\nreceive_maximum = 0\n",
        &["limits.receive_maximum"],
    ),
    (
        "wrong type",
        "[limits]\nmax_connections = \"many\"\n",
        &["limits.max_connections", "many"],
    ),
    (
        "bad duration",
        "[limits]\nhandshake_timeout = \"10 parsecs\"\n",
        &["limits.handshake_timeout", "10 parsecs"],
    ),
    ("bad log format", "[log]\nformat = \"xml\"\n", &["log.format", "xml"]),
];

#[test]
fn check_config_rejects_bad_files_naming_file_key_and_problem() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (what, fragment, needles)) in BAD.iter().enumerate() {
        let path = write_config(&dir, &format!("bad{i}.toml"), &format!("{fragment}\n{LISTENER}"));
        let (st, out, err) = check_config(&path);
        let text = format!("{out}{err}");
        if st.success() {
            failures.push(format!("{what}: accepted (exit 0): {text}"));
            continue;
        }
        let path_s = path.display().to_string();
        for n in std::iter::once(&path_s.as_str()).chain(needles.iter()) {
            if !text.contains(n) {
                failures.push(format!("{what}: error does not mention {n:?}: {text}"));
            }
        }
        assert!(
            !text.contains("Stack backtrace"),
            "{what}: a user error is not a crash: {text}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_config_rejects_bad_listeners() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("[log]\nlevel = \"info\"\n", &["listener"]),
        (
            "[[listener]]\nbind = \"localhost\"\n",
            &["listener[0].bind", "localhost"],
        ),
        (
            "[[listener]]\nbind = \"127.0.0.1:0\"\nprotocol = \"wss\"\n",
            &["listener[0].cert_file", "wss"],
        ),
        (
            "[[listener]]\nbind = \"127.0.0.1:0\"\nprotocol = \"gopher\"\n",
            &["listener[0].protocol", "gopher"],
        ),
        (
            "[[listener]]\nname = \"x\"\nbind = \"127.0.0.1:0\"\n[[listener]]\nname = \"x\"\nbind = \"127.0.0.1:0\"\n",
            &["listener[1].name", "x"],
        ),
    ];
    for (i, (text, needles)) in cases.iter().enumerate() {
        let path = write_config(&dir, &format!("l{i}.toml"), text);
        let (st, out, err) = check_config(&path);
        assert!(!st.success(), "accepted:\n{text}\n{out}");
        for n in needles.iter().chain(std::iter::once(&path.to_str().unwrap())) {
            assert!(err.contains(n), "error for\n{text}\ndoes not mention {n:?}: {err}");
        }
    }
}

#[test]
fn check_config_reports_toml_syntax_errors_with_a_line() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "syntax.toml", &format!("{LISTENER}\n[limits\nmax_qos = 1\n"));
    let (st, _, err) = check_config(&path);
    assert!(!st.success());
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("line 5"), "names the line: {err}");
}

#[test]
fn check_config_on_a_missing_file_names_it() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let (st, _, err) = check_config(&path);
    assert!(!st.success());
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn print_default_config_parses_and_passes_check_config() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let (st, out, err) = tern(&["print-default-config".as_ref()]);
    assert!(st.success(), "exit {st}: {err}");
    let table: toml::Table = toml::from_str(&out).expect("default config is TOML");
    for section in ["log", "runtime", "sys", "limits", "listener"] {
        assert!(table.contains_key(section), "default config has [{section}]");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "default.toml", &out);
    let (st, out, err) = check_config(&path);
    assert!(st.success(), "check-config rejects the default: {err}");
    assert!(!out.contains("warning"), "the default has no warnings: {out}");
}

#[test]
fn help_and_version() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let (st, out, _) = tern(&["--help".as_ref()]);
    assert!(st.success());
    for n in ["check-config", "print-default-config", "--config", "--ready-file"] {
        assert!(out.contains(n), "--help mentions {n}: {out}");
    }
    let (st, out, _) = tern(&["check-config".as_ref(), "--help".as_ref()]);
    assert!(st.success());
    assert!(out.contains("FILE"), "{out}");
    let (st, out, _) = tern(&["--version".as_ref()]);
    assert!(st.success());
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let (st, _, err) = tern(&["no-such-command".as_ref()]);
    assert!(!st.success(), "an unknown subcommand is an error");
    assert!(err.contains("no-such-command"), "{err}");
}

#[test]
fn starting_on_a_taken_port_fails_naming_the_address() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "taken.toml",
        &format!("[[listener]]\nname = \"main\"\nbind = \"{addr}\"\nallow_anonymous = true\n"),
    );
    let ready = dir.path().join("ready");
    let (st, _, err) = tern(&[
        "--config".as_ref(),
        path.as_os_str(),
        "--ready-file".as_ref(),
        ready.as_os_str(),
    ]);
    assert!(!st.success(), "started although {addr} is taken");
    assert!(err.contains(&addr.to_string()), "error names {addr}: {err}");
    assert!(err.contains("main"), "error names the listener: {err}");
    assert!(!ready.exists(), "no ready file when a listener failed");
    drop(taken);
}

#[test]
fn starting_with_a_missing_config_file_fails() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let (st, _, err) = tern(&["--config".as_ref(), path.as_os_str()]);
    assert!(!st.success());
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn starting_with_a_bad_config_fails_before_listening() {
    if skip_unless_tern("tern CLI") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "bad.toml", &format!("[limits]\nmax_qos = 7\n{LISTENER}"));
    let ready = dir.path().join("ready");
    let (st, _, err) = tern(&[
        "--config".as_ref(),
        path.as_os_str(),
        "--ready-file".as_ref(),
        ready.as_os_str(),
    ]);
    assert!(!st.success());
    assert!(err.contains("limits.max_qos"), "{err}");
    assert!(!ready.exists());
}

#[test]
fn pid_file_holds_the_brokers_process_id() {
    if skip_unless_tern("tern --pid-file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, "t.toml", "[[listener]]\nbind = \"127.0.0.1:0\"\n");
    let pid_file = dir.path().join("tern.pid");
    let mut child = Command::new(tern_bin())
        .arg("--config")
        .arg(&cfg)
        .arg("--pid-file")
        .arg(&pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let written = wait_until(TIMEOUT, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| !t.is_empty())
    });
    let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(written, "pid file written");
    assert_eq!(text.trim(), child.id().to_string());
}
