//! Codec cost per packet: decode (fixed header + body) and encode, for the
//! packets a broker handles most. `cargo bench -p tern-bench --bench codec`.
//!
//! Frames are v5 with the properties real clients send (mosquitto 2.0's
//! CONNECT and SUBSCRIBE; see `broker/src/codec/tests/captured.rs`), since
//! v5 is the more expensive path.

mod common;

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tern::codec::{
    ByteString, Connect, ConnectProperties, Packet, Protocol, PubResp, Publish, PublishProperties, QoS, Subscribe,
    SubscriptionOptions, decode, encode, parse_frame_header,
};

fn connect() -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: Protocol::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteString::from_static("sensor-0042"),
        will: None,
        username: Some(ByteString::from_static("device")),
        password: Some(Bytes::from_static(b"secret")),
        properties: ConnectProperties {
            session_expiry_interval: Some(60),
            receive_maximum: Some(20),
            ..ConnectProperties::default()
        },
    }))
}

fn publish(payload_len: usize) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: ByteString::from_static("site/12/dev/345/temp"),
        packet_id: 7,
        properties: PublishProperties::default(),
        payload: Bytes::from(vec![0x5A; payload_len]),
    })
}

fn subscribe() -> Packet {
    let opts = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    };
    Packet::Subscribe(Subscribe {
        packet_id: 1,
        subscription_identifier: Some(7),
        user_properties: Vec::new(),
        filters: vec![
            (ByteString::from_static("site/+/dev/+/temp"), opts),
            (ByteString::from_static("alerts/#"), opts),
        ],
    })
}

fn puback() -> Packet {
    Packet::PubAck(PubResp {
        packet_id: 7,
        ..PubResp::default()
    })
}

fn bench_codec(c: &mut Criterion) {
    let cases = [
        ("connect", connect()),
        ("publish_64B", publish(64)),
        ("publish_16KiB", publish(16 * 1024)),
        ("subscribe", subscribe()),
        ("puback", puback()),
    ];
    let mut group = c.benchmark_group("codec");
    for (name, packet) in &cases {
        let mut buf = BytesMut::new();
        encode(packet, Protocol::V5, &mut buf).expect("bench packet encodes");
        let frame = buf.freeze();
        group.throughput(Throughput::Bytes(frame.len() as u64));

        // What a connection does per frame: read the header, then decode the
        // body, a cheap refcounted slice of the frame. CONNECT decodes
        // before a protocol is known; the rest under v5.
        let state = match packet {
            Packet::Connect(_) => None,
            _ => Some(Protocol::V5),
        };
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let h = parse_frame_header(black_box(&frame), u32::MAX).unwrap().unwrap();
                decode(h.first_byte, frame.slice(h.header_len..h.frame_len()), state).unwrap()
            })
        });

        // Encoding into a buffer that is reused, as a connection's write
        // buffer is.
        let mut out = BytesMut::with_capacity(frame.len());
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(packet), Protocol::V5, &mut out).unwrap();
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_codec
}
criterion_main!(benches);
