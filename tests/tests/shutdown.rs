//! Graceful shutdown on SIGTERM / SIGINT: clients are told (v5 DISCONNECT
//! 0x8B Server shutting down, §4.13), wills go out, and the process exits 0
//! within the drain time.

use std::io::Write;
use std::time::Duration;

use tern_blackbox::*;

/// Upper bound for the process to exit: the broker's 5 s drain plus slack.
/// A bound on a hang, not a speed measurement.
const EXIT_WITHIN: Duration = Duration::from_secs(12);

fn assert_exits_0(b: &mut Broker) {
    let st = b
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("broker still running {EXIT_WITHIN:?} after the signal"));
    assert!(st.success(), "exit status {st}");
}

fn signal_closes_clients_and_exits_0(sig: i32) {
    let mut b = Broker::start();
    let mut v5 = RawClient::v5(b.addr(), &unique_id("v5"));
    v5.subscribe("sd/#", 1);
    let mut v3 = RawClient::v311(b.addr(), &unique_id("v3"));
    v3.subscribe("sd/#", 1);
    let (mut persistent, _) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("p5"))
            .clean(false)
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 3600)),
    );
    b.send_signal(sig);
    // A v5 client hears why (0x8B); a 3.1.1 one just sees the close.
    v5.expect_disconnect(0x8B, is_tern());
    persistent.expect_disconnect(0x8B, is_tern());
    assert_eq!(v3.expect_closed(), None);
    assert_exits_0(&mut b);
}

#[test]
fn sigterm_disconnects_clients_with_0x8b_and_exits_0() {
    signal_closes_clients_and_exits_0(libc::SIGTERM);
}

#[test]
fn sigint_disconnects_clients_with_0x8b_and_exits_0() {
    signal_closes_clients_and_exits_0(libc::SIGINT);
}

#[test]
fn idle_broker_exits_0_on_sigterm() {
    let mut b = Broker::start();
    b.send_signal(libc::SIGTERM);
    assert_exits_0(&mut b);
}

#[test]
fn shutdown_is_not_held_up_by_a_half_open_handshake_or_a_stuck_reader() {
    let mut b = Broker::start_with("[limits]\nmax_queued_bytes = \"16MiB\"\nmax_packet_size = \"1MiB\"\n");
    // A socket that never sends CONNECT.
    let _silent = RawClient::connect(b.addr());
    // A subscriber whose socket buffers are full because it never reads.
    let mut stuck = RawClient::v311(b.addr(), &unique_id("stuck"));
    stuck.subscribe("stuck/t", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    let payload = vec![b's'; 512 * 1024];
    p.stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..40 {
        p.stream
            .write_all(&publish311("stuck/t", &payload, 0, false, 0))
            .expect("publisher keeps flowing");
    }
    assert!(p.sync().is_empty());
    b.send_signal(libc::SIGTERM);
    assert_exits_0(&mut b);
}

/// A will-carrying client and a subscriber to its will topic are both
/// connected when the broker is told to stop. The server closes the will
/// client's connection without a DISCONNECT from it, so its will MUST be
/// published [MQTT-3.1.2-8] (5.0: "after ... either the Will Delay Interval
/// has passed or the Session ends", and an in-memory session ends here). The subscriber is still connected at that
/// moment, so it must receive the will before its own DISCONNECT 0x8B
/// (Mosquitto 2.0.11 does this).
fn will_is_delivered_on_shutdown(will_props: Props, connect_props: Props) {
    let mut b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("sd/will", 1);
    let mut will = Will::new("sd/will", b"broker stopped", 1, false);
    will.props = will_props;
    let (_w, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("w")).props(connect_props).will(will));
    assert_eq!(ack.code, 0);
    b.send_signal(libc::SIGTERM);
    let seen = s.closed_within(EXIT_WITHIN).expect("subscriber closed at shutdown");
    let wills: Vec<Publish> = seen
        .iter()
        .filter(|p| p.kind() == PUBLISH)
        .map(|p| p.publish(true))
        .collect();
    assert!(
        wills
            .iter()
            .any(|m| m.topic == "sd/will" && m.payload == b"broker stopped"),
        "will not delivered before the subscriber was disconnected; got {seen:02x?}"
    );
    assert_exits_0(&mut b);
}

#[test]
fn mqtt_3_1_2_8_will_published_when_server_shuts_down() {
    will_is_delivered_on_shutdown(Props::new(), Props::new());
}

#[test]
fn mqtt_3_1_2_8_delayed_will_published_when_shutdown_ends_the_session() {
    will_is_delivered_on_shutdown(
        Props::new().u32(WILL_DELAY_INTERVAL, 60),
        Props::new().u32(SESSION_EXPIRY_INTERVAL, 120),
    );
}

#[test]
fn will_not_published_for_clients_that_disconnected_normally_before_shutdown() {
    let mut b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("sd/gone", 1);
    let (w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("w")).will(Will::new("sd/gone", b"x", 1, false)),
    );
    w.disconnect();
    b.send_signal(libc::SIGTERM);
    let seen = s.closed_within(EXIT_WITHIN).expect("closed at shutdown");
    assert!(
        seen.iter().all(|p| p.kind() != PUBLISH),
        "[MQTT-3.1.2-10] a will removed by DISCONNECT 0x00 must not be published: {seen:02x?}"
    );
    assert_exits_0(&mut b);
}
