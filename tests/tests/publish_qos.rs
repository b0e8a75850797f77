//! PUBLISH QoS 0/1/2 flows (3.1.1 §3.3-3.7 / §4.3, 5.0 §3.3-3.7 / §4.3).

use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, MqttOptions, Packet as RPacket, QoS};
use tern_blackbox::*;

fn rumq(b: &Broker, id: &str) -> (Client, Connection) {
    let mut o = MqttOptions::new(id, "127.0.0.1", b.port());
    o.set_keep_alive(Duration::from_secs(30));
    Client::new(o, 16)
}

/// Drive `conn` until `pred` matches an incoming packet (bounded).
fn drive_until(conn: &mut Connection, mut pred: impl FnMut(&RPacket) -> bool) -> RPacket {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        match conn.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(Event::Incoming(p))) if pred(&p) => return p,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("rumqttc connection error: {e}"),
            Err(_) => {}
        }
    }
    panic!("timed out waiting for packet");
}

#[test]
fn rumqttc_pubsub_all_qos_v311() {
    let b = Broker::start();
    let (sub, mut sconn) = rumq(&b, &unique_id("sub"));
    sub.subscribe("a/#", QoS::ExactlyOnce).unwrap();
    drive_until(&mut sconn, |p| matches!(p, RPacket::SubAck(_)));
    let (publ, mut pconn) = rumq(&b, &unique_id("pub"));
    drive_until(&mut pconn, |p| matches!(p, RPacket::ConnAck(_)));
    for (i, q) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publ.publish(format!("a/{i}"), q, false, vec![i as u8; 3]).unwrap();
        match q {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                drive_until(&mut pconn, |p| matches!(p, RPacket::PubAck(_)));
            }
            QoS::ExactlyOnce => {
                drive_until(&mut pconn, |p| matches!(p, RPacket::PubComp(_)));
            }
        }
        // Pump the publisher for QoS 0 so it actually hits the wire.
        let _ = pconn.recv_timeout(Duration::from_millis(50));
        let got = drive_until(&mut sconn, |p| matches!(p, RPacket::Publish(_)));
        let RPacket::Publish(p) = got else { unreachable!() };
        assert_eq!(p.topic, format!("a/{i}"));
        assert_eq!(p.qos, q);
        assert_eq!(&p.payload[..], &[i as u8; 3]);
    }
}

#[test]
fn rumqttc_v5_pubsub_qos1() {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::{Client as C5, Event as E5, MqttOptions as O5};
    let b = Broker::start();
    let (c, mut conn) = C5::new(O5::new(unique_id("v5"), "127.0.0.1", b.port()), 16);
    c.subscribe("v5/t", Q5::AtLeastOnce).unwrap();
    c.publish("v5/t", Q5::AtLeastOnce, false, "hello").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = false;
    while Instant::now() < deadline && !got {
        if let Ok(Ok(E5::Incoming(P5::Publish(p)))) = conn.recv_timeout(Duration::from_millis(200)) {
            assert_eq!(&p.topic[..], b"v5/t");
            assert_eq!(&p.payload[..], b"hello");
            got = true;
        }
    }
    assert!(got, "no PUBLISH received");
}

#[test]
fn mqtt_4_3_2_qos1_puback_carries_packet_id() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("q1"));
    c.send(&publish311("q/1", b"x", 1, false, 0x1234));
    c.expect(&[0x40, 0x02, 0x12, 0x34]);
}

#[test]
fn mqtt_4_3_3_qos2_pubrec_pubrel_pubcomp() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("q2"));
    c.send(&publish311("q/2", b"x", 2, false, 0x0102));
    c.expect(&[0x50, 0x02, 0x01, 0x02]);
    c.send(&ack(PUBREL, 0x0102));
    c.expect(&[0x70, 0x02, 0x01, 0x02]);
}

