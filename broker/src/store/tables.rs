//! The tables of the database file and the writes the broker makes to them.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// `format` -> the layout version of this file.
pub const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
/// Client id -> [`super::records::SessionRecord`].
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (client id, filter) -> subscription options.
pub const SUBSCRIPTIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("subscriptions");
/// (client id, sequence) -> [`super::records::DeliveryRecord`]. The sequence
/// orders a session's deliveries and gives their packet identifiers.
pub const DELIVERIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("deliveries");
/// (client id, packet id) of inbound QoS 2 PUBLISHes answered with PUBREC
/// and awaiting PUBREL.
pub const INCOMING: TableDefinition<(&str, u16), ()> = TableDefinition::new("incoming_qos2");
/// Message id -> message record, one per message however many sessions
/// queue it.
pub const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// Topic -> message record.
pub const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

pub const FORMAT_KEY: &str = "format";
pub const FORMAT: u32 = 1;

/// One change to the store, applied in the order it was submitted.
#[derive(Debug)]
pub enum Op {
    PutSession(Box<str>, Vec<u8>),
    /// The session and everything it owns.
    DelSession(Box<str>),
    PutSubscription(Box<str>, Box<str>, [u8; 8]),
    DelSubscription(Box<str>, Box<str>),
    PutMessage(u64, Vec<u8>),
    DelMessage(u64),
    PutDelivery(Box<str>, u64, [u8; super::records::DELIVERY_LEN]),
    DelDelivery(Box<str>, u64),
    PutIncoming(Box<str>, u16),
    DelIncoming(Box<str>, u16),
    PutRetained(Box<str>, Vec<u8>),
    DelRetained(Box<str>),
}

impl Op {
    /// Bytes the op adds to (or, negative, frees from) the stored data, for
    /// `max_bytes`; an estimate, keys and a record header included.
    pub fn weight(&self) -> i64 {
        const HEAD: i64 = 16;
        let len = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        match self {
            Op::PutSession(c, r) => len(c.len() + r.len()) + HEAD,
            Op::PutSubscription(c, f, _) => len(c.len() + f.len() + 8) + HEAD,
            Op::PutMessage(_, r) => len(r.len() + 8) + HEAD,
            Op::PutDelivery(c, _, _) => len(c.len() + 8 + super::records::DELIVERY_LEN) + HEAD,
            Op::PutIncoming(c, _) => len(c.len() + 2) + HEAD,
            Op::PutRetained(t, r) => len(t.len() + r.len()) + HEAD,
            _ => 0,
        }
    }
}

/// Makes every table exist, so readers never meet a missing one.
pub fn create_all(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(SESSIONS)?;
    tx.open_table(SUBSCRIPTIONS)?;
    tx.open_table(DELIVERIES)?;
    tx.open_table(INCOMING)?;
    tx.open_table(MESSAGES)?;
    tx.open_table(RETAINED)?;
    let mut meta = tx.open_table(META)?;
    if meta.get(FORMAT_KEY)?.is_none() {
        meta.insert(FORMAT_KEY, FORMAT)?;
    }
    Ok(())
}

