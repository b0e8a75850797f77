//! The error type for loading and validating configuration.
//!
//! Every message starts with the file it came from and, when known, the
//! dotted key (`limits.max_packet_size`, `listener[1].bind`) so an operator
//! can fix the file without reading broker source.

use std::fmt;

/// A 1-based position in the configuration text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Converts a byte offset into `text` to a line and column (columns
    /// count characters, not bytes, to match what editors show).
    pub fn from_offset(text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Location { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Suffix " (line L, column C)" when a location is known.
struct At(Option<Location>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(location) => write!(f, " ({location})"),
            None => Ok(()),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. The I/O error is part of the message
    /// rather than a `source` so chained reporters do not print it twice.
    #[error("{origin}: cannot read: {error}")]
    Read { origin: String, error: std::io::Error },
    /// The text is not valid TOML.
    #[error("{origin}: {location}: {message}")]
    Syntax {
        origin: String,
        location: Location,
        message: String,
    },
    /// A key has a wrong, missing, unknown or out-of-range value.
    #[error("{origin}: {key}: {message}{}", At(*.location))]
    Invalid {
        origin: String,
        /// Dotted path to the offending key, e.g. `listener[1].bind`.
        key: String,
        message: String,
        /// Where in the file, when the error came from parsing; semantic
        /// checks run on the parsed values and have no position.
        location: Option<Location>,
    },
}

impl ConfigError {
    /// A semantic error without a source position.
    pub(crate) fn invalid(origin: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin: origin.to_owned(),
            key: key.into(),
            message: message.into(),
            location: None,
        }
    }

    /// The dotted key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let text = "a = 1\n[b]\nc = \"é\"x";
        assert_eq!(Location::from_offset(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::from_offset(text, 6), Location { line: 2, column: 1 });
        assert_eq!(Location::from_offset(text, 10), Location { line: 3, column: 1 });
        // 'é' is two bytes but one column.
        assert_eq!(
            Location::from_offset(text, text.len() - 1),
            Location { line: 3, column: 8 }
        );
    }
}
