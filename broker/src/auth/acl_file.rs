//! Mosquitto's ACL file, read as is:
//!
//! ```text
//! topic read public/#            # before any `user` line: anonymous clients
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! pattern write devices/%c/out   # every client; %c client id, %u user name
//! ```
//!
//! Access is `read`, `write`, `readwrite` (the default) or `deny`. A client
//! may read or write a topic when one of its rules (its user's `topic`
//! lines, or the anonymous ones, plus every `pattern`) grants that access
//! and none denies it: a `deny` always wins. Everything else is refused.
//! Publishing is checked when the client publishes; reading when a message
//! is about to be queued for it, so a subscription to `#` only ever carries
//! what the client may read, as in Mosquitto.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::topic::{SubscriptionTree, validate_filter};

#[derive(Debug, thiserror::Error)]
pub enum AclFileError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

#[derive(Debug, Clone)]
struct Rule {
    access: Access,
    filter: String,
}

/// Filters by what they grant, each a trie so a check costs the topic's
/// depth, not the number of rules.
#[derive(Debug, Default)]
struct RuleSet {
    deny: SubscriptionTree<usize, ()>,
    read: SubscriptionTree<usize, ()>,
    write: SubscriptionTree<usize, ()>,
}

impl RuleSet {
    fn add(&mut self, i: usize, rule: &Rule) {
        match rule.access {
            Access::Deny => self.deny.insert(&rule.filter, i, ()),
            Access::Read => self.read.insert(&rule.filter, i, ()),
            Access::Write => self.write.insert(&rule.filter, i, ()),
            Access::ReadWrite => {
                self.read.insert(&rule.filter, i, ());
                self.write.insert(&rule.filter, i, ())
            }
        };
    }

    fn from_rules(rules: &[Rule]) -> RuleSet {
        let mut set = RuleSet::default();
        for (i, r) in rules.iter().enumerate() {
            set.add(i, r);
        }
        set
    }
}

fn any_match(tree: &SubscriptionTree<usize, ()>, topic: &str) -> bool {
    let mut found = false;
    if !tree.is_empty() {
        tree.for_each_match(topic, |_, _| found = true);
    }
    found
}

/// A loaded ACL file.
#[derive(Debug)]
pub struct AclFile {
    path: PathBuf,
    anonymous: Arc<RuleSet>,
    users: HashMap<Box<str>, Arc<RuleSet>>,
    patterns: Vec<Rule>,
}

