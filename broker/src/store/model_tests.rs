//! The store against a model: random sequences of ops, committed in random
//! groups through the real commit thread, must leave exactly what the same
//! ops leave in plain maps, and a reopened file must read back the same.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTable};

use super::tables::{self, Op};
use super::writer::{Writer, WriterSettings};
use crate::config::Durability;

#[derive(Debug, Default, PartialEq, Eq)]
struct Model {
    sessions: BTreeMap<String, Vec<u8>>,
    subs: BTreeMap<(String, String), Vec<u8>>,
    deliveries: BTreeMap<(String, u64), Vec<u8>>,
    incoming: BTreeSet<(String, u16)>,
    messages: BTreeMap<u64, Vec<u8>>,
    retained: BTreeMap<String, Vec<u8>>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::PutSession(c, r) => {
                self.sessions.insert(c.to_string(), r.clone());
            }
            Op::DelSession(c) => {
                let c = c.to_string();
                self.sessions.remove(&c);
                self.subs.retain(|(k, _), _| *k != c);
                self.deliveries.retain(|(k, _), _| *k != c);
                self.incoming.retain(|(k, _)| *k != c);
            }
            Op::PutSubscription(c, f, r) => {
                self.subs.insert((c.to_string(), f.to_string()), r.to_vec());
            }
            Op::DelSubscription(c, f) => {
                self.subs.remove(&(c.to_string(), f.to_string()));
            }
            Op::PutMessage(id, r) => {
                self.messages.insert(*id, r.clone());
            }
            Op::DelMessage(id) => {
                self.messages.remove(id);
            }
            Op::PutDelivery(c, s, r) => {
                self.deliveries.insert((c.to_string(), *s), r.to_vec());
            }
            Op::DelDelivery(c, s) => {
                self.deliveries.remove(&(c.to_string(), *s));
            }
            Op::PutIncoming(c, id) => {
                self.incoming.insert((c.to_string(), *id));
            }
            Op::DelIncoming(c, id) => {
                self.incoming.remove(&(c.to_string(), *id));
            }
            Op::PutRetained(t, r) => {
                self.retained.insert(t.to_string(), r.clone());
            }
            Op::DelRetained(t) => {
                self.retained.remove(&t.to_string());
            }
        }
    }

    fn read(db: &redb::Database) -> Model {
        let tx = db.begin_read().unwrap();
        let mut m = Model::default();
        for e in tx.open_table(tables::SESSIONS).unwrap().range(..).unwrap() {
            let (k, v) = e.unwrap();
            m.sessions.insert(k.value().to_owned(), v.value().to_vec());
        }
        for e in tx.open_table(tables::SUBSCRIPTIONS).unwrap().range(..).unwrap() {
            let (k, v) = e.unwrap();
            let (c, f) = k.value();
            m.subs.insert((c.to_owned(), f.to_owned()), v.value().to_vec());
        }
        for e in tx.open_table(tables::DELIVERIES).unwrap().range(..).unwrap() {
            let (k, v) = e.unwrap();
            let (c, s) = k.value();
            m.deliveries.insert((c.to_owned(), s), v.value().to_vec());
        }
        for e in tx.open_table(tables::INCOMING).unwrap().range(..).unwrap() {
            let (k, _) = e.unwrap();
            let (c, id) = k.value();
            m.incoming.insert((c.to_owned(), id));
        }
        for e in tx.open_table(tables::MESSAGES).unwrap().range(..).unwrap() {
            let (k, v) = e.unwrap();
            m.messages.insert(k.value(), v.value().to_vec());
        }
        for e in tx.open_table(tables::RETAINED).unwrap().range(..).unwrap() {
            let (k, v) = e.unwrap();
            m.retained.insert(k.value().to_owned(), v.value().to_vec());
        }
        m
    }
}

