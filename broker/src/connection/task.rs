//! A connection's task as a hand-written future of a few words: the
//! handshake and the connection are boxed, so the task itself fits
//! tokio's smallest cell (its header alone is 128 bytes, cache-line
//! aligned). An `async` block doing the same kept moved-from copies of its
//! locals across await points and took three times the room.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::handshake::Accepted;
use super::run::{Conn, closing};

pub struct ConnTask<H, G> {
    state: State<H>,
    /// Dropped with the task, however the connection ends.
    _guard: G,
}

enum State<H> {
    /// Boxed: it is large and short-lived.
    Handshake(Pin<Box<H>>),
    Running(Box<Conn>),
    Closing(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

impl<H, G> ConnTask<H, G> {
    pub fn new(handshake: H, guard: G) -> ConnTask<H, G> {
        ConnTask {
            state: State::Handshake(Box::pin(handshake)),
            _guard: guard,
        }
    }
}

impl<H, G> Future for ConnTask<H, G>
where
    H: Future<Output = Option<Accepted>>,
    G: Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Handshake(h) => {
                    this.state = match ready!(h.as_mut().poll(cx)) {
                        Some(accepted) => start(Conn::from_accepted(accepted)),
                        None => State::Done,
                    };
                }
                State::Running(conn) => {
                    let reason = ready!(conn.poll_drive(cx));
                    if let State::Running(conn) = std::mem::replace(&mut this.state, State::Done) {
                        this.state = State::Closing(closing(conn, reason));
                    }
                }
                State::Closing(f) => {
                    ready!(f.as_mut().poll(cx));
                    this.state = State::Done;
                }
                State::Done => return Poll::Ready(()),
            }
        }
    }
}

/// A connection that passed the handshake starts its keep alive and acts on
/// the bytes that came with CONNECT.
fn start<H>(conn: Conn) -> State<H> {
    let mut conn = Box::new(conn);
    conn.touch_keep_alive();
    match conn.process_leftover() {
        Ok(()) => State::Running(conn),
        Err(e) => State::Closing(closing(conn, e)),
    }
}
