//! Reading configuration text into a validated [`Config`].
//!
//! toml's own errors carry a byte span and a message but not the full key
//! path (and never array indices), so on failure the text is parsed a second
//! time into toml's spanned document tree and the span is mapped back to a
//! dotted key such as `listener[1].bind`. Failures are rare, so paying for a
//! second parse only then keeps the happy path cheap.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, Location};
use super::schema::{Config, ListenerConfig};

/// The configuration used when no file is given, as a commented TOML file
/// documenting every key with its default. Suitable for `--print-config`
/// style output; it parses to [`Config::embedded_default`].
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

impl Config {
    /// Reads, parses and validates the file at `path`. Errors name the file
    /// as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            origin: origin.clone(),
            error,
        })?;
        let mut config = Config::from_toml_str(&text, &origin)?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Makes relative file paths relative to the configuration file's
    /// folder, so a config works whatever the working directory.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let auth = &mut self.auth;
        let mut paths: Vec<&mut PathBuf> = [&mut auth.password_file, &mut auth.acl_file]
            .into_iter()
            .flatten()
            .collect();
        for l in &mut self.listeners {
            paths.extend(l.cert_file.iter_mut());
            paths.extend(l.key_file.iter_mut());
            paths.extend(l.ca_file.iter_mut());
        }
        if let Some(jwt) = &mut auth.jwt {
            paths.extend(jwt.hmac_secret_file.iter_mut());
            paths.extend(jwt.jwks_file.iter_mut());
            paths.extend(jwt.public_key_files.iter_mut());
        }
        paths.push(&mut self.store.data_dir);
        for p in paths {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Parses and validates configuration text. `origin` names the source
    /// (usually the file name) in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|error| translate(text, origin, &error))?;
        config.name_listeners();
        config.validate(origin)?;
        Ok(config)
    }

    /// The built-in configuration: all defaults plus one anonymous MQTT
    /// listener named "default" on 127.0.0.1:1883. Built in code so it
    /// cannot fail; a test keeps it equal to [`DEFAULT_CONFIG_TOML`].
    pub fn embedded_default() -> Config {
        Config {
            listeners: vec![ListenerConfig {
                allow_anonymous: true,
                ..ListenerConfig::new("default", SocketAddr::from((Ipv4Addr::LOCALHOST, 1883)))
            }],
            ..Config::default()
        }
    }

    /// Gives unnamed listeners (name left out or empty) the name
    /// `listener-<index>`, matching the `listener[<index>]` key paths used
    /// in error messages.
    fn name_listeners(&mut self) {
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            if listener.name.is_empty() {
                listener.name = format!("listener-{index}");
            }
        }
    }
}

/// Turns a toml error into a [`ConfigError`] naming the key and position.
fn translate(text: &str, origin: &str, error: &toml::de::Error) -> ConfigError {
    let span = error.span();
    let location = span.as_ref().map(|s| Location::from_offset(text, s.start));
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(syntax) => {
            // Not valid TOML at all: there is no key to name, only a place.
            let span = syntax.span().or(span);
            return ConfigError::Syntax {
                origin: origin.to_owned(),
                location: Location::from_offset(text, span.map_or(0, |s| s.start)),
                message: syntax.message().trim().to_owned(),
            };
        }
    };
    let message = error.message().trim();
    let path = span
        .as_ref()
        .and_then(|span| key_at(document.get_ref(), span))
        .unwrap_or_default();

    let (key, message) = if let Some(field) = backticked(message, "missing field `") {
        (join(&path, field), "required key is missing".to_owned())
    } else if let Some(field) = backticked(message, "unknown field `") {
        // Unknown-field spans point at the key itself, so `path` already
        // ends with it.
        let key = if path.is_empty() { field.to_owned() } else { path };
        let message = match suggest(field, message) {
            Some(near) => format!("unknown key (did you mean \"{near}\"?)"),
            None => "unknown key".to_owned(),
        };
        (key, message)
    } else if path.is_empty() {
        ("(document)".to_owned(), message.to_owned())
    } else {
        (path, message.to_owned())
    };
    ConfigError::Invalid {
        origin: origin.to_owned(),
        key,
        message,
        location,
    }
}

/// The text between `prefix` and the next backtick, when `message` starts
/// with `prefix`.
fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// One place in the document that covers the error offset.
struct Candidate {
    path: String,
    /// Keys and scalar values are exact hits; tables and arrays only say the
    /// error is somewhere inside them (e.g. a missing field).
    exact: bool,
    width: usize,
}