/// Few keys, so ops collide: a client id that is a prefix of another, a
/// filter that is empty-ish, ids at the edges.
fn client() -> impl Strategy<Value = Box<str>> {
    prop_oneof![Just("a"), Just("ab"), Just("b"), Just("")].prop_map(Box::from)
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..40);
    let filter = prop_oneof![Just("#"), Just("a/+"), Just("a/b"), Just("$share/g/x")].prop_map(Box::from);
    let seq = prop_oneof![Just(0u64), Just(1), Just(2), Just(u64::MAX)];
    let pid = prop_oneof![Just(1u16), Just(2), Just(u16::MAX)];
    prop_oneof![
        (client(), bytes.clone()).prop_map(|(c, b)| Op::PutSession(c, b)),
        client().prop_map(Op::DelSession),
        (client(), filter.clone(), any::<[u8; 8]>()).prop_map(|(c, f, r)| Op::PutSubscription(c, f, r)),
        (client(), filter).prop_map(|(c, f)| Op::DelSubscription(c, f)),
        (0u64..4, bytes.clone()).prop_map(|(i, b)| Op::PutMessage(i, b)),
        (0u64..4).prop_map(Op::DelMessage),
        (client(), seq.clone(), any::<[u8; 15]>()).prop_map(|(c, s, r)| Op::PutDelivery(c, s, r)),
        (client(), seq).prop_map(|(c, s)| Op::DelDelivery(c, s)),
        (client(), pid.clone()).prop_map(|(c, p)| Op::PutIncoming(c, p)),
        (client(), pid).prop_map(|(c, p)| Op::DelIncoming(c, p)),
        (client(), bytes).prop_map(|(t, b)| Op::PutRetained(t, b)),
        client().prop_map(Op::DelRetained),
    ]
}

fn clone_op(op: &Op) -> Op {
    match op {
        Op::PutSession(c, r) => Op::PutSession(c.clone(), r.clone()),
        Op::DelSession(c) => Op::DelSession(c.clone()),
        Op::PutSubscription(c, f, r) => Op::PutSubscription(c.clone(), f.clone(), *r),
        Op::DelSubscription(c, f) => Op::DelSubscription(c.clone(), f.clone()),
        Op::PutMessage(i, r) => Op::PutMessage(*i, r.clone()),
        Op::DelMessage(i) => Op::DelMessage(*i),
        Op::PutDelivery(c, s, r) => Op::PutDelivery(c.clone(), *s, *r),
        Op::DelDelivery(c, s) => Op::DelDelivery(c.clone(), *s),
        Op::PutIncoming(c, p) => Op::PutIncoming(c.clone(), *p),
        Op::DelIncoming(c, p) => Op::DelIncoming(c.clone(), *p),
        Op::PutRetained(t, r) => Op::PutRetained(t.clone(), r.clone()),
        Op::DelRetained(t) => Op::DelRetained(t.clone()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 0..120), pauses in proptest::collection::vec(0usize..120, 0..4)) {
        let dir = tempfile::tempdir().unwrap();
        let db = super::file::open_or_create(dir.path(), 1 << 20).unwrap();
        let (w, thread) = Writer::start(db, WriterSettings {
            durability: Durability::Batched,
            sync_interval: Duration::from_millis(1),
            sync_batch: 7,
            max_bytes: u64::MAX,
            live_bytes: 0,
            next_message_id: 1,
            path: super::file::db_path(dir.path()),
            cache_size: 1 << 20,
        }).unwrap();
        let mut model = Model::default();
        for (i, op) in ops.iter().enumerate() {
            model.apply(op);
            let n = w.submit(clone_op(op));
            prop_assert_eq!(n, i as u64 + 1);
            if pauses.contains(&i) {
                // Let a commit happen mid-sequence, so ops span groups.
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        w.close();
        thread.join().unwrap();
        prop_assert_eq!(w.durable(), ops.len() as u64);
        let db = super::file::open_or_create(dir.path(), 1 << 20).unwrap();
        prop_assert_eq!(Model::read(&db), model);
    }
}
