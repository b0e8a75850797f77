//! Topic name and filter rules (MQTT 5.0 §4.7, §4.8.2; 3.1.1 §4.7).

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic must be at least one character long [MQTT-4.7.3-1]")]
    Empty,
    #[error("topic is longer than 65,535 bytes [MQTT-4.7.3-3]")]
    TooLong,
    #[error("topic contains U+0000 [MQTT-4.7.3-2]")]
    NullCharacter,
    #[error("wildcards are not allowed in a topic name [MQTT-4.7.1-1]")]
    WildcardInName,
    #[error("'#' must be the last character and occupy a whole level [MQTT-4.7.1-2]")]
    MultiLevelWildcardMisplaced,
    #[error("'+' must occupy a whole level [MQTT-4.7.1-3]")]
    SingleLevelWildcardMisplaced,
    #[error("shared subscription needs a non-empty share name without '+', '#' or '/' [MQTT-4.8.2-1]")]
    InvalidShareName,
    #[error("shared subscription needs a topic filter after the share name [MQTT-4.8.2-2]")]
    MissingSharedFilter,
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > 65_535 {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Levels in a topic name or filter: `a/b` has two, `/` has two empty ones.
pub fn topic_levels(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'/').count() + 1
}

/// A topic name as used in PUBLISH and wills.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    check_common(name)?;
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// A (non-shared) topic filter as used in SUBSCRIBE.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcardMisplaced);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardMisplaced);
        }
    }
    Ok(())
}

/// A `$share/{group}/{filter}` subscription, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    pub group: &'a str,
    pub filter: &'a str,
}

/// Splits a shared subscription; `Ok(None)` for an ordinary filter.
pub fn parse_shared(filter: &str) -> Result<Option<SharedFilter<'_>>, TopicError> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        if filter == "$share" {
            return Err(TopicError::InvalidShareName);
        }
        return Ok(None);
    };
    let (group, inner) = rest.split_once('/').ok_or(TopicError::MissingSharedFilter)?;
    if group.is_empty() || group.contains(['+', '#']) {
        return Err(TopicError::InvalidShareName);
    }
    if inner.is_empty() {
        return Err(TopicError::MissingSharedFilter);
    }
    validate_filter(inner)?;
    Ok(Some(SharedFilter { group, filter: inner }))
}

/// Whether `filter` matches `topic`: the plain reference matcher, for ACLs
/// and as the oracle of the tree's tests.
pub fn matches(filter: &str, topic: &str) -> bool {
    // Filters starting with a wildcard do not match $-topics [MQTT-4.7.2-1].
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_4_7_1_1_wildcards_not_allowed_in_topic_names() {
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a/#"), Err(TopicError::WildcardInName));
        assert!(validate_topic_name("a/b").is_ok());
        assert!(validate_topic_name("/").is_ok());
    }

    #[test]
    fn mqtt_4_7_1_2_multi_level_wildcard_last_and_alone() {
        for ok in ["#", "a/#", "/#", "+/#"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["a#", "a/#/b", "#/a", "a/b#"] {
            assert_eq!(
                validate_filter(bad),
                Err(TopicError::MultiLevelWildcardMisplaced),
                "{bad}"
            );
        }
    }

    #[test]
    fn mqtt_4_7_1_3_single_level_wildcard_whole_level() {
        for ok in ["+", "+/+", "a/+/b", "/+"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["a+", "a/+b", "+a/b"] {
            assert_eq!(
                validate_filter(bad),
                Err(TopicError::SingleLevelWildcardMisplaced),
                "{bad}"
            );
        }
    }

    #[test]
    fn mqtt_4_7_3_1_empty_topic_refused() {
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
    }

    #[test]
    fn mqtt_4_8_2_shared_filter_parsing() {
        assert_eq!(
            parse_shared("$share/g/a/+"),
            Ok(Some(SharedFilter {
                group: "g",
                filter: "a/+"
            }))
        );
        assert_eq!(parse_shared("a/b"), Ok(None));
        assert_eq!(parse_shared("$share//a"), Err(TopicError::InvalidShareName));
        assert_eq!(parse_shared("$share/g+/a"), Err(TopicError::InvalidShareName));
        assert_eq!(parse_shared("$share/g"), Err(TopicError::MissingSharedFilter));
        assert_eq!(parse_shared("$share/g/"), Err(TopicError::MissingSharedFilter));
        assert_eq!(
            parse_shared("$share/g/a#"),
            Err(TopicError::MultiLevelWildcardMisplaced)
        );
    }

    #[test]
    fn mqtt_4_7_2_1_dollar_topics_not_matched_by_leading_wildcard() {
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("$SYS/+", "$SYS/x"));
    }

    #[test]
    fn matching_rules() {
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/tennis/p1"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("a//b", "a//b"));
        assert!(matches("a/+/b", "a//b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }
}
