//! Topic names, filters and matching: validation, the subscription trie,
//! and the retained-message map.
//!
//! Knows nothing of sessions or messages: keys and values are generic.

mod entries;
mod topic_map;
mod tree;
mod validate;

pub use topic_map::TopicMap;
pub use tree::SubscriptionTree;
pub use validate::{
    SharedFilter, TopicError, matches, parse_shared, topic_levels, validate_filter, validate_topic_name,
};
