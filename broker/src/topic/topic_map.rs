//! Values by exact topic name (retained messages), found by filter: a trie
//! over topic levels, so a subscription walks only the branches its filter
//! can match.

use std::collections::HashMap;

#[derive(Debug)]
struct Node<V> {
    /// The full topic is kept with the value so matches can report it
    /// without rebuilding it from the path.
    value: Option<(Box<str>, V)>,
    children: HashMap<Box<str>, Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            value: None,
            children: HashMap::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }

    fn for_each_below(&self, f: &mut impl FnMut(&str, &V)) {
        if let Some((t, v)) = &self.value {
            f(t, v);
        }
        for child in self.children.values() {
            child.for_each_below(f);
        }
    }
}

#[derive(Debug)]
pub struct TopicMap<V> {
    root: Node<V>,
    len: usize,
}

impl<V> Default for TopicMap<V> {
    fn default() -> Self {
        TopicMap {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> TopicMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        let old = node.value.replace((Box::from(topic), value)).map(|(_, v)| v);
        self.len += usize::from(old.is_none());
        old
    }

    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref().map(|(_, v)| v)
    }

    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let levels: Vec<&str> = topic.split('/').collect();
        let removed = remove_at(&mut self.root, &levels);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` for every stored topic that `filter` matches.
    pub fn for_each_matching(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let levels: Vec<&str> = filter.split('/').collect();
        visit(&self.root, &levels, true, &mut f);
    }

    /// Keeps only the entries for which `keep` is true (e.g. not expired).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &V) -> bool) {
        let removed = retain_at(&mut self.root, &mut keep);
        self.len -= removed;
    }
}

fn visit<V>(node: &Node<V>, levels: &[&str], at_root: bool, f: &mut impl FnMut(&str, &V)) {
    let Some((&level, rest)) = levels.split_first() else {
        if let Some((t, v)) = &node.value {
            f(t, v);
        }
        return;
    };
    // A wildcard first level never matches a $-topic [MQTT-4.7.2-1].
    let visible = |name: &str| !(at_root && name.starts_with('$'));
    match level {
        "#" => {
            // `a/#` matches `a` itself as well as everything below it.
            if let Some((t, v)) = &node.value {
                f(t, v);
            }
            for (name, child) in &node.children {
                if visible(name) {
                    child.for_each_below(f);
                }
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if visible(name) {
                    visit(child, rest, false, f);
                }
            }
        }
        literal => {
            if let Some(child) = node.children.get(literal) {
                visit(child, rest, false, f);
            }
        }
    }
}

fn remove_at<V>(node: &mut Node<V>, levels: &[&str]) -> Option<V> {
    let Some((&level, rest)) = levels.split_first() else {
        return node.value.take().map(|(_, v)| v);
    };
    let child = node.children.get_mut(level)?;
    let removed = remove_at(child, rest);
    if child.is_empty() {
        node.children.remove(level);
    }
    removed
}

fn retain_at<V>(node: &mut Node<V>, keep: &mut impl FnMut(&str, &V) -> bool) -> usize {
    let mut removed = 0;
    if let Some((t, v)) = &node.value
        && !keep(t, v)
    {
        node.value = None;
        removed += 1;
    }
    node.children.retain(|_, child| {
        removed += retain_at(child, keep);
        !child.is_empty()
    });
    removed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::topic::matches;

    fn found(map: &TopicMap<u32>, filter: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        map.for_each_matching(filter, |t, _| {
            out.insert(t.to_string());
        });
        out
    }

    #[test]
    fn retained_lookup_by_filter() {
        let mut m = TopicMap::default();
        for (i, t) in ["a", "a/b", "a/b/c", "$SYS/x", "b"].iter().enumerate() {
            m.insert(t, i as u32);
        }
        assert_eq!(found(&m, "a/#").len(), 3);
        assert_eq!(found(&m, "#").len(), 4);
        assert_eq!(found(&m, "+/b").len(), 1);
        assert_eq!(found(&m, "$SYS/#").len(), 1);
        assert_eq!(m.remove("a/b"), Some(1));
        assert_eq!(m.len(), 4);
        m.retain(|t, _| t != "b");
        assert_eq!(m.len(), 3);
        assert!(m.get("b").is_none());
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$x".to_string())
        ]
    }

    proptest! {
        #[test]
        fn map_agrees_with_naive_matcher(
            topics in prop::collection::vec(prop::collection::vec(level(), 1..4).prop_map(|v| v.join("/")), 0..20),
            filter in (prop::collection::vec(prop_oneof![level(), Just("+".to_string())], 0..4), any::<bool>())
                .prop_map(|(mut v, h)| { if h || v.is_empty() { v.push("#".to_string()); } v.join("/") }),
        ) {
            let mut m = TopicMap::default();
            for t in &topics {
                m.insert(t, 0);
            }
            let expected: BTreeSet<String> = topics.iter().filter(|t| matches(&filter, t)).cloned().collect();
            prop_assert_eq!(found(&m, &filter), expected);
        }
    }
}