/// The dotted path of the key or value whose span covers `span.start`.
fn key_at(document: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let mut found = Vec::new();
    walk_table(document, span.start, "", &mut found);
    // Prefer exact hits, then the narrowest container: the deepest one.
    found.into_iter().min_by_key(|c| (!c.exact, c.width)).map(|c| c.path)
}

fn walk_table(table: &DeTable<'_>, offset: usize, prefix: &str, found: &mut Vec<Candidate>) {
    for (key, value) in table.iter() {
        let path = join(prefix, key.get_ref());
        if key.span().contains(&offset) {
            found.push(Candidate {
                path: path.clone(),
                exact: true,
                width: key.span().len(),
            });
        }
        walk_value(value, offset, &path, found);
    }
}

fn walk_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &str, found: &mut Vec<Candidate>) {
    let span = value.span();
    let exact = match value.get_ref() {
        DeValue::Table(table) => {
            walk_table(table, offset, path, found);
            false
        }
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk_value(item, offset, &format!("{path}[{index}]"), found);
            }
            false
        }
        _ => true,
    };
    if span.contains(&offset) {
        found.push(Candidate {
            path: path.to_owned(),
            exact,
            width: span.len(),
        });
    }
}

/// The closest expected key to a mistyped one, from serde's "expected one
/// of `a`, `b`" list, when it is close enough to be a likely typo.
fn suggest<'m>(field: &str, message: &'m str) -> Option<&'m str> {
    let (_, expected) = message.split_once("expected")?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| (edit_distance(field, name), name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance with transpositions counted as one edit, since
/// swapped letters are the most common typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::config::{Limits, LogFormat};

    const L: &str = "[[listener]]\nbind = \"127.0.0.1:1883\"\n";
    const L2: &str = "[[listener]]\nbind = \"127.0.0.1:1884\"\n";

    fn err(text: &str) -> String {
        Config::from_toml_str(text, "tern.toml").unwrap_err().to_string()
    }

    fn err_at(text: &str) -> ConfigError {
        Config::from_toml_str(text, "tern.toml").unwrap_err()
    }

    #[test]
    fn embedded_text_matches_embedded_default() {
        let parsed = Config::from_toml_str(DEFAULT_CONFIG_TOML, "default.toml").unwrap();
        assert_eq!(parsed, Config::embedded_default());
        // Apart from the listener it is exactly the serde defaults.
        let without_listener = Config {
            listeners: Vec::new(),
            ..parsed.clone()
        };
        assert_eq!(without_listener, Config::default());
        assert_eq!(parsed.listeners.len(), 1);
        assert_eq!(parsed.listeners[0].name, "default");
        assert!(parsed.listeners[0].allow_anonymous);
        assert!(parsed.warnings().is_empty(), "{:?}", parsed.warnings());
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let config = Config::embedded_default();
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("max_packet_size = \"256KiB\""), "{text}");
        assert!(text.contains("max_session_expiry = \"7d\""), "{text}");
        assert_eq!(Config::from_toml_str(&text, "dump").unwrap(), config);
    }

    #[test]
    fn minimal_file_uses_defaults_and_names_listeners() {
        let text = format!("{L}[[listener]]\nbind = \"0.0.0.0:8883\"\nname = \"lan\"\n{L2}");
        let config = Config::from_toml_str(&text, "tern.toml").unwrap();
        assert_eq!(config.limits, Limits::default());
        let names: Vec<_> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["listener-0", "lan", "listener-2"]);
        assert!(!config.listeners[0].allow_anonymous);
    }

    #[test]
    fn values_in_units_and_integers() {
        let text = format!(
            "[limits]\nmax_packet_size = \"1MB\"\nmax_queued_bytes = 4096\n\
             max_session_expiry = \"1h30m\"\nhandshake_timeout = 3\n\
             [sys]\ninterval = \"0s\"\n[log]\nformat = \"json\"\nlevel = \"tern=debug,info\"\n{L}"
        );
        let config = Config::from_toml_str(&text, "tern.toml").unwrap();
        assert_eq!(config.limits.max_packet_size, 1_000_000);
        assert_eq!(config.limits.max_queued_bytes, 4096);
        assert_eq!(config.limits.max_session_expiry, Duration::from_secs(5_400));
        assert_eq!(config.limits.handshake_timeout, Duration::from_secs(3));
        assert_eq!(config.sys.interval, Duration::ZERO);
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let error = err(&format!("[limits]\nmax_pakcet_size = 5\n{L}"));
        assert!(
            error.starts_with("tern.toml: limits.max_pakcet_size: unknown key"),
            "{error}"
        );
        assert!(error.contains("did you mean \"max_packet_size\""), "{error}");
        assert!(error.contains("line 2, column 1"), "{error}");

        let error = err(&format!("bogus = 1\n{L}"));
        assert!(error.starts_with("tern.toml: bogus: unknown key"), "{error}");
        assert!(!error.contains("did you mean"), "{error}");

        let error = err(&format!("{L}[[listener]]\nbind = \"127.0.0.1:1\"\nfoo = 1\n"));
        assert!(error.starts_with("tern.toml: listener[1].foo: unknown key"), "{error}");

        let error = err(&format!("limits.max_qso = 1\n{L}"));
        assert!(error.starts_with("tern.toml: limits.max_qso: unknown key"), "{error}");

        let error = err("listener = [{ bind = \"1.2.3.4:1\", x = 1 }]");
        assert!(error.starts_with("tern.toml: listener[0].x: unknown key"), "{error}");
    }

    #[test]
    fn bad_unit_value_names_key() {
        let error = err(&format!("[limits]\nmax_packet_size = \"lots\"\n{L}"));
        assert_eq!(
            error,
            "tern.toml: limits.max_packet_size: expected a size like \"256KiB\", got \"lots\" \
             (line 2, column 19)"
        );
        let error = err(&format!("[sys]\ninterval = \"soon\"\n{L}"));
        assert!(
            error.starts_with("tern.toml: sys.interval: expected a duration"),
            "{error}"
        );
    }

    #[test]
    fn wrong_types_name_key() {
        let cases = [
            (format!("limits.max_qos = \"x\"\n{L}"), "limits.max_qos"),
            (
                format!("[limits]\nretain_available = 1\n{L}"),
                "limits.retain_available",
            ),
            (
                format!("[limits]\nmax_packet_size = true\n{L}"),
                "limits.max_packet_size",
            ),
            (format!("limits = 5\n{L}"), "limits"),
            (format!("[log]\nformat = \"xml\"\n{L}"), "log.format"),
            (format!("{L}[[listener]]\nbind = \"nope\"\n"), "listener[1].bind"),
            (
                format!("{L}[[listener]]\nbind = \"1.2.3.4:1\"\nprotocol = \"http\"\n"),
                "listener[1].protocol",
            ),
            (
                format!("[limits]\nreceive_maximum = 70000\n{L}"),
                "limits.receive_maximum",
            ),
            (
                format!("[limits]\nmax_packet_size = \"5GiB\"\n{L}"),
                "limits.max_packet_size",
            ),
        ];
        for (text, key) in cases {
            let error = err_at(&text);
            assert_eq!(error.key(), Some(key), "{error}");
            assert!(error.to_string().starts_with(&format!("tern.toml: {key}: ")), "{error}");
        }
    }

    #[test]
    fn bad_bind_address_says_what_works() {
        let error = err(&format!("{L}[[listener]]\nbind = \"localhost\"\n"));
        assert_eq!(
            error,
            "tern.toml: listener[1].bind: expected an address like \"0.0.0.0:1883\" or \
             \"[::1]:1883\", got \"localhost\" (line 4, column 8)"
        );
    }

    #[test]
    fn missing_bind_is_reported() {
        let error = err(&format!("{L}[[listener]]\nname = \"x\"\n"));
        assert!(
            error.starts_with("tern.toml: listener[1].bind: required key is missing"),
            "{error}"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let error = err_at(&format!("[limits\n{L}"));
        assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
        assert!(
            error.to_string().starts_with("tern.toml: line 1, column 8: "),
            "{error}"
        );
    }

    #[test]
    fn missing_file_names_file() {
        let error = Config::load(Path::new("/nonexistent/tern.toml")).unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("/nonexistent/tern.toml: cannot read: "), "{text}");
        assert!(matches!(error, ConfigError::Read { ref error, .. } if error.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn load_reads_a_file() {
        let path = std::env::temp_dir().join(format!("tern-config-test-{}.toml", std::process::id()));
        std::fs::write(&path, DEFAULT_CONFIG_TOML).unwrap();
        let loaded = Config::load(&path);
        std::fs::remove_file(&path).unwrap();
        let mut expected = Config::embedded_default();
        // Relative paths are relative to the file's folder.
        expected.store.data_dir = std::env::temp_dir().join("tern-data");
        assert_eq!(loaded.unwrap(), expected);
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let message = "unknown field `x`, expected one of `name`, `bind`, `protocol`";
        assert_eq!(suggest("bnid", message), Some("bind"));
        assert_eq!(suggest("protcol", message), Some("protocol"));
        assert_eq!(suggest("zzzzzz", message), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