impl AclFile {
    pub fn load(path: &Path) -> Result<AclFile, AclFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<AclFile, AclFileError> {
        let mut anonymous = Vec::new();
        let mut users: HashMap<Box<str>, Vec<Rule>> = HashMap::new();
        let mut patterns = Vec::new();
        let mut current: Option<Box<str>> = None;
        for (i, raw) in text.lines().enumerate() {
            let err = |reason: String| AclFileError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(err("`user` needs a user name".into()));
                    }
                    users.entry(Box::from(rest)).or_default();
                    current = Some(Box::from(rest));
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(err)?;
                    if keyword == "pattern" {
                        patterns.push(rule);
                    } else if let Some(user) = &current {
                        users.entry(user.clone()).or_default().push(rule);
                    } else {
                        anonymous.push(rule);
                    }
                }
                other => {
                    return Err(err(format!(
                        "unknown keyword {other:?}: expected `user`, `topic` or `pattern`"
                    )));
                }
            }
        }
        Ok(AclFile {
            path: path.to_path_buf(),
            anonymous: Arc::new(RuleSet::from_rules(&anonymous)),
            users: users
                .into_iter()
                .map(|(u, rules)| (u, Arc::new(RuleSet::from_rules(&rules))))
                .collect(),
            patterns,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rules of one connection: its user's (or the anonymous) rules and
    /// the patterns with its client id and user name put in. A substitution
    /// that would turn an allowing pattern into a wildcard (an id holding
    /// `+`, `#` or `/`) drops that pattern; a denying one is kept, as
    /// widening a denial is safe.
    pub fn for_client(&self, client_id: &str, username: Option<&str>) -> ClientAcl {
        ClientAcl {
            client_id: Box::from(client_id),
            username: username.map(Box::from),
            from_file: true,
            rules: parking_lot::RwLock::new(self.compile(client_id, username)),
        }
    }

    fn compile(&self, client_id: &str, username: Option<&str>) -> Compiled {
        let base = match username {
            Some(u) => self.users.get(u).cloned().unwrap_or_default(),
            None => self.anonymous.clone(),
        };
        Compiled {
            base,
            patterns: substituted(&self.patterns, client_id, username),
        }
    }
}

/// Rules with `%c` and `%u` put in (see [`AclFile::for_client`]).
fn substituted(rules: &[Rule], client_id: &str, username: Option<&str>) -> RuleSet {
    let unsafe_id = |s: &str| s.contains(['+', '#', '/']);
    let mut patterns = RuleSet::default();
    for (i, p) in rules.iter().enumerate() {
        let needs_user = p.filter.contains("%u");
        if needs_user && username.is_none() {
            continue;
        }
        let user = username.unwrap_or_default();
        let widening = (p.filter.contains("%c") && unsafe_id(client_id)) || (needs_user && unsafe_id(user));
        if widening && p.access != Access::Deny {
            continue;
        }
        let filter = p.filter.replace("%c", client_id).replace("%u", user);
        if validate_filter(&filter).is_ok() {
            patterns.add(
                i,
                &Rule {
                    access: p.access,
                    filter,
                },
            );
        }
    }
    patterns
}

fn parse_rule(rest: &str) -> Result<Rule, String> {
    let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (access, filter) = match first {
        "read" => (Access::Read, after.trim()),
        "write" => (Access::Write, after.trim()),
        "readwrite" => (Access::ReadWrite, after.trim()),
        "deny" => (Access::Deny, after.trim()),
        _ => (Access::ReadWrite, rest),
    };
    if filter.is_empty() {
        return Err("a rule needs a topic filter".into());
    }
    // %c / %u are checked once substituted.
    let probe = filter.replace("%c", "c").replace("%u", "u");
    validate_filter(&probe).map_err(|e| format!("topic filter {filter:?}: {e}"))?;
    Ok(Rule {
        access,
        filter: filter.to_owned(),
    })
}

/// What one connection may read and write. Shared by the connection (for
/// its PUBLISHes) and its session (for deliveries), and recompiled in place
/// when the ACL file is reloaded.
#[derive(Debug)]
pub struct ClientAcl {
    client_id: Box<str>,
    username: Option<Box<str>>,
    from_file: bool,
    rules: parking_lot::RwLock<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    base: Arc<RuleSet>,
    patterns: RuleSet,
}

impl ClientAcl {
    /// The permissions a token grants: filters it may publish to and read,
    /// with `%c` and `%u` put in as in ACL file patterns.
    pub fn from_lists(client_id: &str, username: Option<&str>, publish: &[String], read: &[String]) -> ClientAcl {
        let rules: Vec<Rule> = publish
            .iter()
            .map(|f| (Access::Write, f))
            .chain(read.iter().map(|f| (Access::Read, f)))
            .map(|(access, f)| Rule {
                access,
                filter: f.clone(),
            })
            .collect();
        ClientAcl {
            client_id: Box::from(client_id),
            username: username.map(Box::from),
            from_file: false,
            rules: parking_lot::RwLock::new(Compiled {
                base: Arc::default(),
                patterns: substituted(&rules, client_id, username),
            }),
        }
    }

    /// Applies a reloaded file to this connection, if its rules came from
    /// the file (a token's do not change).
    pub fn recompile(&self, file: &AclFile) {
        if self.from_file {
            *self.rules.write() = file.compile(&self.client_id, self.username.as_deref());
        }
    }

    fn allowed(&self, topic: &str, grants: impl Fn(&RuleSet) -> &SubscriptionTree<usize, ()>) -> bool {
        let rules = self.rules.read();
        let sets = [&*rules.base, &rules.patterns];
        if sets.iter().any(|s| any_match(&s.deny, topic)) {
            return false;
        }
        sets.iter().any(|s| any_match(grants(s), topic))
    }

    pub fn can_read(&self, topic: &str) -> bool {
        self.allowed(topic, |s| &s.read)
    }

    pub fn can_write(&self, topic: &str) -> bool {
        self.allowed(topic, |s| &s.write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic sensors/+/temp

user bob
topic write bob/out

pattern read devices/%c/in
pattern write devices/%c/out
pattern readwrite users/%u/#
pattern deny +/private
";

    fn acl() -> AclFile {
        AclFile::parse(Path::new("acl"), FILE).expect("parses")
    }

    #[test]
    fn mosquitto_semantics() {
        let acl = acl();
        let anon = acl.for_client("d1", None);
        assert!(anon.can_read("public/news"));
        assert!(!anon.can_write("public/news"));
        assert!(anon.can_read("devices/d1/in"));
        assert!(!anon.can_read("devices/d2/in"));
        assert!(anon.can_write("devices/d1/out"));
        // %u patterns do not apply to a client without a user name.
        assert!(!anon.can_read("users//x"));

        let alice = acl.for_client("phone", Some("alice"));
        assert!(alice.can_read("alice/notes") && alice.can_write("alice/notes"));
        // A deny wins over the readwrite that also matches.
        assert!(!alice.can_read("alice/secret") && !alice.can_write("alice/secret"));
        // Access defaults to readwrite.
        assert!(alice.can_write("sensors/kitchen/temp"));
        // Anonymous rules are not a user's.
        assert!(!alice.can_read("public/news"));
        assert!(alice.can_read("users/alice/inbox") && !alice.can_read("users/bob/inbox"));
        // A pattern deny applies to everyone.
        assert!(!alice.can_read("alice/private"));

        let bob = acl.for_client("b", Some("bob"));
        assert!(bob.can_write("bob/out") && !bob.can_read("bob/out"));
        // An unknown user gets only the patterns.
        let eve = acl.for_client("e", Some("eve"));
        assert!(!eve.can_read("alice/notes"));
        assert!(eve.can_read("devices/e/in"));
    }

    #[test]
    fn substitution_never_widens_an_allow() {
        let acl = acl();
        let sneaky = acl.for_client("#", Some("+"));
        assert!(!sneaky.can_read("devices/x/in"));
        assert!(!sneaky.can_read("users/bob/inbox"));
    }

    #[test]
    fn bad_lines_name_the_line_and_why() {
        for (text, line, why) in [
            ("user\n", 1, "user name"),
            ("topic read\n", 1, "topic filter"),
            ("topic read a/#/b\n", 1, "a/#/b"),
            ("\n\nallow a\n", 3, "unknown keyword"),
        ] {
            let e = AclFile::parse(Path::new("acl"), text).expect_err(text).to_string();
            assert!(e.starts_with(&format!("acl:{line}: ")), "{e}");
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
