//! Human-friendly units for the configuration file: byte sizes ("256KiB")
//! and durations ("1h30m").
//!
//! Operators write sizes and durations by hand, so the file accepts the
//! readable string forms and, for convenience, plain integers (bytes or
//! seconds). Serialising always produces the string form so a dumped
//! configuration reads the same way it would be written.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written as `"16MiB"`, `"256KiB"`, `"1MB"`, `"512B"` or a
/// plain integer number of bytes.
///
/// IEC suffixes (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024; SI suffixes
/// (`KB`, `MB`, `GB`, `TB`) are powers of 1000. Suffixes are matched without
/// regard to case because a bit count never makes sense here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// A duration, written as `"30s"`, `"10ms"`, `"5m"`, `"2h"`, `"7d"`,
/// compounds such as `"1h30m"`, or a plain integer number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

/// Why a size or duration string was rejected.
///
/// The message is complete on its own ("expected a size like ..., got ...")
/// so the loader can prefix it with the file and key unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

const SIZE_EXAMPLE: &str = "expected a size like \"256KiB\"";
const DURATION_EXAMPLE: &str = "expected a duration like \"30s\" or \"1h30m\"";

/// Suffixes with their multipliers. Longest first is not needed because the
/// whole suffix is compared, not a prefix.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || UnitError(format!("{SIZE_EXAMPLE}, got {text:?}"));
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        if digits.is_empty() {
            return Err(bad());
        }
        let number: u64 = digits.parse().map_err(|_| bad())?;
        let unit = unit.trim_start().to_ascii_lowercase();
        let multiplier = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, m)| *m)
                .ok_or_else(bad)?
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| UnitError(format!("size {text:?} is too large")))
    }
}

impl fmt::Display for ByteSize {
    /// Uses the largest unit that represents the value exactly, preferring
    /// IEC units since buffer sizes are usually powers of two.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DISPLAY: &[(&str, u64)] = &[
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
            ("TB", 1_000_000_000_000),
            ("GB", 1_000_000_000),
            ("MB", 1_000_000),
            ("KB", 1_000),
        ];
        let n = self.0;
        if n != 0 {
            for (name, m) in DISPLAY {
                if n.is_multiple_of(*m) {
                    return write!(f, "{}{name}", n / m);
                }
            }
        }
        write!(f, "{n}B")
    }
}

/// Duration suffixes. Order matters: `ms`, `us` and `ns` must be tried
/// before `m` and `s` because parsing matches the longest suffix first.
const DURATION_UNITS: &[(&str, Duration)] = &[
    ("ms", Duration::from_millis(1)),
    ("us", Duration::from_micros(1)),
    ("ns", Duration::from_nanos(1)),
    ("d", Duration::from_secs(86_400)),
    ("h", Duration::from_secs(3_600)),
    ("m", Duration::from_secs(60)),
    ("s", Duration::from_secs(1)),
];

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || UnitError(format!("{DURATION_EXAMPLE}, got {text:?}"));
        let too_large = || UnitError(format!("duration {text:?} is too large"));
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        // A bare integer means seconds, matching the integer form.
        if rest.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = rest.parse().map_err(|_| too_large())?;
            return Ok(HumanDuration(Duration::from_secs(secs)));
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let split = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let (digits, after) = rest.split_at(split);
            if digits.is_empty() {
                return Err(bad());
            }
            let number: u32 = digits.parse().map_err(|_| too_large())?;
            let (unit, step) = DURATION_UNITS
                .iter()
                .find(|(name, _)| after.starts_with(name))
                .ok_or_else(bad)?;
            let part = step.checked_mul(number).ok_or_else(too_large)?;
            total = total.checked_add(part).ok_or_else(too_large)?;
            rest = &after[unit.len()..];
        }
        Ok(HumanDuration(total))
    }
}

impl fmt::Display for HumanDuration {
    /// Writes the shortest compound form ("1h30m", "1s500ms"); zero is "0s".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        let mut secs = self.0.as_secs();
        let mut nanos = u64::from(self.0.subsec_nanos());
        for (name, unit) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= unit {
                write!(f, "{}{name}", secs / unit)?;
                secs %= unit;
            }
        }
        for (name, unit) in [("ms", 1_000_000), ("us", 1_000), ("ns", 1)] {
            if nanos >= unit {
                write!(f, "{}{name}", nanos / unit)?;
                nanos %= unit;
            }
        }
        Ok(())
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts either a string (parsed with `FromStr`) or a non-negative
/// integer, which `from_int` turns into the value.
struct UnitVisitor<T> {
    expecting: &'static str,
    from_int: fn(u64) -> T,
}

impl<T> Visitor<'_> for UnitVisitor<T>
where
    T: FromStr<Err = UnitError>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok((self.from_int)(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        // TOML integers arrive signed; only negatives are wrong here.
        u64::try_from(v)
            .map(self.from_int)
            .map_err(|_| E::custom(format!("{}, got {v}", self.expecting)))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UnitVisitor {
            expecting: SIZE_EXAMPLE.trim_start_matches("expected "),
            from_int: ByteSize,
        })
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UnitVisitor {
            expecting: DURATION_EXAMPLE.trim_start_matches("expected "),
            from_int: |secs| HumanDuration(Duration::from_secs(secs)),
        })
    }
}

