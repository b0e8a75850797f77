//! Reading the whole store at startup.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::StoreError;
use super::file::corrupt;
use super::records::{DeliveryRecord, SessionRecord, decode_message, decode_subscription};
use super::tables;
use crate::router::{Message, Subscription};

#[derive(Debug)]
pub struct StoredSession {
    pub client_id: String,
    pub record: SessionRecord,
    pub subscriptions: Vec<(String, Subscription)>,
    /// In sequence order.
    pub deliveries: Vec<(u64, DeliveryRecord)>,
    pub incoming_qos2: Vec<u16>,
}

/// Everything the store holds, decoded.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sessions: Vec<StoredSession>,
    /// By message id; `None` for a message that expired while stored.
    pub messages: HashMap<u64, Option<Arc<Message>>>,
    pub message_bytes: HashMap<u64, usize>,
    pub retained: Vec<Message>,
    /// Topics whose retained message expired while stored.
    pub expired_retained: Vec<String>,
    pub next_message_id: u64,
    /// Bytes of all records, for `max_bytes`.
    pub bytes: i64,
}

pub fn load(db: &Database, path: &Path) -> Result<Snapshot, StoreError> {
    let err = |e: redb::StorageError| corrupt(path, e);
    let tx = db.begin_read().map_err(|e| corrupt(path, e))?;
    let mut snap = Snapshot {
        next_message_id: 1,
        ..Snapshot::default()
    };
    let weight = |n: usize| i64::try_from(n + 16).unwrap_or(i64::MAX);

    let messages = tx.open_table(tables::MESSAGES).map_err(|e| corrupt(path, e))?;
    for entry in messages.range(..).map_err(err)? {
        let (k, v) = entry.map_err(err)?;
        let id = k.value();
        let bytes = v.value();
        snap.bytes += weight(bytes.len() + 8);
        let msg = decode_message(bytes, 0).map_err(|e| e.in_file(path))?;
        snap.message_bytes.insert(id, bytes.len());
        snap.messages.insert(id, msg.map(Arc::new));
        snap.next_message_id = snap.next_message_id.max(id + 1);
    }

    let sessions = tx.open_table(tables::SESSIONS).map_err(|e| corrupt(path, e))?;
    let mut index = HashMap::new();
    for entry in sessions.range(..).map_err(err)? {
        let (k, v) = entry.map_err(err)?;
        let client_id = k.value().to_owned();
        snap.bytes += weight(client_id.len() + v.value().len());
        let record = SessionRecord::decode(v.value()).map_err(|e| e.in_file(path))?;
        index.insert(client_id.clone(), snap.sessions.len());
        snap.sessions.push(StoredSession {
            client_id,
            record,
            subscriptions: Vec::new(),
            deliveries: Vec::new(),
            incoming_qos2: Vec::new(),
        });
    }

    // Records of a session that is gone (ended in the same commit as they
    // were written) are skipped; the session's end deleted them on disk.
    let subs = tx.open_table(tables::SUBSCRIPTIONS).map_err(|e| corrupt(path, e))?;
    for entry in subs.range(..).map_err(err)? {
        let (k, v) = entry.map_err(err)?;
        let (client, filter) = k.value();
        snap.bytes += weight(client.len() + filter.len() + 8);
        if let Some(&i) = index.get(client) {
            let sub = decode_subscription(v.value()).map_err(|e| e.in_file(path))?;
            snap.sessions[i].subscriptions.push((filter.to_owned(), sub));
        }
    }
    let deliveries = tx.open_table(tables::DELIVERIES).map_err(|e| corrupt(path, e))?;
    for entry in deliveries.range(..).map_err(err)? {
        let (k, v) = entry.map_err(err)?;
        let (client, seq) = k.value();
        snap.bytes += weight(client.len() + 8 + v.value().len());
        if let Some(&i) = index.get(client) {
            let d = DeliveryRecord::decode(v.value()).map_err(|e| e.in_file(path))?;
            snap.sessions[i].deliveries.push((seq, d));
        }
    }
    let incoming = tx.open_table(tables::INCOMING).map_err(|e| corrupt(path, e))?;
    for entry in incoming.range(..).map_err(err)? {
        let (k, _) = entry.map_err(err)?;
        let (client, id) = k.value();
        snap.bytes += weight(client.len() + 2);
        if let Some(&i) = index.get(client) {
            snap.sessions[i].incoming_qos2.push(id);
        }
    }
    let retained = tx.open_table(tables::RETAINED).map_err(|e| corrupt(path, e))?;
    for entry in retained.range(..).map_err(err)? {
        let (k, v) = entry.map_err(err)?;
        snap.bytes += weight(k.value().len() + v.value().len());
        match decode_message(v.value(), 0).map_err(|e| e.in_file(path))? {
            Some(msg) => snap.retained.push(msg),
            None => snap.expired_retained.push(k.value().to_owned()),
        }
    }
    Ok(snap)
}
