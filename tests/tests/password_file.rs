//! `[auth] password_file`: Mosquitto's password files used as they are,
//! written by Debian's `mosquitto_passwd` or by `tern passwd`, checked by
//! the real broker with raw clients and `mosquitto_pub`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tern_blackbox::broker::{free_port, tern_bin};
use tern_blackbox::*;

const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
const NOT_AUTHORIZED: u8 = 0x87;

fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIP: {program} not installed (apt-get install mosquitto mosquitto-clients)");
    }
    found
}

/// `mosquitto_passwd -b` into `file` (created with `-c` when `create`).
fn mosquitto_passwd(file: &Path, user: &str, password: &str, create: bool) {
    let mut cmd = Command::new("mosquitto_passwd");
    if create {
        cmd.arg("-c");
    }
    cmd.arg("-b").arg(file).arg(user).arg(password);
    let (status, out, err) = run_to_end(&mut cmd, Duration::from_secs(10));
    assert!(status.success(), "mosquitto_passwd: {status}\n{out}\n{err}");
}

/// `tern passwd FILE USER --stdin` (or `-D`), the password on stdin.
fn tern_passwd(file: &Path, user: &str, password: Option<&str>) {
    use std::io::Write;
    let mut cmd = Command::new(tern_bin());
    cmd.arg("passwd").arg(file).arg(user);
    match password {
        Some(_) => cmd.arg("--stdin"),
        None => cmd.arg("-D"),
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tern passwd");
    if let Some(pw) = password {
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{pw}").expect("write password");
    }
    let out = child.wait_with_output().expect("tern passwd");
    assert!(
        out.status.success(),
        "tern passwd: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A broker whose only listener checks `file`.
fn broker(file: &Path, allow_anonymous: bool) -> Broker {
    Broker::start_with(&format!(
        "[auth]\npassword_file = {file:?}\n\n[[listener]]\nname = \"default\"\nbind = \"127.0.0.1:0\"\n\
         allow_anonymous = {allow_anonymous}\nauth = [\"password_file\"]\n"
    ))
}

fn connack(b: &Broker, v5: bool, user: Option<(&str, &str)>) -> u8 {
    let base = if v5 {
        Connect::v5(&unique_id("c"))
    } else {
        Connect::v311(&unique_id("c"))
    };
    let c = match user {
        Some((u, p)) => base.user(u, Some(p.as_bytes())),
        None => base,
    };
    RawClient::handshake(b.addr(), &c).1.code
}

#[test]
fn a_file_written_by_mosquitto_passwd_is_accepted() {
    if skip_unless_tern("[auth] password_file") || !have("mosquitto_passwd") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    mosquitto_passwd(&file, "alice", "s3cret", true);
    mosquitto_passwd(&file, "bob", "hunter2", false);
    let b = broker(&file, false);

    assert_eq!(connack(&b, true, Some(("alice", "s3cret"))), 0);
    assert_eq!(connack(&b, false, Some(("bob", "hunter2"))), 0);
    // [MQTT-3.2.2-8] refusals come with their reason: 0x86 / 3.1.1 return code 4.
    assert_eq!(connack(&b, true, Some(("alice", "wrong"))), BAD_USER_NAME_OR_PASSWORD);
    assert_eq!(connack(&b, false, Some(("alice", "wrong"))), 4);
    assert_eq!(
        connack(&b, true, Some(("mallory", "s3cret"))),
        BAD_USER_NAME_OR_PASSWORD
    );
    // No user name on a listener without anonymous access: not authorized.
    assert_eq!(connack(&b, true, None), NOT_AUTHORIZED);
    assert_eq!(connack(&b, false, None), 5);

    if have("mosquitto_pub") {
        let port = b.port().to_string();
        let ok = |user: &str, pw: &str| {
            let (status, _, _) = run_to_end(
                Command::new("mosquitto_pub").args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-u",
                    user,
                    "-P",
                    pw,
                    "-t",
                    "pw/t",
                    "-m",
                    "x",
                ]),
                Duration::from_secs(10),
            );
            status.success()
        };
        assert!(ok("alice", "s3cret"), "mosquitto_pub with the right password");
        assert!(!ok("alice", "nope"), "mosquitto_pub with a wrong password");
    }
}

#[test]
fn anonymous_clients_still_allowed_where_the_listener_says_so() {
    if skip_unless_tern("[auth] password_file") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    tern_passwd(&file, "alice", Some("s3cret"));
    let b = broker(&file, true);
    assert_eq!(connack(&b, true, None), 0);
    assert_eq!(connack(&b, true, Some(("alice", "s3cret"))), 0);
    // A name is checked even where anonymous clients are welcome.
    assert_eq!(connack(&b, true, Some(("alice", "x"))), BAD_USER_NAME_OR_PASSWORD);
    assert_eq!(connack(&b, true, Some(("nobody", "x"))), BAD_USER_NAME_OR_PASSWORD);
}

#[test]
fn tern_passwd_adds_updates_and_deletes_and_mosquitto_reads_its_file() {
    if skip_unless_tern("tern passwd") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    tern_passwd(&file, "alice", Some("one"));
    tern_passwd(&file, "bob", Some("two"));
    tern_passwd(&file, "alice", Some("three"));
    let text = std::fs::read_to_string(&file).expect("file");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.contains(":$7$101$")), "{text}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "hashes are not world readable");
    }
    let b = broker(&file, false);
    assert_eq!(connack(&b, true, Some(("alice", "three"))), 0);
    assert_eq!(connack(&b, true, Some(("alice", "one"))), BAD_USER_NAME_OR_PASSWORD);
    assert_eq!(connack(&b, true, Some(("bob", "two"))), 0);
    drop(b);

    tern_passwd(&file, "bob", None);
    let b = broker(&file, false);
    assert_eq!(connack(&b, true, Some(("bob", "two"))), BAD_USER_NAME_OR_PASSWORD);
    assert_eq!(connack(&b, true, Some(("alice", "three"))), 0);
    drop(b);

    // Mosquitto itself accepts what tern passwd wrote.
    if have("mosquitto_pub") && std::path::Path::new("/usr/sbin/mosquitto").exists() {
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                // `user root`: run as root, Mosquitto would switch to its own
                // user, which cannot read a 0600 file of ours.
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nuser root\n",
                file.display()
            ),
        )
        .expect("conf");
        let mut m = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto");
        let p = port.to_string();
        let ok = wait_until(Duration::from_secs(5), || {
            run_to_end(
                Command::new("mosquitto_pub").args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &p,
                    "-u",
                    "alice",
                    "-P",
                    "three",
                    "-t",
                    "t",
                    "-m",
                    "x",
                ]),
                Duration::from_secs(5),
            )
            .0
            .success()
        });
        let _ = m.kill();
        let _ = m.wait();
        assert!(ok, "mosquitto accepts a password written by tern passwd");
    }
}

#[test]
fn a_malformed_password_file_stops_startup_naming_file_and_line() {
    if skip_unless_tern("[auth] password_file") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    std::fs::write(&file, "# users\nalice:plaintext\n").expect("write");
    let cfg = dir.path().join("tern.toml");
    std::fs::write(
        &cfg,
        "[auth]\npassword_file = \"passwd\"\n\n[[listener]]\nbind = \"127.0.0.1:0\"\nauth = [\"password_file\"]\n",
    )
    .expect("cfg");
    let file_and_line = format!("{}:2:", file.display());
    assert_config_refused(&cfg, &[&file_and_line, "unknown hash type", "password_file"]);
}