/// `#[serde(with = "units::duration")]` for plain [`Duration`] fields, so
/// the public structs expose std types while the file uses readable strings.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        HumanDuration(*value).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        HumanDuration::deserialize(deserializer).map(|d| d.0)
    }
}

/// `#[serde(with = "units::bytes_u64")]` for `u64` byte counts.
pub mod bytes_u64 {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        ByteSize(*value).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        ByteSize::deserialize(deserializer).map(|b| b.0)
    }
}

/// `#[serde(with = "units::bytes_u32")]` for `u32` byte counts such as the
/// MQTT maximum packet size, which the protocol carries as a four byte int.
pub mod bytes_u32 {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u32, serializer: S) -> Result<S::Ok, S::Error> {
        ByteSize(u64::from(*value)).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
        let size = ByteSize::deserialize(deserializer)?;
        u32::try_from(size.0).map_err(|_| {
            de::Error::custom(format!(
                "size {size} is too large (at most {})",
                ByteSize(u64::from(u32::MAX))
            ))
        })
    }
}

/// `deserialize_with` for listener addresses: std's parse error ("invalid
/// socket address syntax") does not say what was given or what would work.
pub fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<std::net::SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "expected an address like \"0.0.0.0:1883\" or \"[::1]:1883\", got {text:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        let table: &[(&str, u64)] = &[
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("1KB", 1_000),
            ("1kb", 1_000),
            ("1MB", 1_000_000),
            ("2GB", 2_000_000_000),
            ("256KiB", 256 * 1024),
            ("16MiB", 16 << 20),
            ("16 MiB", 16 << 20),
            ("1GiB", 1 << 30),
            ("1TiB", 1 << 40),
            (" 7b ", 7),
        ];
        for (text, want) in table {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(*want)), "{text}");
        }
    }

    #[test]
    fn sizes_reject() {
        for text in ["", "MiB", "16 apples", "1.5MiB", "-1", "16Mi", "99999999999TiB"] {
            assert!(text.parse::<ByteSize>().is_err(), "{text}");
        }
        let err = "16 apples".parse::<ByteSize>().unwrap_err();
        assert_eq!(err.to_string(), r#"expected a size like "256KiB", got "16 apples""#);
    }

    #[test]
    fn sizes_display_round_trip() {
        for (n, text) in [
            (0, "0B"),
            (512, "512B"),
            (1024, "1KiB"),
            (256 * 1024, "256KiB"),
            (1 << 20, "1MiB"),
            (1_000_000, "1MB"),
            (1500, "1500B"),
            (3000, "3KB"),
        ] {
            assert_eq!(ByteSize(n).to_string(), text);
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(n)));
        }
    }

    #[test]
    fn durations_parse() {
        let table: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("30", Duration::from_secs(30)),
            ("30s", Duration::from_secs(30)),
            ("10ms", Duration::from_millis(10)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7_200)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("1h30m", Duration::from_secs(5_400)),
            ("1m30s500ms", Duration::from_millis(90_500)),
            ("250us", Duration::from_micros(250)),
        ];
        for (text, want) in table {
            assert_eq!(text.parse::<HumanDuration>(), Ok(HumanDuration(*want)), "{text}");
        }
    }

    #[test]
    fn durations_reject() {
        for text in ["", "s", "5 minutes", "1.5h", "-3s", "5x", "1h 30m"] {
            assert!(text.parse::<HumanDuration>().is_err(), "{text}");
        }
        let err = "soon".parse::<HumanDuration>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"expected a duration like "30s" or "1h30m", got "soon""#
        );
    }

    #[test]
    fn durations_display_round_trip() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(10), "10ms"),
            (Duration::from_secs(5_400), "1h30m"),
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::from_millis(1_500), "1s500ms"),
        ] {
            assert_eq!(HumanDuration(d).to_string(), text);
            assert_eq!(text.parse::<HumanDuration>(), Ok(HumanDuration(d)));
        }
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Doc {
        size: ByteSize,
        wait: HumanDuration,
    }

    #[test]
    fn serde_accepts_strings_and_integers() {
        let doc: Doc = toml::from_str("size = \"16MiB\"\nwait = \"1h30m\"").unwrap();
        assert_eq!(doc.size, ByteSize(16 << 20));
        assert_eq!(doc.wait, HumanDuration(Duration::from_secs(5_400)));
        let doc: Doc = toml::from_str("size = 4096\nwait = 30").unwrap();
        assert_eq!(doc.size, ByteSize(4096));
        assert_eq!(doc.wait, HumanDuration(Duration::from_secs(30)));
        let text = toml::to_string(&doc).unwrap();
        assert!(text.contains("size = \"4KiB\""), "{text}");
        assert!(text.contains("wait = \"30s\""), "{text}");
        assert!(toml::from_str::<Doc>("size = -1\nwait = 1").is_err());
        assert!(toml::from_str::<Doc>("size = true\nwait = 1").is_err());
    }
}
