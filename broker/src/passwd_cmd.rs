//! `tern passwd`: create, update and delete entries of a Mosquitto-format
//! password file, as `mosquitto_passwd` does.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use tern::auth::{PasswordFile, hash_password};

pub struct Args<'a> {
    pub file: &'a Path,
    pub user: &'a str,
    pub delete: bool,
    pub create: bool,
    pub stdin: bool,
    pub iterations: u32,
}

pub fn run(a: Args<'_>) -> anyhow::Result<()> {
    if a.user.is_empty() || a.user.contains(':') {
        bail!("user name {:?} must be non-empty and without ':'", a.user);
    }
    let existing = if a.create || (!a.file.exists() && !a.delete) {
        String::new()
    } else {
        std::fs::read_to_string(a.file).with_context(|| format!("{}: cannot read", a.file.display()))?
    };
    // Refuse to rewrite a file we could not use: it may not be ours.
    PasswordFile::parse(a.file, &existing)?;

    let mut lines: Vec<String> = existing.lines().map(str::to_owned).collect();
    let position = lines
        .iter()
        .position(|l| l.split_once(':').is_some_and(|(u, _)| u == a.user));
    if a.delete {
        let Some(i) = position else {
            bail!("{}: no user {:?}", a.file.display(), a.user);
        };
        lines.remove(i);
    } else {
        let password = read_password(a.stdin)?;
        let entry = format!("{}:{}", a.user, hash_password(password.as_bytes(), a.iterations)?);
        match position {
            Some(i) => lines[i] = entry,
            None => lines.push(entry),
        }
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    write_private(a.file, &text)
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        if pw.is_empty() {
            bail!("empty password on standard input");
        }
        return Ok(pw);
    }
    let pw = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Reenter password: ")?;
    if pw != again {
        bail!("passwords do not match");
    }
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}

/// Writes through a temporary file and a rename, readable by its owner
/// only, so a crash never leaves half a file and hashes are not world
/// readable.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot replace", path.display()))?;
    Ok(())
}