/// The record an op writes or deletes.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Session(&'a str),
    Subscription(&'a str, &'a str),
    Delivery(&'a str, u64),
    Incoming(&'a str, u16),
    Message(u64),
    Retained(&'a str),
}

impl Op {
    /// The record it writes, and its client; `None` for deletes.
    fn written(&self) -> Option<(Key<'_>, Option<&str>)> {
        Some(match self {
            Op::PutSession(c, _) => (Key::Session(c), Some(c)),
            Op::PutSubscription(c, f, _) => (Key::Subscription(c, f), Some(c)),
            Op::PutDelivery(c, s, _) => (Key::Delivery(c, *s), Some(c)),
            Op::PutIncoming(c, p) => (Key::Incoming(c, *p), Some(c)),
            Op::PutMessage(id, _) => (Key::Message(*id), None),
            Op::PutRetained(t, _) => (Key::Retained(t), None),
            _ => return None,
        })
    }

    fn deleted(&self) -> Option<Key<'_>> {
        Some(match self {
            Op::DelSubscription(c, f) => Key::Subscription(c, f),
            Op::DelDelivery(c, s) => Key::Delivery(c, *s),
            Op::DelIncoming(c, p) => Key::Incoming(c, *p),
            Op::DelMessage(id) => Key::Message(*id),
            Op::DelRetained(t) => Key::Retained(t),
            _ => return None,
        })
    }
}

/// Which writes of a group need not reach the file because a later op of
/// the same group overwrites or deletes their record: a message delivered
/// and acknowledged within one commit interval costs no write at all,
/// which is most of them for sessions that are online. Deletes always run
/// (the record may predate the group).
fn superseded(ops: &[Op]) -> Vec<bool> {
    let mut later = std::collections::HashSet::new();
    let mut ended = std::collections::HashSet::new();
    let mut skip = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        if let Op::DelSession(c) = op {
            ended.insert(&**c);
        } else if let Some(key) = op.deleted() {
            later.insert(key);
        } else if let Some((key, client)) = op.written() {
            skip[i] = client.is_some_and(|c| ended.contains(c)) || later.contains(&key);
            later.insert(key);
        }
    }
    skip
}

/// Applies `ops` in one transaction; the caller commits it.
pub fn apply(tx: &WriteTransaction, ops: &[Op]) -> Result<(), redb::Error> {
    let skip = superseded(ops);
    let mut sessions = tx.open_table(SESSIONS)?;
    let mut subscriptions = tx.open_table(SUBSCRIPTIONS)?;
    let mut deliveries = tx.open_table(DELIVERIES)?;
    let mut incoming = tx.open_table(INCOMING)?;
    let mut messages = tx.open_table(MESSAGES)?;
    let mut retained = tx.open_table(RETAINED)?;
    for (op, _) in ops.iter().zip(skip).filter(|(_, skip)| !skip) {
        match op {
            Op::PutSession(c, r) => {
                sessions.insert(&**c, r.as_slice())?;
            }
            Op::DelSession(c) => {
                let c: &str = c;
                sessions.remove(c)?;
                // (client, "") sorts first among the client's filters.
                let filters: Vec<String> = subscriptions
                    .range((c, "")..)?
                    .map_while(|e| e.ok())
                    .take_while(|(k, _)| k.value().0 == c)
                    .map(|(k, _)| k.value().1.to_owned())
                    .collect();
                for f in filters {
                    subscriptions.remove((c, f.as_str()))?;
                }
                deliveries.retain_in((c, 0)..=(c, u64::MAX), |_, _| false)?;
                incoming.retain_in((c, 0)..=(c, u16::MAX), |_, _| false)?;
            }
            Op::PutSubscription(c, f, r) => {
                subscriptions.insert((&**c, &**f), r.as_slice())?;
            }
            Op::DelSubscription(c, f) => {
                subscriptions.remove((&**c, &**f))?;
            }
            Op::PutMessage(id, r) => {
                messages.insert(id, r.as_slice())?;
            }
            Op::DelMessage(id) => {
                messages.remove(id)?;
            }
            Op::PutDelivery(c, seq, r) => {
                deliveries.insert((&**c, *seq), r.as_slice())?;
            }
            Op::DelDelivery(c, seq) => {
                deliveries.remove((&**c, *seq))?;
            }
            Op::PutIncoming(c, id) => {
                incoming.insert((&**c, *id), ())?;
            }
            Op::DelIncoming(c, id) => {
                incoming.remove((&**c, *id))?;
            }
            Op::PutRetained(t, r) => {
                retained.insert(&**t, r.as_slice())?;
            }
            Op::DelRetained(t) => {
                retained.remove(&**t)?;
            }
        }
    }
    Ok(())
}
