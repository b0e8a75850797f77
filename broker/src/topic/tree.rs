//! The subscription trie: filters by level, so matching a topic costs its
//! depth (plus the matches), not the number of subscriptions.

use std::collections::HashMap;
use std::hash::Hash;

use super::entries::Entries;

#[derive(Debug)]
struct Node<K, V> {
    children: HashMap<Box<str>, Node<K, V>>,
    /// The `+` child, rare enough to keep out of line.
    plus: Option<Box<Node<K, V>>>,
    /// Subscribers of `<this level>/#`.
    hash: Entries<K, V>,
    /// Subscribers of exactly the filter ending at this level.
    exact: Entries<K, V>,
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: Entries::default(),
            exact: Entries::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.hash.is_empty() && self.exact.is_empty()
    }
}

/// Subscriptions keyed by (filter, session key). Filters must have been
/// validated ([`super::validate_filter`]).
#[derive(Debug)]
pub struct SubscriptionTree<K, V> {
    root: Node<K, V>,
    len: usize,
}

impl<K, V> Default for SubscriptionTree<K, V> {
    fn default() -> Self {
        SubscriptionTree {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<K: Eq + Hash + Clone, V> SubscriptionTree<K, V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `key`'s subscription to `filter`, replacing (and returning) its
    /// previous options for the same filter.
    pub fn insert(&mut self, filter: &str, key: K, value: V) -> Option<V> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                let old = node.hash.insert(key, value);
                self.len += usize::from(old.is_none());
                return old;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(Box::from(level)).or_default()
            };
        }
        let old = node.exact.insert(key, value);
        self.len += usize::from(old.is_none());
        old
    }

    /// Removes `key`'s subscription to `filter`, pruning nodes left empty.
    pub fn remove(&mut self, filter: &str, key: &K) -> Option<V> {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` once for every subscription whose filter matches `topic`.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K, &V)) {
        // Wildcards at the first level never match $-topics [MQTT-4.7.2-1].
        let dollar = topic.starts_with('$');
        visit(&self.root, topic.split('/'), dollar, &mut f);
    }
}

fn visit<'t, K: Eq + Hash + Clone, V>(
    node: &Node<K, V>,
    mut levels: std::str::Split<'t, char>,
    skip_wildcards: bool,
    f: &mut impl FnMut(&K, &V),
) {
    match levels.next() {
        None => {
            node.exact.for_each(f);
            // `a/#` matches `a` itself [MQTT-4.7.1-2].
            node.hash.for_each(f);
        }
        Some(level) => {
            if !skip_wildcards {
                node.hash.for_each(f);
            }
            if let Some(child) = node.children.get(level) {
                visit(child, levels.clone(), false, f);
            }
            if !skip_wildcards && let Some(plus) = &node.plus {
                visit(plus, levels, false, f);
            }
        }
    }
}

fn remove_at<K: Eq + Hash + Clone, V>(node: &mut Node<K, V>, levels: &[&str], key: &K) -> Option<V> {
    let Some((&level, rest)) = levels.split_first() else {
        return node.exact.remove(key);
    };
    if level == "#" && rest.is_empty() {
        return node.hash.remove(key);
    }
    if level == "+" {
        let plus = node.plus.as_mut()?;
        let removed = remove_at(plus, rest, key);
        if plus.is_empty() {
            node.plus = None;
        }
        return removed;
    }
    let child = node.children.get_mut(level)?;
    let removed = remove_at(child, rest, key);
    if child.is_empty() {
        node.children.remove(level);
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::topic::matches;

    fn matched(tree: &SubscriptionTree<u32, String>, topic: &str) -> BTreeSet<(String, u32)> {
        let mut out = BTreeSet::new();
        tree.for_each_match(topic, |k, v| {
            assert!(out.insert((v.clone(), *k)), "visited twice");
        });
        out
    }

    #[test]
    fn basic_matching() {
        let mut t = SubscriptionTree::default();
        t.insert("a/+", 1, "a/+".to_string());
        t.insert("a/#", 2, "a/#".to_string());
        t.insert("#", 3, "#".to_string());
        t.insert("a/b", 4, "a/b".to_string());
        let m = matched(&t, "a/b");
        assert_eq!(m.len(), 4);
        assert_eq!(matched(&t, "a").len(), 2); // a/# and #
        assert_eq!(matched(&t, "$SYS/a").len(), 0);
        assert_eq!(t.remove("a/#", &2), Some("a/#".to_string()));
        assert_eq!(t.remove("a/#", &2), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn many_subscribers_on_one_filter_remove_cheaply() {
        let mut t = SubscriptionTree::default();
        for k in 0..10_000u32 {
            t.insert("x/y", k, String::new());
        }
        for k in (0..10_000u32).step_by(2) {
            assert!(t.remove("x/y", &k).is_some());
        }
        let mut n = 0;
        t.for_each_match("x/y", |k, _| {
            assert!(k % 2 == 1);
            n += 1;
        });
        assert_eq!(n, 5_000);
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$x".to_string())
        ]
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..4).prop_map(|v| v.join("/"))
    }

    fn filter() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop_oneof![level(), Just("+".to_string())], 0..4),
            any::<bool>(),
        )
            .prop_map(|(mut v, hash)| {
                if hash || v.is_empty() {
                    v.push("#".to_string());
                }
                v.join("/")
            })
    }

    proptest! {
        #[test]
        fn tree_agrees_with_naive_matcher(
            subs in prop::collection::vec((filter(), 0u32..4), 0..30),
            removals in prop::collection::vec(0usize..30, 0..10),
            topics in prop::collection::vec(topic(), 1..10),
        ) {
            let mut tree = SubscriptionTree::default();
            let mut model: BTreeSet<(String, u32)> = BTreeSet::new();
            for (f, k) in &subs {
                tree.insert(f, *k, f.clone());
                model.insert((f.clone(), *k));
            }
            for r in removals {
                if let Some((f, k)) = subs.get(r) {
                    tree.remove(f, k);
                    model.remove(&(f.clone(), *k));
                }
            }
            prop_assert_eq!(tree.len(), model.len());
            for t in &topics {
                let expected: BTreeSet<_> = model.iter().filter(|(f, _)| matches(f, t)).cloned().collect();
                prop_assert_eq!(matched(&tree, t), expected);
            }
        }
    }
}