#[test]
fn mqtt_4_3_3_qos2_duplicate_not_delivered_twice() {
    let b = Broker::start();
    let mut sub = RawClient::v311(b.addr(), &unique_id("s"));
    assert_eq!(sub.subscribe("dup/t", 0), 0);
    let mut c = RawClient::v311(b.addr(), &unique_id("p"));
    c.send(&publish311("dup/t", b"once", 2, false, 9));
    c.expect(&[0x50, 0x02, 0x00, 0x09]);
    // Resend with DUP before PUBREL: must not be delivered again.
    let mut again = publish311("dup/t", b"once", 2, false, 9);
    again[0] |= 0x08;
    c.send(&again);
    c.expect(&[0x50, 0x02, 0x00, 0x09]);
    c.send(&ack(PUBREL, 9));
    c.expect(&[0x70, 0x02, 0x00, 0x09]);
    let p = sub.expect_publish();
    assert_eq!(p.payload, b"once");
    let extra = sub.sync();
    assert!(extra.is_empty(), "delivered twice: {extra:02x?}");
}

#[test]
fn mqtt_3_8_4_8_delivery_qos_is_min_of_pub_and_sub() {
    let b = Broker::start();
    let mut s0 = RawClient::v311(b.addr(), &unique_id("s0"));
    let mut s1 = RawClient::v311(b.addr(), &unique_id("s1"));
    let mut s2 = RawClient::v311(b.addr(), &unique_id("s2"));
    assert_eq!(s0.subscribe("m/q", 0), 0);
    assert_eq!(s1.subscribe("m/q", 1), 1);
    assert_eq!(s2.subscribe("m/q", 2), 2);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("m/q", b"x", 1, false);
    assert_eq!(s0.expect_publish().qos, 0);
    assert_eq!(s1.expect_publish().qos, 1);
    let m2 = s2.expect_publish();
    assert_eq!(m2.qos, 1);
    assert_ne!(m2.pid, 0, "[MQTT-2.3.1-1] non-zero packet id");
}

#[test]
fn mqtt_4_6_0_order_preserved_per_topic_qos1() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("ord/#", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    for i in 0..20u8 {
        p.send(&publish311("ord/x", &[i], 1, false, u16::from(i) + 1));
    }
    for i in 0..20u8 {
        let m = s.expect_publish();
        assert_eq!(m.payload, vec![i]);
        s.send(&ack(PUBACK, m.pid));
    }
}

#[test]
fn mqtt_4_4_0_qos1_redelivered_with_dup_on_reconnect() {
    let b = Broker::start();
    let id = unique_id("redeliver");
    let mut s = RawClient::connect(b.addr());
    s.send(&Connect::v311(&id).clean(false).bytes());
    s.read_packet();
    s.subscribe("rd/t", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("rd/t", b"m", 1, false);
    let m = s.expect_publish();
    assert!(!m.dup);
    s.drop_abruptly(); // never PUBACKed
    let (mut s2, ack) = RawClient::handshake(b.addr(), &Connect::v311(&id).clean(false));
    assert!(ack.session_present);
    // [MQTT-4.4.0-1] resend unacknowledged PUBLISH with DUP=1 [MQTT-3.3.1-1].
    let m2 = s2.expect_publish();
    assert!(m2.dup);
    assert_eq!(m2.pid, m.pid);
    assert_eq!(m2.payload, b"m");
}

#[test]
fn qos0_publish_v5_to_v311_subscriber() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("mix/t", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish(
        "mix/t",
        b"v5",
        0,
        false,
        0,
        Some(&Props::new().user("k", "v")),
    ));
    let m = s.expect_publish();
    assert_eq!(m.topic, "mix/t");
    assert_eq!(m.payload, b"v5");
}

#[test]
fn mqtt_3_3_2_topic_delivered_as_published_not_filter() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("+/b/#", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("a/b/c/d", b"x", 0, false);
    assert_eq!(s.expect_publish().topic, "a/b/c/d");
}

#[test]
fn empty_payload_delivered() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("e/t", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("e/t", b"", 0, false);
    let m = s.expect_publish();
    assert!(m.payload.is_empty());
}
