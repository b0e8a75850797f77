//! Tern: a lean MQTT 3.1 / 3.1.1 / 5.0 broker for edge hardware.
//!
//! # Layout
//! - [`codec`]: packets on the wire; strict decoder, allocation-free
//!   PUBLISH encoder. Knows nothing else.
//! - [`topic`]: topic names and filters, the subscription tree, the
//!   retained-message map.
//! - [`session`]: what survives a connection: queue, in-flight messages,
//!   subscriptions. No I/O.
//! - [`router`]: fan-out of one accepted message to matching sessions;
//!   retained messages and shared subscriptions.
//! - [`broker`]: shared state and the session lifecycle (attach, takeover,
//!   detach, expiry, wills).
//! - [`connection`]: drives one client over one socket.
//! - [`listener`]: accepts sockets; [`server`] starts it all; [`shutdown`],
//!   [`sys`], [`metrics`], [`auth`], [`config`].
//!
//! # How a PUBLISH flows
//! 1. A connection task wakes on a readable socket and reads everything
//!    there into its thread's scratch buffer.
//! 2. Each complete frame is copied into its own small allocation and
//!    decoded ([`codec::decode`]); topic and payload are slices of it.
//! 3. The connection resolves the topic alias and hands an
//!    `Arc<router::Message>` to [`broker::Broker::publish`], which stores it
//!    if retained and lets the [`router::Router`] walk the topic tree.
//! 4. Each matching session gets a [`session::Delivery`] (the shared
//!    message plus that subscription's QoS and options) in its bounded
//!    queue; a session whose queue was empty wakes its connection.
//! 5. The subscriber's connection encodes queued deliveries straight into
//!    its write buffer, within its in-flight window, and writes the batch
//!    with one syscall. The PUBACK to the publisher was written to the
//!    publisher's buffer in step 3 and leaves with its next write.
pub mod auth;
pub mod broker;
pub mod codec;
pub mod config;
pub mod connection;
pub mod listener;
pub mod metrics;
pub mod restore;
pub mod router;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod store;
pub mod sys;
pub mod topic;
