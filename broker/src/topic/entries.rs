//! The subscribers of one filter: a vector for fast iteration, with an
//! index added once it grows, so removing one of 10,000 subscribers of the
//! same filter stays O(1).

use std::collections::HashMap;
use std::hash::Hash;

/// Below this many entries a linear scan beats hashing and costs no memory.
const INDEX_FROM: usize = 16;

#[derive(Debug)]
pub(super) struct Entries<K, V> {
    items: Vec<(K, V)>,
    index: Option<HashMap<K, usize>>,
}

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Entries {
            items: Vec::new(),
            index: None,
        }
    }
}

impl<K: Eq + Hash + Clone, V> Entries<K, V> {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn position(&self, key: &K) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.items.iter().position(|(k, _)| k == key),
        }
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(i) = self.position(&key) {
            return Some(std::mem::replace(&mut self.items[i].1, value));
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.items.len());
        }
        self.items.push((key, value));
        if self.index.is_none() && self.items.len() > INDEX_FROM {
            self.index = Some(
                self.items
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect(),
            );
        }
        None
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.position(key)?;
        let (_, value) = self.items.swap_remove(i);
        if let Some(index) = &mut self.index {
            index.remove(key);
            if let Some((moved, _)) = self.items.get(i) {
                index.insert(moved.clone(), i);
            }
            if self.items.len() <= INDEX_FROM / 2 {
                self.index = None;
            }
        }
        if self.items.is_empty() {
            self.items = Vec::new();
        }
        Some(value)
    }

    pub fn for_each(&self, f: &mut impl FnMut(&K, &V)) {
        for (k, v) in &self.items {
            f(k, v);
        }
    }
}
