//! `$SYS/broker/...`: retained status topics republished every interval,
//! with Mosquitto's topic names so existing dashboards work.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use crate::broker::Broker;
use crate::codec::QoS;
use crate::metrics::Metrics;
use crate::router::Message;
use crate::shutdown::ShutdownSignal;

pub async fn publish_loop(broker: Arc<Broker>, interval: Duration, mut shutdown: ShutdownSignal) {
    if interval.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => publish_once(&broker),
            _ = shutdown.wait() => return,
        }
    }
}

pub fn publish_once(broker: &Broker) {
    let m = &broker.metrics;
    let uptime = broker.started.elapsed().as_secs();
    let mut values: Vec<(&str, String)> = vec![
        ("version", format!("tern {}", env!("CARGO_PKG_VERSION"))),
        ("uptime", format!("{uptime} seconds")),
        ("clients/connected", Metrics::get(&m.clients_connected).to_string()),
        ("clients/total", broker.registry.len().to_string()),
        ("messages/received", Metrics::get(&m.messages_received).to_string()),
        ("messages/sent", Metrics::get(&m.messages_sent).to_string()),
        ("publish/messages/dropped", Metrics::get(&m.publish_dropped).to_string()),
        ("bytes/received", Metrics::get(&m.bytes_received).to_string()),
        ("bytes/sent", Metrics::get(&m.bytes_sent).to_string()),
        ("subscriptions/count", Metrics::get(&m.subscriptions).to_string()),
        ("retained messages/count", broker.router.retained.len().to_string()),
        ("connections/total", Metrics::get(&m.connections_total).to_string()),
    ];
    if let Some((commits, refused, bytes)) = broker.store().stats() {
        values.extend([
            ("store/commits", commits.to_string()),
            ("store/refused", refused.to_string()),
            ("store/bytes", bytes.to_string()),
        ]);
    }
    for (name, value) in values {
        let msg = Message {
            topic: ByteString::from(format!("$SYS/broker/{name}")),
            payload: Bytes::from(value),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: None,
            expires_at: None,
            origin: 0,
            stored: Default::default(),
        };
        broker.publish(&Arc::new(msg));
    }
}
