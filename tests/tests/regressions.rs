//! One test per broker bug fixed, named after what broke.

use tern_blackbox::*;

/// A subscriber whose queue held more than one write batch (64 KiB) stopped
/// receiving: the queue was not empty, so no new delivery woke its
/// connection, and the connection did not go back for the rest.
#[test]
fn subscriber_receives_a_backlog_larger_than_one_write_batch() {
    let b = Broker::start_with("[limits]\nmax_queued_messages = 10000\nmax_queued_bytes = \"16MiB\"\n");
    let mut sub = RawClient::v311(b.addr(), &unique_id("sub"));
    sub.subscribe("backlog/#", 0);
    let mut publ = RawClient::v311(b.addr(), &unique_id("pub"));
    let payload = vec![b'x'; 200];
    let mut burst = Vec::new();
    for _ in 0..2000 {
        burst.extend(publish311("backlog/t", &payload, 0, false, 0));
    }
    burst.extend(publish311("backlog/end", b"", 0, false, 0));
    publ.send(&burst);
    let got = sub.collect_until_topic("backlog/end");
    assert_eq!(got.len(), 2000, "every queued message arrives");
}
