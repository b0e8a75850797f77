//! Mosquitto's password file, read as is: one `user:hash` per line, where
//! the hash is `$7$<iterations>$<salt>$<hash>` (PBKDF2-HMAC-SHA512, what
//! `mosquitto_passwd` writes since 2.0) or `$6$<salt>$<hash>` (SHA-512 of
//! the password followed by the salt, 1.x files). Salt and hash are base64.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::Mutex;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Iterations `tern passwd` uses, as `mosquitto_passwd` 2.0 does, so a file
/// written by either verifies equally fast in both.
pub const DEFAULT_ITERATIONS: u32 = 101;

/// A password file that cannot be used; names the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hash {
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl Hash {
    fn parse(s: &str) -> Result<Hash, String> {
        let b64 = |field: &str, what: &str| B64.decode(field).map_err(|e| format!("{what} is not base64: {e}"));
        if let Some(rest) = s.strip_prefix("$7$") {
            let mut parts = rest.split('$');
            let (Some(it), Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err("a $7$ entry needs $7$<iterations>$<salt>$<hash>".into());
            };
            let iterations: u32 = it
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("iterations {it:?} is not a positive number"))?;
            let hash = b64(hash, "hash")?;
            if hash.len() != 64 {
                return Err(format!("a PBKDF2-SHA512 hash is 64 bytes, this one {}", hash.len()));
            }
            return Ok(Hash::Pbkdf2Sha512 {
                iterations,
                salt: b64(salt, "salt")?,
                hash,
            });
        }
        if let Some(rest) = s.strip_prefix("$6$") {
            let Some((salt, hash)) = rest.split_once('$') else {
                return Err("a $6$ entry needs $6$<salt>$<hash>".into());
            };
            let hash = b64(hash, "hash")?;
            if hash.len() != 64 {
                return Err(format!("a SHA-512 hash is 64 bytes, this one {}", hash.len()));
            }
            return Ok(Hash::Sha512 {
                salt: b64(salt, "salt")?,
                hash,
            });
        }
        Err("unknown hash type: expected $7$ (PBKDF2-SHA512) or $6$ (SHA-512); \
             plain-text passwords must be hashed with `tern passwd`"
            .into())
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Pbkdf2Sha512 { iterations, salt, hash } => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                bool::from(out.as_slice().ct_eq(hash))
            }
            Hash::Sha512 { salt, hash } => {
                let out = Sha512::new().chain_update(password).chain_update(salt).finalize();
                bool::from(out.as_slice().ct_eq(hash))
            }
        }
    }
}

/// The verdict on one user name and password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    WrongPassword,
    UnknownUser,
}

/// A loaded password file.
#[derive(Debug)]
pub struct PasswordFile {
    path: PathBuf,
    users: HashMap<Box<str>, Hash>,
    /// SHA-256 of the last password that verified, per user: a reconnect
    /// storm on a Pi then costs one fast hash per client, not PBKDF2. A
    /// password change in the file drops the entry (the file is reloaded).
    verified: Mutex<HashMap<Box<str>, [u8; 32]>>,
}

impl PasswordFile {
    pub fn load(path: &Path) -> Result<PasswordFile, PasswordFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PasswordFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<PasswordFile, PasswordFileError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let err = |reason: String| PasswordFileError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or_else(|| err("expected user:hash".into()))?;
            if user.is_empty() {
                return Err(err("empty user name".into()));
            }
            let hash = Hash::parse(hash).map_err(err)?;
            if users.insert(Box::from(user), hash).is_some() {
                return Err(err(format!("user {user:?} appears twice")));
            }
        }
        Ok(PasswordFile {
            path: path.to_path_buf(),
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn check(&self, user: &str, password: &[u8]) -> Verdict {
        let Some(hash) = self.users.get(user) else {
            return Verdict::UnknownUser;
        };
        let quick: [u8; 32] = Sha256::digest(password).into();
        if let Some(seen) = self.verified.lock().get(user)
            && bool::from(seen.ct_eq(&quick))
        {
            return Verdict::Valid;
        }
        if hash.verify(password) {
            self.verified.lock().insert(Box::from(user), quick);
            Verdict::Valid
        } else {
            Verdict::WrongPassword
        }
    }
}

/// A `$7$` entry for `password` with a fresh random salt, as
/// `mosquitto_passwd` writes them.
pub fn hash_password(password: &[u8], iterations: u32) -> Result<String, getrandom::Error> {
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt)?;
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut out);
    Ok(format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<PasswordFile, PasswordFileError> {
        PasswordFile::parse(Path::new("pw"), text)
    }

    #[test]
    fn verifies_what_it_hashes_in_both_formats() {
        let seven = hash_password(b"s3cret", 101).expect("salt");
        let salt = [7u8; 12];
        let six = format!(
            "$6${}${}",
            B64.encode(salt),
            B64.encode(Sha512::new().chain_update(b"old").chain_update(salt).finalize())
        );
        let pw = file(&format!("# comment\n\nalice:{seven}\nbob:{six}\n")).expect("parses");
        assert_eq!(pw.len(), 2);
        assert_eq!(pw.check("alice", b"s3cret"), Verdict::Valid);
        // Second time from the cache.
        assert_eq!(pw.check("alice", b"s3cret"), Verdict::Valid);
        assert_eq!(pw.check("alice", b"S3cret"), Verdict::WrongPassword);
        assert_eq!(pw.check("bob", b"old"), Verdict::Valid);
        assert_eq!(pw.check("bob", b"new"), Verdict::WrongPassword);
        assert_eq!(pw.check("carol", b"x"), Verdict::UnknownUser);
    }

    #[test]
    fn bad_lines_name_the_line_and_why() {
        for (text, line, why) in [
            ("alice\n", 1, "user:hash"),
            ("a:$7$101$AAAA$AAAA\n", 1, "64 bytes"),
            ("\n:$6$x$y\n", 2, "empty user"),
            ("a:plain\n", 1, "unknown hash type"),
            ("a:$7$zero$AAAA$AAAA\n", 1, "iterations"),
            ("a:$7$101$!!$AAAA\n", 1, "hash"),
        ] {
            let e = file(text).expect_err(text).to_string();
            assert!(e.starts_with(&format!("pw:{line}: ")), "{e}");
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let seven = hash_password(b"x", 1).expect("salt");
        let e = file(&format!("a:{seven}\na:{seven}\n")).expect_err("dup").to_string();
        assert!(e.contains("pw:2:") && e.contains("twice"), "{e}");
    }
}
