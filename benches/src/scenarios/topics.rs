//! Many topics: a topic tree with (by default) 100,000 exact subscriptions
//! spread over the subscribers, then publishers cycle through all topics so
//! every PUBLISH is a lookup in a large tree.

use anyhow::Result;

use super::flow::{self, Opts, Plan};
use super::{Metric, Target};

/// Topic k of the tree: three levels, ~46 children per node at 100,000.
pub fn tree_topic(k: usize) -> String {
    format!("bench/tree/{}/{}/{}", k % 47, (k / 47) % 53, k / (47 * 53))
}

pub fn plan(n_topics: usize, pubs: usize, subs: usize) -> Plan {
    let (pubs, subs) = (pubs.max(1), subs.max(1));
    Plan {
        pub_topics: (0..pubs)
            .map(|i| (i..n_topics).step_by(pubs).map(tree_topic).collect())
            .collect(),
        sub_filters: (0..subs)
            .map(|j| (j..n_topics).step_by(subs).map(tree_topic).collect())
            .collect(),
        fanout: 1.0,
    }
}

pub async fn run(t: Target, n_topics: usize, pubs: usize, subs: usize, o: &Opts) -> Result<Vec<Metric>> {
    flow::run(t, &plan(n_topics, pubs, subs), o).await
}
